"""``spec.records``: where the records are in a response body and what identifies them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from restlake.contracts.model import SpecModel, field_error, model_rules
from restlake.contracts.values import JsonPath


class Records(SpecModel):
    """Where the records are in a response body and how to identify them."""

    model_config = model_rules(
        {
            "rule": "!has(self.format) || self.format == 'json' || !has(self.path) || self.path == '$'",
            "message": "path must be $ when format is jsonl or csv (every line is a record)",
            "fieldPath": ".path",
        }
    )

    format: Literal["json", "jsonl", "csv"] = Field(
        "json",
        description="Body format: json (one JSON document), jsonl (one JSON value per line) or csv "
        "(a header row, then one record per row, every value a string).",
    )
    path: JsonPath = Field(
        JsonPath("$"), description="JSONPath to the list of records in the body; `$` is the body."
    )
    id_path: JsonPath | None = Field(
        None, description="JSONPath to a record's external id; absent means the sha256 of the record."
    )
    version_path: JsonPath | None = Field(
        None,
        description="JSONPath to a record's version (e.g. `$.updated_at`); the newer one wins in Postgres.",
    )
    on_missing_id: Literal["hash", "quarantine", "fail"] = Field(
        "quarantine",
        description=(
            "What to do with a record whose idPath is missing or null: `quarantine` publishes it with an "
            "empty external id, which the stream job quarantines as `missing_field:external_id` with its "
            "Kafka coordinates; `hash` uses the content hash as the id (each version becomes a new row); "
            "`fail` makes the page a bad page (retried, then dead-lettered)."
        ),
    )

    @model_validator(mode="after")
    def _path_of_line_formats(self) -> Records:
        if self.format != "json" and self.path != "$":
            raise field_error(
                "path", f"must be $ when format is {self.format} (every line is a record), got {self.path!r}"
            )
        return self
