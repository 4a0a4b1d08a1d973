"""What every local service has in common: launch, wait until it serves, stop.

``LocalStack`` launches its services together and then waits for each (the JVM's start-up and
initdb overlap); tests and benchmarks that run one service alone call ``start()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

# How long a start may take when a service does not say; each overrides it with its own default.
READY_TIMEOUT_S = 60.0


class LocalService(ABC):
    """A service of the local stack, run as detached processes on loopback."""

    name: str
    """How logs, ``restlake stack status`` and ``restlake stack stop <name>`` call it."""

    @abstractmethod
    def launch(self) -> None:
        """Start the process(es), or keep ours when it already runs; does not wait for it to serve."""

    @abstractmethod
    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Return once the service serves; ``StackError`` when it exits or ``timeout`` seconds pass."""

    def start(self) -> None:
        """Launch and wait until the service serves, within its own start-up timeout."""
        self.launch()
        self.wait_ready()

    @abstractmethod
    def stop(self, *, kill: bool = False) -> None:
        """Stop and wait until every process exited; ``kill`` SIGKILLs them at once (a crash)."""
