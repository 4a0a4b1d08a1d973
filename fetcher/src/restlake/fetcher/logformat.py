"""JSON log lines carrying the structured fields (source, url, reason …) passed through ``extra``."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from restlake.redaction import redact

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # a RedactingFilter replaced the traceback by its redacted text
            line["exception"] = record.exc_text
        # Secret values are the loggers' filters' business; the patterns apply to every line.
        return redact(json.dumps(line, default=str))


def use_json_logs(level: int = logging.INFO) -> None:
    """Route the root logger through one stderr handler with ``JsonFormatter``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
