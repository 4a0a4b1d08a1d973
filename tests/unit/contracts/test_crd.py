"""The generated CRD: committed file up to date, structural, documented, and agreeing with the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from restlake.contracts import crd

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "crds" / crd.FILENAME
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))

# What a structural schema node may hold (apiextensions.k8s.io/v1 JSONSchemaProps that we use).
ALLOWED_KEYS = {
    "type",
    "description",
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
    "required",
    "properties",
    "additionalProperties",
    "items",
    "anyOf",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
}


def schema(definition: crd.Definition = crd.INGESTION_SOURCE) -> dict[str, Any]:
    return crd.build_crd(definition)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def structural_problems(node: dict[str, Any], path: str, *, is_property: bool) -> list[str]:
    found = [f"{path}: key {k}" for k in node if k not in ALLOWED_KEYS]
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        found.append(f"{path}: anyOf outside an int-or-string node")
    if "type" not in node and not (
        node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    ):
        found.append(f"{path}: no type")
    if is_property and not node.get("description") and not path.startswith("metadata"):
        found.append(f"{path}: no description")
    if "properties" in node and "additionalProperties" in node:
        found.append(f"{path}: properties and additionalProperties together")
    if (
        node.get("type") == "object"
        and not (
            "properties" in node
            or "additionalProperties" in node
            or node.get("x-kubernetes-preserve-unknown-fields")
        )
        and path != "metadata"
    ):
        found.append(f"{path}: object without properties")
    for name, child in node.get("properties", {}).items():
        found += structural_problems(child, f"{path}.{name}".lstrip("."), is_property=True)
    if isinstance(node.get("additionalProperties"), dict):
        found += structural_problems(node["additionalProperties"], f"{path}.*", is_property=False)
    if "items" in node:
        found += structural_problems(node["items"], f"{path}[]", is_property=False)
    return found


@pytest.mark.parametrize("definition", crd.DEFINITIONS, ids=lambda d: d.kind)
def test_committed_crd_is_up_to_date(definition: crd.Definition) -> None:
    committed = REPO / "crds" / definition.filename
    assert committed.exists(), f"{committed} is missing; run `make crds`"
    if committed.read_text(encoding="utf-8") != crd.render_crd(definition):
        pytest.fail(f"{committed.relative_to(REPO)} is out of date with {definition.module}; run `make crds`")


@pytest.mark.parametrize("definition", crd.DEFINITIONS, ids=lambda d: d.kind)
def test_rendering_is_deterministic(definition: crd.Definition) -> None:
    assert crd.render_crd(definition) == crd.render_crd(definition)


@pytest.mark.parametrize("definition", crd.DEFINITIONS, ids=lambda d: d.kind)
def test_schema_is_structural_and_documented(definition: crd.Definition) -> None:
    assert structural_problems(schema(definition), "", is_property=False) == []
    text = crd.render_crd(definition)
    assert "$ref" not in text and "oneOf" not in text and "patternProperties" not in text


def test_names_versions_and_status_subresource() -> None:
    doc = yaml.safe_load(COMMITTED.read_text())
    spec = doc["spec"]
    assert doc["metadata"]["name"] == "ingestionsources.restlake.io"
    assert spec["group"] == "restlake.io" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "IngestionSource",
        "listKind": "IngestionSourceList",
        "plural": "ingestionsources",
        "singular": "ingestionsource",
        "shortNames": ["isrc"],
        "categories": ["restlake"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Phase": ".status.phase",
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Events": ".status.eventsProduced",
        "Lag": ".status.consumerLag",
        "Last Fetch": ".status.lastFetchTime",
        "Age": ".metadata.creationTimestamp",
    }
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(status) == {
        "phase",
        "observedGeneration",
        "conditions",
        "lastFetchTime",
        "eventsProduced",
        "consumerLag",
    }
    condition = status["conditions"]["items"]["properties"]
    assert set(condition) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_discriminated_union_becomes_one_object_with_cel_rules() -> None:
    pagination = schema()["properties"]["spec"]["properties"]["pagination"]
    assert pagination["required"] == ["type"]
    assert pagination["properties"]["type"]["enum"] == [
        "linkHeader",
        "nextUrl",
        "cursor",
        "pageNumber",
        "offset",
        "none",
    ]
    rules = {r["rule"]: r for r in pagination["x-kubernetes-validations"]}
    assert rules[
        "self.type != 'cursor' || "
        "(has(self.cursorPath) || has(self.cursorHeader) || has(self.cursorFromLastRecord))"
    ]["fieldPath"] == (".cursorPath")
    assert "self.type != 'offset' || has(self.limit)" in rules
    assert "!has(self.rel) || self.type == 'linkHeader'" in rules
    # A variant's default would be applied to every variant by the API server; it is documented instead.
    assert "default" not in pagination["properties"]["param"]
    assert pagination["properties"]["param"]["description"].endswith(
        'Default when type is cursor: "cursor". Default when type is pageNumber: "page".'
    )
    auth = schema()["properties"]["spec"]["properties"]["request"]["properties"]["auth"]
    assert "!has(self.__in__) || self.type == 'apiKey'" in {
        r["rule"] for r in auth["x-kubernetes-validations"]
    }


def test_free_form_and_int_or_string_nodes() -> None:
    spec = schema()["properties"]["spec"]["properties"]
    assert spec["schema"]["properties"]["jsonSchema"]["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["request"]["properties"]["body"]["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["request"]["properties"]["params"]["additionalProperties"] == {
        "type": "string",
        "maxLength": 4096,
    }
    cpu = spec["resources"]["properties"]["driver"]["properties"]["limits"]["properties"]["cpu"]
    assert cpu["x-kubernetes-int-or-string"] is True
    assert spec["rateLimit"]["properties"]["requestsPerSecond"] == {
        "type": "number",
        "description": "Sustained request rate, at most 1000 requests per second.",
        "default": 5,
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1000,
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_pass_the_crd_schema(example: Path) -> None:
    # OpenAPI v3.0 value validation is JSON Schema draft 4 plus x- extensions (which draft 4 ignores).
    for document in yaml.safe_load_all(example.read_text()):
        jsonschema.Draft4Validator(schema()).validate(document)


def test_crd_schema_rejects_what_the_model_rejects() -> None:
    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text())
    doc["spec"]["poll"]["interval"] = "10 seconds"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema()).validate(doc)


def test_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert crd.main(["--check", str(tmp_path)]) == 1
    assert "run `make crds`" in capsys.readouterr().err
    assert crd.main(["--write", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "backfills.restlake.io.yaml",
        "ingestionsources.restlake.io.yaml",
    ]
    assert crd.main(["--check", str(tmp_path)]) == 0
    (tmp_path / "backfills.restlake.io.yaml").write_text("stale")
    assert crd.main(["--check", str(tmp_path)]) == 1
    assert "backfill.py; run `make crds`" in capsys.readouterr().err


def test_backfill_crd_names_columns_and_rules() -> None:
    doc = yaml.safe_load((REPO / "crds" / "backfills.restlake.io.yaml").read_text())
    assert doc["metadata"]["name"] == "backfills.restlake.io"
    assert doc["spec"]["names"] == {
        "kind": "Backfill",
        "listKind": "BackfillList",
        "plural": "backfills",
        "singular": "backfill",
        "shortNames": ["bf"],
        "categories": ["restlake"],
    }
    (version,) = doc["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Source",
        "Phase",
        "Rows",
        "Total",
        "Age",
    ]
    spec = schema(crd.BACKFILL)["properties"]["spec"]
    assert spec["required"] == ["source"]
    rules = {r["rule"]: r["message"] for r in spec["x-kubernetes-validations"]}
    assert rules["self == oldSelf"].startswith("a Backfill is one-shot")
    assert "has(self.kafka) || has(self.bronze)" in rules
    offsets = spec["properties"]["kafka"]["properties"]["fromOffsets"]
    assert offsets["additionalProperties"] == {"type": "integer", "minimum": 0}
    as_of = spec["properties"]["bronze"]["properties"]["asOf"]
    assert as_of["x-kubernetes-int-or-string"] is True
    status = schema(crd.BACKFILL)["properties"]["status"]["properties"]
    assert set(status) == {
        "phase",
        "observedGeneration",
        "jobName",
        "conditions",
        "startTime",
        "completionTime",
        "progress",
        "summary",
    }
    assert status["summary"]["x-kubernetes-preserve-unknown-fields"] is True


def test_spec_rules_tie_pagination_to_method_and_format() -> None:
    spec = schema()["properties"]["spec"]
    rules = {r["rule"]: r["message"] for r in spec["x-kubernetes-validations"]}
    # `in` is a CEL keyword: the API server only exposes the property as __in__.
    in_body = next(rule for rule in rules if "__in__" in rule)
    assert rules[in_body] == "pagination.in body needs request.method POST"
    assert "self.request.method == 'POST'" in in_body
    line_formats = next(rule for rule in rules if "records.format" in rule)
    assert all(
        f"has(self.pagination.{n})" in line_formats for n in ("cursorPath", "nextUrlPath", "totalPath")
    )
