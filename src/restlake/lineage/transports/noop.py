"""The default transport: lineage off."""

from __future__ import annotations

from typing import Any


class NoopTransport:
    def emit(self, event: dict[str, Any]) -> None:
        return None
