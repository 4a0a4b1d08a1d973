"""Is a JSON Schema change allowed under a compatibility mode? A pure, conservative checker.

The modes mean what they mean in schema registries:

- ``BACKWARD``: the new schema accepts every record the old one accepted (data already in Kafka and
  bronze stays valid), so no new required field, no narrowed type, enum or bound;
- ``FORWARD``: the old schema accepts every record the new one accepts (readers of the old schema keep
  working), i.e. BACKWARD with old and new swapped;
- ``FULL``: both; ``NONE``: anything goes.

Only the structural keywords a record schema is made of are compared (``type``, ``properties``,
``required``, ``additionalProperties``, ``items``, ``enum``/``const`` and the numeric and length
bounds, ``pattern``, ``format``). A change the checker cannot prove harmless is reported, since a false
refusal costs one edit and a false acceptance costs a quarantine full of good records. One deliberate
exception: declaring a property the old schema did not describe is allowed (see ``_properties``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["NONE", "BACKWARD", "FORWARD", "FULL"]

SCHEMA_PATH = "spec.schema.jsonSchema"
# JSON Schema type names; integer is a subset of number.
_ALL_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})
# Lower bounds: a larger new value narrows. Upper bounds: a smaller new value narrows.
_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


@dataclass(frozen=True)
class Incompatibility:
    """One change that breaks the mode: where (a field path under the spec) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def check(old: dict[str, Any] | None, new: dict[str, Any] | None, mode: Mode) -> list[Incompatibility]:
    """Every reason ``new`` may not replace ``old`` under ``mode``; empty means the change is allowed."""
    if mode == "NONE" or old is None or new is None or old == new:
        return []
    found: list[Incompatibility] = []
    if mode in ("BACKWARD", "FULL"):
        found += _widens(old, new, SCHEMA_PATH, "")
    if mode in ("FORWARD", "FULL"):
        found += _widens(new, old, SCHEMA_PATH, "FORWARD: ")
    return found


def _types(schema: dict[str, Any]) -> frozenset[str]:
    declared = schema.get("type")
    if declared is None:
        return _ALL_TYPES
    names = frozenset([declared] if isinstance(declared, str) else declared)
    return names | {"integer"} if "number" in names else names


def _widens(wide: dict[str, Any], narrow: dict[str, Any], path: str, prefix: str) -> list[Incompatibility]:
    """Reasons why ``narrow`` may reject a value that ``wide`` accepts (so narrow ⊉ wide)."""
    if narrow == wide or narrow in ({}, True):
        return []
    if not isinstance(wide, dict) or not isinstance(narrow, dict):
        return [Incompatibility(path, f"{prefix}schema changed from {wide!r} to {narrow!r}")]
    found: list[Incompatibility] = []

    def add(where: str, message: str) -> None:
        found.append(Incompatibility(where, prefix + message))

    lost = sorted(_types(wide) - _types(narrow))
    if lost:
        add(
            f"{path}.type",
            f"no longer accepts {', '.join(lost)} (was {wide.get('type', 'any')!r}, "
            f"now {narrow.get('type', 'any')!r})",
        )

    wide_enum = _enum(wide)
    narrow_enum = _enum(narrow)
    if narrow_enum is not None:
        if wide_enum is None:
            add(f"{path}.enum", f"restricts values to {narrow_enum!r} where any value was allowed")
        else:
            dropped = [v for v in wide_enum if v not in narrow_enum]
            if dropped:
                add(f"{path}.enum", f"no longer allows {dropped!r}")

    for key in _LOWER:
        if key in narrow and (key not in wide or narrow[key] > wide[key]):
            add(f"{path}.{key}", f"raised from {wide.get(key, 'none')!r} to {narrow[key]!r}")
    for key in _UPPER:
        if key in narrow and (key not in wide or narrow[key] < wide[key]):
            add(f"{path}.{key}", f"lowered from {wide.get(key, 'none')!r} to {narrow[key]!r}")
    for key in ("pattern", "format", "multipleOf"):
        if key in narrow and narrow[key] != wide.get(key):
            add(f"{path}.{key}", f"changed from {wide.get(key, 'none')!r} to {narrow[key]!r}")

    wide_required = set(wide.get("required", []))
    for name in sorted(set(narrow.get("required", [])) - wide_required):
        add(f"{path}.required", f"new required field {name!r}: records without it would be rejected")

    found += _properties(wide, narrow, path, prefix)
    wide_items, narrow_items = wide.get("items"), narrow.get("items")
    if isinstance(narrow_items, dict):
        found += _widens(
            wide_items if isinstance(wide_items, dict) else {}, narrow_items, f"{path}.items", prefix
        )
    return found


def _enum(schema: dict[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    return list(schema["enum"]) if "enum" in schema else None


def _properties(
    wide: dict[str, Any], narrow: dict[str, Any], path: str, prefix: str
) -> list[Incompatibility]:
    found: list[Incompatibility] = []
    wide_props: dict[str, Any] = wide.get("properties", {})
    narrow_props: dict[str, Any] = narrow.get("properties", {})
    wide_extra = wide.get("additionalProperties", True)
    narrow_extra = narrow.get("additionalProperties", True)
    for name, schema in narrow_props.items():
        if name not in wide_props and not isinstance(wide_extra, dict):
            # Declaring a field the old schema did not describe is how schemas grow; strictly, an
            # old record might carry that name with another type, but refusing every new optional
            # field (as Confluent's open-content-model rule does) would make BACKWARD unusable.
            continue
        before = wide_props.get(name, wide_extra)
        found += _widens(before, schema, f"{path}.properties.{name}", prefix)
    if narrow_extra is False:
        for name in sorted(set(wide_props) - set(narrow_props)):
            found.append(
                Incompatibility(
                    f"{path}.properties.{name}",
                    f"{prefix}removed while additionalProperties is false: "
                    "records carrying it would be rejected",
                )
            )
        if wide_extra is not False:
            found.append(
                Incompatibility(
                    f"{path}.additionalProperties",
                    f"{prefix}set to false: records with fields not listed would be rejected",
                )
            )
    elif isinstance(narrow_extra, dict):
        found += _widens(
            wide_extra if isinstance(wide_extra, dict) else {},
            narrow_extra,
            f"{path}.additionalProperties",
            prefix,
        )
        # Fields that were declared before and are now governed by additionalProperties.
        for name in sorted(set(wide_props) - set(narrow_props)):
            found += _widens(wide_props[name], narrow_extra, f"{path}.properties.{name}", prefix)
    return found
