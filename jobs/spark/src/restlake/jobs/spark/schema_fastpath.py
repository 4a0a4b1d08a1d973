"""A source's JSON Schema compiled into Spark expressions that accept payloads certainly valid.

Validating every payload with jsonschema in a Python UDF costs tens of microseconds per record
plus the Arrow round trip, and it dominated micro-batch time. The keywords real API schemas use
(type, required, properties, nested objects, arrays with ``items``, enum/const of scalars,
numeric bounds, string lengths, simple patterns) compile into expressions over the payload's
VARIANT. The compiled check only ever *accepts*: a record it does not accept still goes to
jsonschema, which gives the exact reason, so quarantine reasons do not change. A schema using
anything else (``$ref``, ``oneOf``, ``additionalProperties`` …) anywhere gets no fast path at all.

Where Spark and jsonschema could disagree, the compiled check is the stricter one: an integral
``number`` is accepted only when Spark types it so, a ``pattern`` only in a syntax both regex
engines read alike (see ``_SAFE_PATTERN``), ``format`` is an annotation (jsonschema asserts it
only with a format checker, which the stream job does not use).
"""

from __future__ import annotations

import re
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

_ANNOTATIONS = {"$schema", "$id", "title", "description", "examples", "default", "$comment", "format"}
_OBJECT_KEYWORDS = {"required", "properties"}
_NUMBER_KEYWORDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
_STRING_KEYWORDS = {"minLength", "maxLength", "pattern"}
_ARRAY_KEYWORDS = {"items", "minItems", "maxItems"}
_KEYWORDS = (
    {"type", "enum", "const"}
    | _ANNOTATIONS
    | _OBJECT_KEYWORDS
    | _NUMBER_KEYWORDS
    | _STRING_KEYWORDS
    | _ARRAY_KEYWORDS
)
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
# Regex syntax that Java (rlike) and Python (jsonschema's re.search) read the same way, where
# Java is never the more permissive: literals, classes, groups, alternation, quantifiers and the
# \d \w \s escapes (ASCII in Java, Unicode in Python). ``$`` is the exception, handled below.
_SAFE_PATTERN = re.compile(r"^(?:[A-Za-z0-9 _\-:/@.,^$*+?{}()|\[\]]|\\[dwsDWS.\-/\\()\[\]{}+*?|^$])*$")
# Java's $ also matches before a final \r, \u0085, \u2028 or \u2029; Python's only before \n.
_JAVA_ONLY_TERMINATORS = "[\\r\\u0085\\u2028\\u2029]"


class _Unsupported(Exception):
    """The schema uses something the compiler does not translate; no fast path."""


def fast_accept(json_schema: dict[str, Any], payload_json: Column, payload_variant: Column) -> Column | None:
    """A boolean Column, true where the payload certainly satisfies ``json_schema``; None when the
    schema uses keywords this check does not understand (then every record goes to jsonschema).

    ``payload_json`` is the payload as normalised JSON text, ``payload_variant`` the same as VARIANT.
    """
    if not isinstance(json_schema, dict) or json_schema.get("type") != "object":
        return None
    try:
        check = _compile(json_schema, payload_variant)
    except _Unsupported:
        return None
    # The JSON text is normalised by to_json (no leading space), so '{' means a JSON object.
    return F.coalesce(payload_json.startswith("{"), F.lit(False)) & F.coalesce(check, F.lit(False))


def supported(json_schema: dict[str, Any]) -> bool:
    """Whether ``fast_accept`` compiles ``json_schema`` (for a log line at start-up)."""
    return fast_accept(json_schema, F.lit("{}"), F.parse_json(F.lit("{}"))) is not None


def _kind(value: Column) -> Column:
    return F.schema_of_variant(value)


def _is(value: Column, type_name: str) -> Column:
    return F.coalesce(_kind(value).rlike(_TYPE_PATTERNS[type_name]), F.lit(False))


def _types(schema: dict[str, Any]) -> list[str] | None:
    declared = schema.get("type")
    if declared is None:
        return None
    names = [declared] if isinstance(declared, str) else declared
    if not isinstance(names, list) or not names or any(n not in _TYPE_PATTERNS for n in names):
        raise _Unsupported
    return names


def _compile(schema: Any, value: Column) -> Column:
    """True where ``value`` (a VARIANT, not SQL NULL) certainly satisfies ``schema``."""
    if schema is True or schema == {}:
        return F.lit(True)
    if not isinstance(schema, dict) or set(schema) - _KEYWORDS:
        raise _Unsupported
    checks: list[Column] = []
    types = _types(schema)
    if types is not None:
        matches = F.lit(False)
        for name in types:
            matches = matches | _is(value, name)
        checks.append(matches)
    if "enum" in schema or "const" in schema:
        allowed = schema["enum"] if "enum" in schema else [schema["const"]]
        checks.append(_one_of(value, allowed))
    if set(schema) & _OBJECT_KEYWORDS:
        checks.append(~_is(value, "object") | _object(schema, value))
    if set(schema) & _NUMBER_KEYWORDS:
        checks.append(~(_is(value, "number")) | _number(schema, value))
    if set(schema) & _STRING_KEYWORDS:
        checks.append(~_is(value, "string") | _string(schema, value))
    if set(schema) & _ARRAY_KEYWORDS:
        checks.append(~_is(value, "array") | _array(schema, value))
    out = F.lit(True)
    for check in checks:
        out = out & F.coalesce(check, F.lit(False))
    return out


def _one_of(value: Column, allowed: Any) -> Column:
    if not isinstance(allowed, list) or not allowed:
        raise _Unsupported
    out = F.lit(False)
    for item in allowed:
        # bool before int: True == 1 in Python, not in JSON Schema.
        if isinstance(item, bool):
            match = _is(value, "boolean") & (F.try_variant_get(value, "$", "boolean") == F.lit(item))
        elif isinstance(item, str):
            match = _is(value, "string") & (F.try_variant_get(value, "$", "string") == F.lit(item))
        elif item is None:
            match = _is(value, "null")
        elif isinstance(item, int) and abs(item) < 2**53:
            match = _is(value, "integer") & (F.try_variant_get(value, "$", "decimal(38,0)") == F.lit(item))
        else:
            raise _Unsupported
        out = out | F.coalesce(match, F.lit(False))
    return out


def _object(schema: dict[str, Any], value: Column) -> Column:
    required = schema.get("required", [])
    properties = schema.get("properties", {})
    if not isinstance(required, list) or not isinstance(properties, dict):
        raise _Unsupported
    names = set(required) | set(properties)
    if not all(isinstance(n, str) and _SIMPLE_NAME.match(n) for n in names):
        raise _Unsupported
    out = F.lit(True)
    for name in sorted(names):
        member = F.variant_get(value, f"$.{name}", "variant")
        if name in required:
            out = out & member.isNotNull()
        if name in properties:
            out = out & (member.isNull() | F.coalesce(_compile(properties[name], member), F.lit(False)))
    return out


def _bound(schema: dict[str, Any], key: str) -> float | int | None:
    bound = schema.get(key)
    if bound is None:
        return None
    if isinstance(bound, bool) or not isinstance(bound, int | float):
        raise _Unsupported
    return bound


def _number(schema: dict[str, Any], value: Column) -> Column:
    number = F.try_variant_get(value, "$", "double")
    # Beyond 2**53 a double is not the number jsonschema compares (Python reads JSON integers exactly).
    out = number.isNotNull() & (F.abs(number) < F.lit(float(2**53)))
    for key, holds in (
        ("minimum", lambda b: number >= F.lit(b)),
        ("maximum", lambda b: number <= F.lit(b)),
        ("exclusiveMinimum", lambda b: number > F.lit(b)),
        ("exclusiveMaximum", lambda b: number < F.lit(b)),
    ):
        bound = _bound(schema, key)
        if bound is not None:
            if abs(bound) >= 2**53:
                raise _Unsupported  # beyond what a double compares exactly
            out = out & holds(bound)
    return out


def _count_limits(schema: dict[str, Any], count: Column, lower: str, upper: str) -> Column:
    """``lower`` <= ``count`` <= ``upper`` for the integer bounds the schema sets (minLength, minItems …)."""
    out = F.lit(True)
    for key, holds in ((lower, lambda n: count >= F.lit(n)), (upper, lambda n: count <= F.lit(n))):
        limit = schema.get(key)
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise _Unsupported
            out = out & holds(limit)
    return out


def _string(schema: dict[str, Any], value: Column) -> Column:
    text = F.try_variant_get(value, "$", "string")
    out = text.isNotNull()
    out = out & _count_limits(schema, F.char_length(text), "minLength", "maxLength")
    pattern = schema.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str) or not _SAFE_PATTERN.match(pattern):
            raise _Unsupported
        out = out & text.rlike(pattern)
        if "$" in pattern.replace("\\$", ""):
            out = out & ~text.rlike(_JAVA_ONLY_TERMINATORS)
    return out


def _array(schema: dict[str, Any], value: Column) -> Column:
    elements = F.try_variant_get(value, "$", "array<variant>")
    out = elements.isNotNull()
    out = out & _count_limits(schema, F.size(elements), "minItems", "maxItems")
    items = schema.get("items")
    if items is not None:
        if not isinstance(items, dict | bool):
            raise _Unsupported  # the tuple form (a list of schemas)
        if items is False:
            out = out & (F.size(elements) == F.lit(0))
        else:
            # A JSON null element is a VARIANT null, not SQL NULL, so _compile sees every element.
            out = out & F.forall(elements, lambda element: F.coalesce(_compile(items, element), F.lit(False)))
    return out
