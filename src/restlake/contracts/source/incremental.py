"""``spec.incremental``: a watermark taken from the records, and the windowed first load."""

from __future__ import annotations

import datetime as dt

from pydantic import Field, model_validator

from restlake.contracts import guards
from restlake.contracts.model import SpecModel, field_error, model_rules
from restlake.contracts.patterns import WINDOW_START
from restlake.contracts.values import Duration, JsonPath, bounded_duration


class Incremental(SpecModel):
    """Ask only for records changed since the last poll, using a watermark taken from the records.

    With ``window``, ``start`` and ``endParam`` the first load walks time windows
    ``[start, start+window)``, ``[start+window, start+2*window)``, ... up to now, each paginated,
    and the watermark advances only when a window is complete; afterwards polling goes on from the
    watermark as without them.
    """

    model_config = model_rules(
        {
            "rule": "has(self.window) == has(self.start) && has(self.window) == has(self.endParam)",
            "message": "window, start and endParam go together: set all three for a windowed first load",
            "fieldPath": ".window",
        },
        {
            "rule": "!has(self.start) || !has(self.initialValue)",
            "message": "initialValue cannot be combined with start (start is the first value of a "
            "windowed first load)",
            "fieldPath": ".initialValue",
        },
        {
            "rule": "!has(self.endParam) || self.endParam != self.param",
            "message": "endParam must differ from param",
            "fieldPath": ".endParam",
        },
    )

    # Bounded: the CEL rule comparing it with endParam is costed from the longest string allowed.
    param: str = Field(
        min_length=1,
        max_length=guards.NAME_MAX_LENGTH,
        description="Query parameter that carries the watermark, e.g. since.",
    )
    cursor_path: JsonPath = Field(description="JSONPath to the watermark in a record, e.g. `$.updated_at`.")
    lookback: bounded_duration("30d") = Field(  # type: ignore[valid-type]
        Duration("0s"),
        description="Subtracted from a timestamp watermark, to catch late writes upstream; at most 30d.",
    )
    initial_value: str | None = Field(
        None, description="Watermark of the very first poll; absent fetches all."
    )
    max_future_skew: Duration = Field(
        Duration("1h"),
        description=(
            "A timestamp cursor later than now plus this is not used for the watermark (the record is "
            "still delivered): one record dated 9999-12-31 would otherwise stop ingestion for good."
        ),
    )
    window: bounded_duration("3660d", "1s") | None = Field(  # type: ignore[valid-type]
        None,
        description="Length of each time window of the first load, e.g. 1d or 1h (at least 1s, at most "
        "3660d); for epoch-number cursors it is counted in the start's unit (seconds or milliseconds). "
        "Needs start and endParam.",
    )
    start: str | None = Field(
        None,
        max_length=40,
        pattern=WINDOW_START,
        description="First value of the windowed first load: an ISO 8601 timestamp (a value without a "
        "zone is UTC, and windows are sent without a zone too) or a whole epoch number (12 digits or "
        "more are milliseconds). Needs window and endParam; replaces initialValue.",
    )
    end_param: str | None = Field(
        None,
        min_length=1,
        max_length=guards.NAME_MAX_LENGTH,
        description="Query parameter that carries a window's (exclusive) end, e.g. until; sent only "
        "during the windowed first load.",
    )

    @model_validator(mode="after")
    def _windows_fit(self) -> Incremental:
        named = {"window": self.window, "start": self.start, "endParam": self.end_param}
        present = [k for k, v in named.items() if v is not None]
        if present and len(present) < 3:
            missing = [k for k in named if k not in present]
            raise field_error(
                missing[0],
                f"required with {', '.join(present)}: window, start and endParam go together for a "
                "windowed first load",
            )
        if self.start is not None:
            if self.initial_value is not None:
                raise field_error(
                    "initialValue",
                    "cannot be combined with start: start is the first value of the windowed first load",
                )
            if not self.start.isdigit():
                try:
                    dt.datetime.fromisoformat(
                        self.start[:-1] + "+00:00" if self.start[-1:] in "Zz" else self.start
                    )
                except ValueError as exc:
                    raise field_error("start", f"is not a valid ISO 8601 timestamp ({exc})") from None
        if self.end_param is not None and self.end_param == self.param:
            raise field_error("endParam", f"must differ from param, got {self.end_param!r} for both")
        return self
