"""Settings of lineage emission (``RESTLAKE_LINEAGE_*``): which transport, where to, how often."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from restlake.settings import RestlakeSettings


class LineageSettings(RestlakeSettings):
    """Where OpenLineage run events go; ``none`` by default so nothing is sent unless asked for."""

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_LINEAGE_")

    transport: Literal["none", "console", "file", "http"] = Field(
        "none",
        description="Backend for run events: none, console (log), file (JSON lines) or http (Marquez).",
    )
    url: str = Field(
        "http://127.0.0.1:5000",
        description="Base URL of the OpenLineage HTTP receiver (Marquez API), without the endpoint path.",
    )
    endpoint: str = Field("api/v1/lineage", description="Path appended to ``url``; Marquez's default.")
    api_key: SecretStr | None = Field(
        None, description="Bearer token for the HTTP receiver; a secret, never logged or put in a facet."
    )
    timeout: float = Field(
        5.0, gt=0, description="Seconds per HTTP post; short, since lineage must never stall ingestion."
    )
    file_path: Path = Field(
        Path(".restlake/lineage/events.jsonl"), description="JSON-lines file of the file transport."
    )
    namespace: str = Field(
        "restlake", min_length=1, description="Job namespace: one per install, like the topic prefix."
    )
    spark_listener: bool = Field(
        False,
        description="Also run OpenLineage's own Spark listener in Spark jobs, sending to the same "
        "transport (file: <file_path stem>.spark.jsonl); needs `restlake stack jars --openlineage`.",
    )
    heartbeat_seconds: float = Field(
        60.0, gt=0, description="Seconds between RUNNING heartbeats of a long fetch pass."
    )
    # The OpenLineage 1.x spec has RUNNING; older receivers and schema copies (the 0.x one in the
    # project's fixtures among them) only know OTHER, which every version accepts as "no state change".
    heartbeat_event_type: Literal["RUNNING", "OTHER"] = Field(
        "OTHER", description="eventType of heartbeats: RUNNING (spec 1.x) or OTHER (any receiver)."
    )
