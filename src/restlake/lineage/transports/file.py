"""Run events appended to a JSON-lines file: one event per line, readable by any OpenLineage consumer."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any


class FileTransport:
    def __init__(self, path: Path) -> None:
        self.path = path
        # The fetcher emits from worker threads; whole lines must not interleave.
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line)
