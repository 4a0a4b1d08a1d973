"""The Backfill contract: a one-shot replay of one IngestionSource's Kafka topic or bronze table.

Same conventions as ``spec.py``: camelCase keys, unknown keys rejected, cross-field rules both in
model validators and as CEL rules (``x-kubernetes-validations``), so the generated CRD
(``restlake.contracts.crd``) makes the API server refuse what the model refuses. A Backfill is
one-shot: the CRD refuses any change of ``spec`` after creation.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    Field,
    Strict,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonDict

from restlake.contracts.api_version import API_VERSION, ApiVersion
from restlake.contracts.metadata import Condition, ObjectMeta
from restlake.contracts.model import SpecModel, field_error, model_rules
from restlake.contracts.patterns import DNS1123_LABEL
from restlake.contracts.source.resources import ContainerResources
from restlake.errors import SpecError

KIND = "Backfill"

PARTITION = r"^[0-9]+$"
# A bronze version as a string, or an RFC 3339 time with its offset (what Delta's timestampAsOf takes).
AS_OF = (
    r"^([0-9]+|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
)
MAX_PARTITIONS = 10_000

_PARTITION_RULE: JsonDict = {
    "rule": f"self.all(p, p.matches('{PARTITION}'))",
    "message": "keys must be partition numbers (0, 1, 2, ...)",
}


def _check_as_of(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"must be a table version (integer) or an RFC 3339 time, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a version must be 0 or more, got {value}")
        return value
    if value.isdigit():
        return value
    wrong = f"must be a table version or an RFC 3339 time such as 2030-01-01T00:00:00Z, got {value!r}"
    if not re.match(AS_OF, value):
        raise ValueError(wrong)
    try:
        dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(wrong) from None
    return value


AsOf = Annotated[
    Annotated[int, Strict()] | Annotated[str, Field(pattern=AS_OF)],
    BeforeValidator(_check_as_of),
    # Kubernetes' int-or-string; its pattern only applies to the string form.
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": AS_OF}),
]
Offsets = Annotated[
    dict[Annotated[str, Field(pattern=PARTITION)], Annotated[int, Field(ge=0)]],
    Field(min_length=1, max_length=MAX_PARTITIONS),
]


class KafkaOrigin(SpecModel):
    """Replay the source's Kafka topic from a time or offsets to a time or offsets (end exclusive)."""

    model_config = model_rules(
        {
            "rule": "has(self.fromTime) != has(self.fromOffsets)",
            "message": "set exactly one of fromTime or fromOffsets",
            "fieldPath": ".fromTime",
        },
        {
            "rule": "!(has(self.toTime) && has(self.toOffsets))",
            "message": "set at most one of toTime or toOffsets",
            "fieldPath": ".toOffsets",
        },
    )

    from_time: AwareDatetime | None = Field(
        None, description="Replay records whose Kafka timestamp is at or after this RFC 3339 time."
    )
    from_offsets: Offsets | None = Field(
        None,
        description="Replay from these offsets, {partition: offset}; partitions not named start at the "
        "earliest offset.",
        json_schema_extra={"x-kubernetes-validations": [_PARTITION_RULE]},
    )
    to_time: AwareDatetime | None = Field(
        None, description="Stop before this RFC 3339 time; absent (and no toOffsets) means the latest offset."
    )
    to_offsets: Offsets | None = Field(
        None,
        description="Stop before these offsets (exclusive), {partition: offset}; partitions not named "
        "end at the latest offset.",
        json_schema_extra={"x-kubernetes-validations": [_PARTITION_RULE]},
    )

    @model_validator(mode="after")
    def _one_start(self) -> KafkaOrigin:
        if self.from_time is None and self.from_offsets is None:
            raise field_error("fromTime", "required: set exactly one of fromTime or fromOffsets")
        if self.from_time is not None and self.from_offsets is not None:
            raise field_error("fromOffsets", "cannot be combined with fromTime; set exactly one")
        if self.to_time is not None and self.to_offsets is not None:
            raise field_error("toOffsets", "cannot be combined with toTime; set at most one")
        return self


class BronzeOrigin(SpecModel):
    """Re-merge the source's bronze Delta table: a version range, or the table as of a version or time."""

    model_config = model_rules(
        {
            "rule": "has(self.fromVersion) != has(self.asOf)",
            "message": "set exactly one of fromVersion or asOf",
            "fieldPath": ".fromVersion",
        },
        {
            "rule": "!has(self.asOf) || type(self.asOf) == string || int(self.asOf) >= 0",
            "message": "asOf must be a version of 0 or more, or an RFC 3339 time",
            "fieldPath": ".asOf",
        },
        {
            "rule": "!has(self.toVersion) || has(self.fromVersion)",
            "message": "toVersion is only allowed with fromVersion",
            "fieldPath": ".toVersion",
        },
        {
            "rule": "!has(self.toVersion) || !has(self.fromVersion) || self.toVersion >= self.fromVersion",
            "message": "toVersion must not be less than fromVersion",
            "fieldPath": ".toVersion",
        },
    )

    from_version: int | None = Field(None, ge=0, description="First bronze table version to re-merge.")
    to_version: int | None = Field(
        None, ge=0, description="Last bronze table version to re-merge (inclusive); absent means the latest."
    )
    as_of: AsOf | None = Field(
        None,
        description="Re-merge the table as it was at this version (an integer) or RFC 3339 time.",
    )

    @model_validator(mode="after")
    def _one_start(self) -> BronzeOrigin:
        if self.from_version is None and self.as_of is None:
            raise field_error("fromVersion", "required: set exactly one of fromVersion or asOf")
        if self.from_version is not None and self.as_of is not None:
            raise field_error("asOf", "cannot be combined with fromVersion; set exactly one")
        if self.to_version is not None and self.from_version is None:
            raise field_error("toVersion", "only allowed with fromVersion")
        start, end = self.from_version, self.to_version
        if start is not None and end is not None and end < start:
            raise field_error(
                "toVersion", f"must not be less than fromVersion ({self.from_version}), got {self.to_version}"
            )
        return self


class BackfillSpec(SpecModel):
    """What to replay, for which source; fixed once created."""

    model_config = model_rules(
        {
            "rule": "has(self.kafka) || has(self.bronze)",
            "message": "an origin is required: set spec.kafka or spec.bronze",
        },
        {
            "rule": "!(has(self.kafka) && has(self.bronze))",
            "message": "set only one origin, spec.kafka or spec.bronze, not both",
            "fieldPath": ".bronze",
        },
        {
            # Transition rule: the Job was rendered from the spec as created; an edit would be a lie.
            "rule": "self == oldSelf",
            "message": "a Backfill is one-shot: spec cannot change after creation; create a new Backfill",
        },
    )

    source: str = Field(
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Name of the IngestionSource to backfill, in the Backfill's namespace.",
    )
    kafka: KafkaOrigin | None = Field(None, description="Replay a range of the source's Kafka topic.")
    bronze: BronzeOrigin | None = Field(None, description="Re-merge versions of the source's bronze table.")
    chunk_rows: int | None = Field(
        None, ge=1, description="Rows per Postgres merge transaction; absent means the CLI's default."
    )
    resources: ContainerResources | None = Field(
        None,
        description="Requests and limits of the backfill container; absent means the operator's default.",
    )

    @model_validator(mode="after")
    def _one_origin(self) -> BackfillSpec:
        if self.kafka is None and self.bronze is None:
            raise field_error("kafka", "an origin is required: set kafka or bronze")
        if self.kafka is not None and self.bronze is not None:
            raise field_error("bronze", "cannot be combined with kafka; set exactly one origin")
        return self

    def cli_args(self) -> list[str]:
        """The origin as `restlake backfill` options, in a fixed order."""
        args: list[str] = []
        if self.kafka is not None:
            k = self.kafka
            if k.from_time is not None:
                args += ["--from-time", k.from_time.isoformat()]
            if k.from_offsets is not None:
                args += ["--from-offsets", _offsets(k.from_offsets)]
            if k.to_time is not None:
                args += ["--to-time", k.to_time.isoformat()]
            if k.to_offsets is not None:
                args += ["--to-offsets", _offsets(k.to_offsets)]
        if self.bronze is not None:
            b = self.bronze
            if b.from_version is not None:
                args += ["--from-version", str(b.from_version)]
            if b.to_version is not None:
                args += ["--to-version", str(b.to_version)]
            if b.as_of is not None:
                args += ["--as-of", str(b.as_of)]
        if self.chunk_rows is not None:
            args += ["--chunk-rows", str(self.chunk_rows)]
        return args


def _offsets(offsets: dict[str, int]) -> str:
    """``partition:offset`` pairs by partition number, as the CLI reads them (``0:120,1:95``)."""
    return ",".join(f"{p}:{offsets[p]}" for p in sorted(offsets, key=int))


class BackfillCondition(Condition):
    """One aspect of the Backfill's state (Kubernetes condition conventions)."""

    type: str = Field(
        max_length=64,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Condition type: JobCreated, Complete or Failed.",
    )


class BackfillProgress(SpecModel):
    """Rows merged so far, as the running backfill reports them."""

    rows_done: int = Field(ge=0, description="Rows merged so far.")
    rows_total: int = Field(ge=0, description="Rows to merge in total (an estimate until the end).")


class BackfillStatus(SpecModel):
    """What the operator and the backfill process observed."""

    phase: Literal["Pending", "Running", "Succeeded", "Failed"] | None = Field(
        None, description="Pending until the Job's pod runs, then Running, then Succeeded or Failed."
    )
    observed_generation: int | None = Field(None, ge=0, description="metadata.generation handled.")
    job_name: str | None = Field(None, description="The Job running the backfill.")
    conditions: list[BackfillCondition] = Field(
        default_factory=list,
        max_length=16,
        description="Conditions: JobCreated, Complete, Failed.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    start_time: dt.datetime | None = Field(None, description="When the Job started (UTC).")
    completion_time: dt.datetime | None = Field(None, description="When the Job succeeded or failed (UTC).")
    progress: BackfillProgress | None = Field(None, description="Rows merged so far, reported live.")
    summary: dict[str, Any] | None = Field(
        None, description="The JSON summary `restlake backfill` printed when it finished."
    )


class Backfill(SpecModel):
    """A one-shot replay of an IngestionSource's Kafka range or bronze versions into its sinks."""

    api_version: ApiVersion = Field(description=f"{API_VERSION}.")
    kind: Literal["Backfill"] = Field(description="Backfill.")
    metadata: ObjectMeta = Field(description="Name, namespace, labels and annotations.")
    spec: BackfillSpec = Field(description="What to replay, for which source; fixed once created.")
    status: BackfillStatus | None = Field(None, description="What the operator observed.")

    @property
    def name(self) -> str:
        return self.metadata.name


class InvalidBackfill(SpecError):
    """A Backfill document the model refuses; ``problems`` holds ``(field path, message)`` pairs."""

    def __init__(self, backfill: str, problems: list[tuple[str, str]]) -> None:
        super().__init__(backfill, problems)
        lines = "\n".join(f"  {path}: {msg}" for path, msg in problems)
        self.args = (f"invalid Backfill {backfill}:\n{lines}",)


def parse_backfill(document: Any, origin: str) -> Backfill:
    """Validate one Backfill document; errors name the camelCase field path."""
    try:
        return Backfill.model_validate(document, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise InvalidBackfill(origin, problems_of(exc)) from None


# pydantic names the union member it tried (`asOf.int`); YAML has no such level.
_UNION_MEMBERS = frozenset({"int", "str", "constrained-str"})


def problems_of(exc: ValidationError) -> list[tuple[str, str]]:
    """``(field path, message)`` per error: ``spec.kafka.fromTime``, with ``[i]`` for list items."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        path = ""
        key = False
        for item in error["loc"]:
            if isinstance(item, int):
                path += f"[{item}]"
            elif item == "[key]":
                key = True
            elif item not in _UNION_MEMBERS:
                path = f"{path}.{item}" if path else str(item)
        ctx = error.get("ctx") or {}
        if error["type"] == "restlake_field":
            path = f"{path}.{ctx['field']}" if path else str(ctx["field"])
            message = str(ctx["message"])
        elif error["type"] == "missing":
            message = "required"
        elif error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "timezone_aware":
            message = f"needs its offset (Z or +hh:mm), got {error.get('input')!r}"
        else:
            message = (
                error["msg"]
                .removeprefix("Value error, ")
                .replace("Input should", "must")
                .replace("String should", "must")
            )
        if key:
            message = f"key {message}"
        if (path, message) not in problems:
            problems.append((path, message))
    return problems
