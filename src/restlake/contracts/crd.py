"""Generate the CRDs from the pydantic models, so a CRD and its model cannot disagree.

    python -m restlake.contracts.crd --write crds/    # what `make crds` runs
    python -m restlake.contracts.crd --check crds/    # exit 1 when a committed file is stale

One CRD per definition in ``DEFINITIONS``: IngestionSource (``spec.py``) and Backfill (``backfill.py``).
Kubernetes wants a *structural* schema: every node typed, no ``$ref``, no ``anyOf``/``oneOf``
deciding types. pydantic's JSON Schema is converted accordingly: refs are inlined, ``Optional`` just
leaves the field out of ``required``, and a discriminated union becomes one object with the union of
the variants' properties, an ``enum`` on ``type`` and CEL rules for what each variant requires and
forbids (the same rules the pydantic variants enforce).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from restlake.contracts import backfill
from restlake.contracts.api_version import API_GROUP, VERSION
from restlake.contracts.patterns import DNS1123_LABEL
from restlake.contracts.spec import KIND, IngestionSource

PLURAL = "ingestionsources"
SINGULAR = "ingestionsource"
SHORT_NAMES = ["isrc"]
CATEGORIES = ["restlake"]
CRD_NAME = f"{PLURAL}.{API_GROUP}"
FILENAME = f"{CRD_NAME}.yaml"

# Copied as they are; anything else pydantic emits (title, additionalProperties: false, ...) is dropped.
_VALUE_KEYS = (
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
)
# Output order of a node's keys: type and description first, so the YAML reads top-down.
_KEY_ORDER = (
    "type",
    "description",
    *_VALUE_KEYS,
    "x-kubernetes-int-or-string",
    "anyOf",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "x-kubernetes-validations",
)

_K8S_API_VERSION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values."
)
_K8S_KIND = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. In CamelCase."
)

PRINTER_COLUMNS = [
    {
        "name": "Phase",
        "type": "string",
        "jsonPath": ".status.phase",
        "description": "Summary of the conditions.",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Whether fetcher and stream are running.",
    },
    {
        "name": "Events",
        "type": "integer",
        "jsonPath": ".status.eventsProduced",
        "description": "Records published to Kafka.",
    },
    {
        "name": "Lag",
        "type": "integer",
        "jsonPath": ".status.consumerLag",
        "description": "Kafka messages not yet processed by the stream job.",
    },
    {
        "name": "Last Fetch",
        "type": "date",
        "jsonPath": ".status.lastFetchTime",
        "description": "Last page fetched.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

BACKFILL_PRINTER_COLUMNS = [
    {"name": "Source", "type": "string", "jsonPath": ".spec.source", "description": "The IngestionSource."},
    {
        "name": "Phase",
        "type": "string",
        "jsonPath": ".status.phase",
        "description": "Pending, Running, Succeeded or Failed.",
    },
    {
        "name": "Rows",
        "type": "integer",
        "jsonPath": ".status.progress.rowsDone",
        "description": "Rows merged so far.",
    },
    {
        "name": "Total",
        "type": "integer",
        "jsonPath": ".status.progress.rowsTotal",
        "description": "Rows to merge in total.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


@dataclass(frozen=True)
class Definition:
    """One custom resource: its model, names and the module the model lives in (for the header)."""

    model: type[BaseModel]
    kind: str
    plural: str
    singular: str
    short_names: list[str]
    printer_columns: list[dict[str, str]]
    module: str
    categories: list[str] = field(default_factory=lambda: list(CATEGORIES))

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{API_GROUP}"

    @property
    def filename(self) -> str:
        return f"{self.crd_name}.yaml"

    @property
    def header(self) -> str:
        return (
            f"# Generated from {self.module} by `make crds`"
            " (python -m restlake.contracts.crd --write crds/). Do not edit.\n"
        )


INGESTION_SOURCE = Definition(
    model=IngestionSource,
    kind=KIND,
    plural=PLURAL,
    singular=SINGULAR,
    short_names=SHORT_NAMES,
    printer_columns=PRINTER_COLUMNS,
    module="src/restlake/contracts/spec.py",
)
BACKFILL = Definition(
    model=backfill.Backfill,
    kind=backfill.KIND,
    plural="backfills",
    singular="backfill",
    short_names=["bf"],
    printer_columns=BACKFILL_PRINTER_COLUMNS,
    module="src/restlake/contracts/backfill.py",
)
DEFINITIONS = (INGESTION_SOURCE, BACKFILL)


class SchemaConversionError(ValueError):
    """The pydantic schema uses a construct a structural schema cannot express."""


class _Converter:
    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs

    def deref(self, node: dict[str, Any]) -> dict[str, Any]:
        """Inline ``$ref`` (and pydantic's single-element ``allOf`` wrapper); sibling keys win."""
        node = dict(node)
        while True:
            if "$ref" in node:
                target = self.defs[node.pop("$ref").rsplit("/", 1)[-1]]
            elif "allOf" in node and len(node["allOf"]) == 1:
                target = node.pop("allOf")[0]
            else:
                return node
            node = {**copy.deepcopy(target), **node}

    def convert(self, node: dict[str, Any], path: str) -> dict[str, Any]:
        node = self.deref(node)
        if "anyOf" in node:
            return self._any_of(node, path)
        if "oneOf" in node:
            if "discriminator" not in node:
                raise SchemaConversionError(f"{path}: oneOf without a discriminator")
            return self._union(node, path)
        out: dict[str, Any] = {}
        if "const" in node:
            out["enum"] = [node["const"]]
        for key in _VALUE_KEYS:
            if key in node and not (key == "default" and node[key] is None):
                out[key] = copy.deepcopy(node[key])
        if isinstance(out.get("exclusiveMinimum"), (int, float)) and not isinstance(
            out["exclusiveMinimum"], bool
        ):
            # JSON Schema 2020-12 spells it as a number; OpenAPI v3.0 (Kubernetes) as a flag on minimum.
            out["minimum"], out["exclusiveMinimum"] = out["exclusiveMinimum"], True
        if isinstance(out.get("exclusiveMaximum"), (int, float)) and not isinstance(
            out["exclusiveMaximum"], bool
        ):
            out["maximum"], out["exclusiveMaximum"] = out["exclusiveMaximum"], True
        if "description" in node:
            out["description"] = node["description"]
        out.update({k: copy.deepcopy(v) for k, v in node.items() if k.startswith("x-kubernetes-")})
        if "x-kubernetes-validations" in out:
            out["x-kubernetes-validations"] = [_rule(r) for r in out["x-kubernetes-validations"]]
        kind = node.get("type")
        if kind is None:
            if node.keys() - {"description", "default", "title"}:
                raise SchemaConversionError(f"{path}: no type in {json.dumps(node, sort_keys=True)}")
            out["x-kubernetes-preserve-unknown-fields"] = True  # `Any`
            return _ordered(out)
        out["type"] = kind
        if kind == "object":
            self._object(node, out, path)
        elif kind == "array":
            out["items"] = self.convert(node.get("items", {}), f"{path}[]")
        if "enum" in out and kind == "string":
            # CEL cost estimates need a bound on every string a rule compares.
            out.setdefault("maxLength", max(len(v) for v in out["enum"]))
        return _ordered(out)

    def _object(self, node: dict[str, Any], out: dict[str, Any], path: str) -> None:
        properties = node.get("properties", {})
        extra = node.get("additionalProperties")
        patterns = node.get("patternProperties", {})
        if patterns:
            # A map with constrained keys: structural schemas have no patternProperties, so the
            # values are typed by additionalProperties and the keys checked by a CEL rule.
            if len(patterns) > 1 or properties or extra is not None:
                raise SchemaConversionError(f"{path}: patternProperties beside other key rules")
            ((pattern, extra),) = patterns.items()
            rules = out.setdefault("x-kubernetes-validations", [])
            if not any(f"matches('{pattern}')" in r["rule"] for r in rules):
                rules.append(
                    {"rule": f"self.all(k, k.matches('{pattern}'))", "message": f"keys must match {pattern}"}
                )
        if properties:
            out["properties"] = {k: self.convert(v, f"{path}.{k}") for k, v in properties.items()}
            if node.get("required"):
                out["required"] = list(node["required"])
        elif extra is True or extra == {} or (extra is None and not properties):
            out["x-kubernetes-preserve-unknown-fields"] = True  # free-form JSON (jsonSchema, body)
        elif isinstance(extra, dict):
            out["additionalProperties"] = self.convert(extra, f"{path}.*")

    def _any_of(self, node: dict[str, Any], path: str) -> dict[str, Any]:
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        members = [self.deref(m) for m in node["anyOf"] if m.get("type") != "null"]
        if len(members) == 1:  # Optional[X]: not required, no null type
            merged = {**members[0], **{k: v for k, v in outer.items() if not (k == "default" and v is None)}}
            return self.convert(merged, path)
        if sorted(m.get("type", "") for m in members) == ["integer", "string"] and all(
            len(m) == 1 for m in members
        ):
            out = self.convert({k: v for k, v in outer.items() if k != "type"} | {"type": "string"}, path)
            out.pop("type")
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
            out["x-kubernetes-int-or-string"] = True
            return _ordered(out)
        raise SchemaConversionError(f"{path}: cannot express anyOf {json.dumps(members, sort_keys=True)}")

    def _union(self, node: dict[str, Any], path: str) -> dict[str, Any]:
        discriminator = node["discriminator"]["propertyName"]
        variants: list[tuple[str, dict[str, Any]]] = []
        for member in node["oneOf"]:
            converted = self.convert(member, path)
            tag = converted["properties"][discriminator]["enum"][0]
            variants.append((tag, converted))
        tags = [tag for tag, _ in variants]
        owners: dict[str, list[str]] = {}
        schemas: dict[str, list[dict[str, Any]]] = {}
        for tag, variant in variants:
            for name, schema in variant["properties"].items():
                if name != discriminator:
                    owners.setdefault(name, []).append(tag)
                    schemas.setdefault(name, []).append(schema)

        tag_docs = " ".join(v["properties"][discriminator].get("description", t) for t, v in variants)
        properties: dict[str, Any] = {
            discriminator: {
                "type": "string",
                "description": f"Variant, one of {', '.join(tags)}. {tag_docs}",
                "enum": tags,
                "maxLength": max(len(t) for t in tags),
            }
        }
        for name, found in schemas.items():
            properties[name] = _merge_property(
                path, name, owners[name], found, everywhere=len(owners[name]) == len(tags)
            )

        rules: list[dict[str, str]] = []
        for tag, variant in variants:
            for name in variant.get("required", []):
                if name != discriminator:
                    rules.append(
                        {
                            "rule": f"self.{discriminator} != '{tag}' || has(self.{_cel(name)})",
                            "message": f"{name} is required when {discriminator} is {tag}",
                            "fieldPath": f".{name}",
                        }
                    )
            for rule in variant.get("x-kubernetes-validations", []):
                rules.append(_rule({**rule, "rule": f"self.{discriminator} != '{tag}' || ({rule['rule']})"}))
        for name, allowed in owners.items():
            if len(allowed) < len(tags):
                test = (
                    f"self.{discriminator} == '{allowed[0]}'"
                    if len(allowed) == 1
                    else f"self.{discriminator} in [{', '.join(repr(t) for t in allowed)}]"
                )
                rules.append(
                    {
                        "rule": f"!has(self.{_cel(name)}) || {test}",
                        "message": f"{name} is only allowed when {discriminator} is {' or '.join(allowed)}",
                        "fieldPath": f".{name}",
                    }
                )
        out: dict[str, Any] = {"type": "object", "properties": properties, "required": [discriminator]}
        if "description" in node:
            out["description"] = node["description"]
        out["x-kubernetes-validations"] = rules
        return _ordered(out)


# CEL keywords cannot be field names; Kubernetes exposes such a property `x` as `__x__`.
_CEL_RESERVED = frozenset(
    [
        *("true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function"),
        *("if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"),
    ]
)


def _cel(name: str) -> str:
    """A property name as a CEL expression sees it (Kubernetes' escaping rules)."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    for raw, escaped in (("__", "__underscores__"), (".", "__dot__"), ("-", "__dash__"), ("/", "__slash__")):
        name = name.replace(raw, escaped)
    return name


def _rule(rule: dict[str, str]) -> dict[str, str]:
    """A validation rule with its keys in reading order (pydantic sorts them)."""
    order = ("rule", "message", "fieldPath", "reason")
    return {k: rule[k] for k in order if k in rule} | {
        k: v for k, v in sorted(rule.items()) if k not in order
    }


def _merge_property(
    path: str, name: str, tags: list[str], found: list[dict[str, Any]], *, everywhere: bool
) -> dict[str, Any]:
    """One property shared by several variants: same shape required; descriptions and defaults combined."""
    shapes = [{k: v for k, v in s.items() if k not in ("description", "default")} for s in found]
    if any(shape != shapes[0] for shape in shapes[1:]):
        raise SchemaConversionError(f"{path}.{name}: variants {tags} give it different schemas")
    merged = dict(found[0])
    descriptions = list(dict.fromkeys(s.get("description", "") for s in found))
    merged["description"] = descriptions[0]
    defaults = [json.dumps(s.get("default"), sort_keys=True) for s in found]
    merged.pop("default", None)
    if everywhere and len(set(defaults)) == 1 and "default" in found[0]:
        merged["default"] = found[0]["default"]
    else:
        # The API server would apply a default to every variant, and the other variants forbid the
        # field; so the default is documented here and applied by the pydantic model instead.
        notes = [
            f"Default when type is {tag}: {json.dumps(s['default'])}."
            for tag, s in zip(tags, found, strict=True)
            if "default" in s
        ]
        if notes:
            merged["description"] = " ".join([merged["description"], *notes])
    return _ordered(merged)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    known = {k: node[k] for k in _KEY_ORDER if k in node}
    return {**known, **{k: node[k] for k in sorted(node) if k not in known}}


def openapi_schema(definition: Definition = INGESTION_SOURCE) -> dict[str, Any]:
    """The structural ``openAPIV3Schema`` of one resource (the IngestionSource by default)."""
    source = definition.model.model_json_schema(by_alias=True, mode="validation")
    converter = _Converter(source.get("$defs", {}))
    properties = source["properties"]
    return _ordered(
        {
            "type": "object",
            "description": source["description"],
            "required": ["spec"],
            "properties": {
                "apiVersion": {"type": "string", "description": _K8S_API_VERSION},
                "kind": {"type": "string", "description": _K8S_KIND},
                # Only name and generateName may be constrained; the API server owns the rest.
                "metadata": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL}},
                },
                "spec": converter.convert(properties["spec"], "spec"),
                "status": converter.convert(properties["status"], "status"),
            },
        }
    )


def build_crd(definition: Definition = INGESTION_SOURCE) -> dict[str, Any]:
    """The CustomResourceDefinition object of one resource (the IngestionSource by default)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": definition.crd_name,
            "labels": {"app.kubernetes.io/name": "restlake", "app.kubernetes.io/part-of": "restlake"},
        },
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": definition.kind,
                "listKind": f"{definition.kind}List",
                "plural": definition.plural,
                "singular": definition.singular,
                "shortNames": definition.short_names,
                "categories": definition.categories,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": definition.printer_columns,
                    "schema": {"openAPIV3Schema": openapi_schema(definition)},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # inlined refs must not come out as YAML anchors
        return True


def render_crd(definition: Definition = INGESTION_SOURCE) -> str:
    """The CRD as committed in ``crds/``: YAML, deterministic."""
    body = yaml.dump(build_crd(definition), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    return definition.header + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m restlake.contracts.crd", description=__doc__.splitlines()[0]
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="DIR", type=Path, help="write the CRDs into DIR")
    group.add_argument("--check", metavar="DIR", type=Path, help="fail if a CRD in DIR is not up to date")
    args = parser.parse_args(argv)
    if args.write is not None:
        args.write.mkdir(parents=True, exist_ok=True)
        for definition in DEFINITIONS:
            (args.write / definition.filename).write_text(render_crd(definition), encoding="utf-8")
            print(f"wrote {args.write / definition.filename}")
        return 0
    stale = 0
    for definition in DEFINITIONS:
        target = args.check / definition.filename
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != render_crd(definition):
            print(f"{target} is out of date with {definition.module}; run `make crds`", file=sys.stderr)
            stale += 1
        else:
            print(f"{target} is up to date")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
