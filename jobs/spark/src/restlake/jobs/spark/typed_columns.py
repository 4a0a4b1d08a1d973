"""Typed bronze columns derived from the source's JSON Schema, next to the raw payload.

Rule (simple and deterministic, so a schema maps to the same columns everywhere): every top-level
property of ``properties`` whose ``type`` is one scalar JSON type (or that type plus ``"null"``)
becomes a column ``p_<name>``, with ``<name>`` lower-cased and every character outside
``[a-z0-9_]`` replaced by ``_``. integer → BIGINT, number → DOUBLE, boolean → BOOLEAN, string →
STRING (a ``date-time`` format stays a string: APIs disagree on what they call ISO 8601). A
property whose column name collides with an earlier one (in sorted order) gets no column. Objects,
arrays and untyped properties stay in ``payload`` only. A value of another type gives NULL
(``try_variant_get``): the payload, untouched, is the truth; the columns are a convenience.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

PREFIX = "p_"
_SPARK_TYPES: dict[str, T.DataType] = {
    "integer": T.LongType(),
    "number": T.DoubleType(),
    "boolean": T.BooleanType(),
    "string": T.StringType(),
}
_UNSAFE = re.compile(r"[^a-z0-9_]")


@dataclass(frozen=True, slots=True)
class TypedColumn:
    """One payload property projected to a column."""

    column: str
    property: str
    data_type: T.DataType

    def extract(self, payload_variant: Column) -> Column:
        # $['name'] rather than $.name: property names may hold dots, spaces or quotes.
        escaped = self.property.replace("\\", "\\\\").replace("'", "\\'")
        return F.try_variant_get(payload_variant, f"$['{escaped}']", self.data_type.simpleString()).alias(
            self.column
        )


def _scalar_type(spec: Any) -> str | None:
    if not isinstance(spec, dict):
        return None
    declared = spec.get("type")
    if isinstance(declared, list):
        kinds = [k for k in declared if k != "null"]
        declared = kinds[0] if len(kinds) == 1 else None
    return declared if isinstance(declared, str) and declared in _SPARK_TYPES else None


def typed_columns(json_schema: dict[str, Any] | None) -> list[TypedColumn]:
    """The typed columns ``json_schema`` declares, in column-name order."""
    if not json_schema:
        return []
    properties = json_schema.get("properties")
    if not isinstance(properties, dict):
        return []
    result: dict[str, TypedColumn] = {}
    for name in sorted(properties):
        kind = _scalar_type(properties[name])
        if kind is None:
            continue
        column = PREFIX + _UNSAFE.sub("_", str(name).lower())
        result.setdefault(column, TypedColumn(column, str(name), _SPARK_TYPES[kind]))
    return sorted(result.values(), key=lambda c: c.column)


def schema_fields(columns: list[TypedColumn]) -> list[T.StructField]:
    return [T.StructField(c.column, c.data_type) for c in columns]
