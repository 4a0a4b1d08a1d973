"""Lineage transports, one module per backend, and the factory that picks one from settings."""

from __future__ import annotations

from typing import Any, Protocol

from restlake.lineage.settings import LineageSettings


class Transport(Protocol):
    """Sends one run event; raises on failure (the emitter decides what a failure means)."""

    def emit(self, event: dict[str, Any]) -> None: ...


def create_transport(settings: LineageSettings) -> Transport:
    if settings.transport == "console":
        from restlake.lineage.transports.console import ConsoleTransport

        return ConsoleTransport()
    if settings.transport == "file":
        from restlake.lineage.transports.file import FileTransport

        return FileTransport(settings.file_path)
    if settings.transport == "http":
        from restlake.lineage.transports.http import HttpTransport

        return HttpTransport(settings.url, settings.endpoint, settings.api_key, settings.timeout)
    from restlake.lineage.transports.noop import NoopTransport

    return NoopTransport()
