"""The emitter: builds nothing, sends run events, and never lets lineage break ingestion."""

from __future__ import annotations

import logging
from typing import Any

from restlake.errors import RestlakeError
from restlake.lineage.settings import LineageSettings
from restlake.lineage.transports import Transport, create_transport
from restlake.redaction import redact

log = logging.getLogger(__name__)


class LineageEmitter:
    """Sends events through one transport; a failed send is logged and counted, not raised."""

    def __init__(self, transport: Transport, namespace: str = "restlake") -> None:
        self.transport = transport
        self.namespace = namespace
        self.failures = 0

    @classmethod
    def from_settings(cls, settings: LineageSettings | None = None) -> LineageEmitter:
        settings = settings or LineageSettings()
        return cls(create_transport(settings), settings.namespace)

    def emit(self, event: dict[str, Any]) -> bool:
        try:
            self.transport.emit(event)
        except (RestlakeError, OSError) as exc:
            # Lineage is metadata about the data, not the data: a receiver outage must not stop a pass.
            self.failures += 1
            log.warning(
                "OpenLineage %s event for job %s not sent: %s",
                event.get("eventType"),
                event.get("job", {}).get("name"),
                redact(str(exc)),
            )
            return False
        return True
