"""``spec.maintenance``: when and how far the source's lake tables and ledger are tidied.

What it drives is ``restlake maintenance run`` (``restlake.jobs.spark.maintenance``): OPTIMIZE of
the bronze and quarantine tables, VACUUM of the files they no longer use, and pruning of the
Postgres batch ledger. The one rule across fields is that VACUUM never undercuts time travel:
``vacuumRetention`` is at least ``asOfWindow``, the age of the oldest snapshot ``restlake backfill
--as-of`` (and ``--from-version``) must still be able to read. Same conventions as ``spec.py``:
camelCase keys, the cross-field rule in a model validator and as a CEL rule for the CRD.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from restlake.contracts import guards
from restlake.contracts.model import SpecModel, field_error, model_rules
from restlake.contracts.patterns import CRON
from restlake.contracts.values import Duration, bounded_duration

# Delta's own default for delta.deletedFileRetentionDuration: a week of time travel.
DEFAULT_WINDOW = Duration("7d")
DEFAULT_LEDGER_HORIZON = Duration("30d")
_WEEK_MS = 7 * 86_400_000


def _ms_or_default(field: str) -> str:
    # The API server fills in defaults before CEL runs; the fallback keeps the rule right without them.
    return f"(has(self.{field}) ? {guards.cel_milliseconds(field)} : {_WEEK_MS})"


class Maintenance(SpecModel):
    """OPTIMIZE, VACUUM and ledger pruning of this source, on a schedule or by hand."""

    model_config = model_rules(
        {
            "rule": f"{_ms_or_default('vacuumRetention')} >= {_ms_or_default('asOfWindow')}",
            "message": "vacuumRetention must be at least asOfWindow: VACUUM would delete files that "
            "time travel inside the window still reads",
            "fieldPath": ".vacuumRetention",
        },
    )

    schedule: str | None = Field(
        None,
        max_length=128,
        pattern=CRON,
        description="Cron schedule (5 fields or @hourly, @daily, ...) of the maintenance flow that "
        "`restlake flows serve` runs; absent means none (run it with restlake maintenance run).",
    )
    as_of_window: bounded_duration("3660d") = Field(  # type: ignore[valid-type]
        DEFAULT_WINDOW,
        description="How far back `restlake backfill --as-of` must still read bronze (Delta time "
        "travel), e.g. 7d. VACUUM keeps every file a snapshot this young needs.",
    )
    vacuum_retention: bounded_duration("3660d") = Field(  # type: ignore[valid-type]
        DEFAULT_WINDOW,
        description="VACUUM deletes data files the tables stopped using longer ago than this; at "
        "least asOfWindow.",
    )
    ledger_horizon: bounded_duration("3660d", "1h") = Field(  # type: ignore[valid-type]
        DEFAULT_LEDGER_HORIZON,
        description="Batch ledger rows (raw.ingest_batches) older than this may be deleted, except the "
        "newest batches of each query, which a restarted stream may replay (at least 1h).",
    )
    zorder: bool = Field(
        False,
        description="Z-order the source's bronze files by external_id when optimizing (point "
        "lookups by id read fewer files; the rewrite costs more).",
    )

    @model_validator(mode="after")
    def _vacuum_keeps_time_travel(self) -> Maintenance:
        if self.vacuum_retention.milliseconds < self.as_of_window.milliseconds:
            raise field_error(
                "vacuumRetention",
                f"{self.vacuum_retention} is shorter than asOfWindow {self.as_of_window}: VACUUM would "
                "delete files that `restlake backfill --as-of` inside the window still reads; raise "
                "vacuumRetention or shorten asOfWindow",
            )
        return self
