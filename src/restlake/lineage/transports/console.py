"""Run events as log lines: for a look at what would be sent, without a receiver."""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)


class ConsoleTransport:
    def emit(self, event: dict[str, Any]) -> None:
        log.info("openlineage event %s", json.dumps(event, sort_keys=True))
