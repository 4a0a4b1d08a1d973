"""The OpenLineage schema validator and an in-memory transport, shared by the lineage tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

# shared/ sits beside the clone; its OpenLineage schema is the contract every event is checked against.
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "openlineage" / "OpenLineage.json"


class Recorder:
    """A transport that keeps what it is sent, round-tripped through JSON as a receiver gets it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(json.loads(json.dumps(event)))


def schema_validator() -> jsonschema.protocols.Validator:
    """A validator of the OpenLineage schema; skips the test when shared/ is not beside the clone."""
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"OpenLineage schema fixture not found at {SCHEMA_PATH} (shared/ beside the clone)")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_errors(validator: jsonschema.protocols.Validator, event: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(event)]
