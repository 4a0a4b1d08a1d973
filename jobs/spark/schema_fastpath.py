"""A Spark-native pre-check that accepts payloads which certainly satisfy a simple JSON Schema.

Validating every payload with jsonschema in a Python UDF costs tens of microseconds per record
plus the Arrow round trip, and it dominated micro-batch time. Most real schemas only say "an
object with these required fields of these types"; for those, the VARIANT payload can be checked
with Spark expressions. The check only ever *accepts*: a record it does not accept still goes to
jsonschema, which gives the exact reason. So the quarantine reasons are unchanged, and for a
schema using anything beyond the supported keywords there is no fast path at all.
"""

from __future__ import annotations

import re
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

# Keywords the fast path understands. Annotations (title, description, ...) change nothing.
_ANNOTATIONS = {"$schema", "$id", "title", "description", "examples", "default", "$comment", "format"}
_TOP_KEYWORDS = {"type", "required", "properties"} | _ANNOTATIONS
_PROPERTY_KEYWORDS = {"type"} | _ANNOTATIONS
_SIMPLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTEGRAL = r"^(BIGINT|INT|SMALLINT|TINYINT|DECIMAL\(\d+,0\))$"
# schema_of_variant names of JSON values that certainly are of each JSON Schema type (1.0 parses
# as DECIMAL(1,0), an integer to jsonschema too; 1.5 as DECIMAL(2,1), a number).
_TYPE_PATTERNS = {
    "string": r"^STRING$",
    "integer": _INTEGRAL,
    "number": r"^(BIGINT|INT|SMALLINT|TINYINT|DECIMAL\(\d+,\d+\)|DOUBLE|FLOAT)$",
    "boolean": r"^BOOLEAN$",
    "null": r"^VOID$",
    "array": r"^ARRAY<",
    "object": r"^OBJECT<",
}


def _types(schema: dict[str, Any]) -> list[str] | None:
    declared = schema.get("type")
    names = [declared] if isinstance(declared, str) else declared
    if not isinstance(names, list) or not names or any(n not in _TYPE_PATTERNS for n in names):
        return None
    return names


def fast_accept(json_schema: dict[str, Any], payload_json: Column, payload_variant: Column) -> Column | None:
    """A boolean Column, true where the payload certainly satisfies ``json_schema``; None when the
    schema uses keywords this check does not understand (then every record goes to jsonschema).

    ``payload_json`` is the payload as normalised JSON text, ``payload_variant`` the same as VARIANT.
    """
    if set(json_schema) - _TOP_KEYWORDS or json_schema.get("type") != "object":
        return None
    required = json_schema.get("required", [])
    properties = json_schema.get("properties", {})
    if not isinstance(required, list) or not isinstance(properties, dict):
        return None
    names = set(required) | set(properties)
    if not all(isinstance(n, str) and _SIMPLE_NAME.match(n) for n in names):
        return None
    # The JSON text is normalised by to_json (no leading space), so '{' means a JSON object.
    accepted = F.coalesce(payload_json.startswith("{"), F.lit(False))
    for name in sorted(names):
        value = F.variant_get(payload_variant, f"$.{name}", "variant")
        if name in required:
            accepted = accepted & value.isNotNull()
        spec = properties.get(name, {})
        if not isinstance(spec, dict) or set(spec) - _PROPERTY_KEYWORDS:
            return None
        if "type" not in spec:
            continue
        types = _types(spec)
        if types is None:
            return None
        kind = F.schema_of_variant(value)
        matches = F.lit(False)
        for name_of_type in types:
            matches = matches | kind.rlike(_TYPE_PATTERNS[name_of_type])
        accepted = accepted & (value.isNull() | F.coalesce(matches, F.lit(False)))
    return accepted
