"""CPU seconds of the processes a case exercises, sampled while it runs: where a 2-core budget goes.

A drain that uses both cores is bound by CPU, and only less work per row makes it faster; one that
uses less is waiting on something (a commit, a round trip, one busy thread), and overlap helps.
The sampler tells which, and how the work splits between the stream job, Postgres and Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from bench.common import STATE_DIR, BackgroundPoller


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def stack_processes() -> dict[str, psutil.Process]:
    """The bench stack's Postgres postmaster and Kafka broker (each with its children)."""
    stack = str(STATE_DIR / "stack")
    found: dict[str, psutil.Process] = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if stack not in cmdline:
            continue
        if proc.info.get("name") == "postgres" and "-D" in cmdline:
            found["postgres"] = proc
        elif "kafka.Kafka" in cmdline:
            found["kafka"] = proc
    return found


def process_cpu(
    trees: dict[str, psutil.Process], *, split_jvm: frozenset[str] = frozenset()
) -> dict[tuple[str, int, float], float]:
    """CPU seconds used so far by every live process of each named tree, keyed by (label, pid, start
    time): a reused pid is another process. Summed over samples taken through a run, a process
    that exits (a Postgres backend with its connection) keeps what it used up to its last one."""
    seen: dict[tuple[str, int, float], float] = {}
    for name, root in trees.items():
        for proc in _tree(root):
            try:
                times = proc.cpu_times()
                # A JVM apart from the Python processes of the same tree (the stream job's driver
                # and workers): which side of py4j the CPU is spent on.
                label = f"{name} (JVM)" if name in split_jvm and proc.name() == "java" else name
                seen[(label, proc.pid, proc.create_time())] = times.user + times.system
            except psutil.Error:
                continue
    return seen


@dataclass
class CpuSampler(BackgroundPoller):
    """Samples the cumulative CPU seconds of every process of each named tree every ``interval_s``.

    Per process, not per tree: Postgres serves each merge from a backend that exits with its
    connection, and its CPU must not leave the total with it. A process's CPU counts up to its last
    sample, so one that exits loses at most an interval of it.
    """

    trees: Callable[[], dict[str, psutil.Process]]
    interval_s: float = 0.25
    # Trees whose JVM is counted apart from their Python processes.
    split_jvm: frozenset[str] = frozenset()
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    _seen: dict[tuple[str, int, float], float] = field(default_factory=dict)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._seen.update(process_cpu(self.trees(), split_jvm=self.split_jvm))
            totals: dict[str, float] = {}
            for (name, _, _), seconds in self._seen.items():
                totals[name] = totals.get(name, 0.0) + seconds
            self.samples.append((time.time(), totals))
            self._stop.wait(self.interval_s)

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per tree between the last samples at or before ``start`` and ``end``."""
        before = [s for s in self.samples if s[0] <= start] or self.samples[:1]
        until = [s for s in self.samples if s[0] <= end] or self.samples[-1:]
        if not before or not until:
            return {}
        first, last = before[-1][1], until[-1][1]
        return {name: round(last[name] - first.get(name, 0.0), 2) for name in last}
