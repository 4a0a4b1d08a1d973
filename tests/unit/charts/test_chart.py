"""The Helm chart's static contracts: CRDs in step with crds/, every value documented and typed.

These need no helm binary; rendering and installing are in tests/k8s/test_helm.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "restlake"
VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
SCHEMA = json.loads((CHART / "values.schema.json").read_text())

# Values whose content is a free-form Kubernetes object (resources, affinity, ...): the schema
# types them but does not enumerate their keys, so the key comparison stops there.
OPAQUE = {
    "commonLabels",
    "imagePullSecrets",
    "operator.resources",
    "operator.podSecurityContext",
    "operator.securityContext",
    "operator.podAnnotations",
    "operator.podLabels",
    "operator.nodeSelector",
    "operator.tolerations",
    "operator.affinity",
    "operator.extraEnv",
    "serviceAccount.annotations",
    "jobs.serviceAccount.annotations",
    "spark.podSecurityContext",
    "spark.securityContext",
    "spark.master.resources",
    "spark.master.nodeSelector",
    "spark.master.tolerations",
    "spark.master.affinity",
    "spark.worker.resources",
    "spark.worker.nodeSelector",
    "spark.worker.tolerations",
    "spark.worker.affinity",
}


def _value_keys(node: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in node.items():
        path = f"{prefix}{key}"
        keys.add(path)
        if isinstance(value, dict) and path not in OPAQUE:
            keys |= _value_keys(value, f"{path}.")
    return keys


def _schema_keys(node: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        keys.add(path)
        keys |= _schema_keys(sub, f"{path}.")
    return keys


def _schema_nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path or "<root>", node)]
    for key, sub in node.get("properties", {}).items():
        found += _schema_nodes(sub, f"{path}.{key}" if path else key)
    return found


def _documented_keys(text: str) -> set[str]:
    """Dotted paths of the keys in values.yaml that have a `# --` comment right above them."""
    documented: set[str] = set()
    stack: list[str] = []
    pending = False
    for line in text.splitlines():
        if not line.strip():
            pending = False
            continue
        if re.match(r"^\s*# -- ", line):
            pending = True
            continue
        if re.match(r"^\s*#", line):  # continuation of a description
            continue
        match = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
        if not match:
            continue
        depth = len(match.group(1)) // 2
        stack = [*stack[:depth], match.group(2)]
        if pending:
            documented.add(".".join(stack))
        pending = False
    return documented


def test_chart_crds_are_a_copy_of_the_generated_crds() -> None:
    generated = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert generated, "crds/ holds no CRD"
    for name in generated:
        copy = CHART / "files" / "crds" / name
        assert copy.is_file(), f"charts/restlake/files/crds/{name} is missing: make crds"
        assert copy.read_text() == (REPO / "crds" / name).read_text(), (
            f"charts/restlake/files/crds/{name} drifted from crds/{name}: make crds"
        )


def test_chart_ships_only_known_crds() -> None:
    # Ours are templates (files/crds/), upgraded with the release: Helm installs a crds/ folder
    # once and never upgrades it.
    shipped = {p.name for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert shipped == {p.name for p in (REPO / "crds").glob("*.yaml")}
    # kopf's peering CRDs stay in crds/: the chart renders a KopfPeering, and Helm can only map an
    # object of a CRD installed before the templates. They are kopf's and do not change with us.
    peering = {p.name for p in (CHART / "crds").glob("*.yaml")}
    assert peering == {"clusterkopfpeerings.kopf.dev.yaml", "kopfpeerings.kopf.dev.yaml"}
    for name in peering:
        (doc,) = yaml.safe_load_all((CHART / "crds" / name).read_text())
        assert f"{doc['metadata']['name']}.yaml" == name


def test_every_value_is_in_the_schema_and_every_schema_key_in_the_values() -> None:
    in_values = _value_keys(VALUES)
    in_schema = _schema_keys(SCHEMA)
    assert sorted(in_values - in_schema) == [], "values.yaml keys missing from values.schema.json"
    assert sorted(in_schema - in_values) == [], "values.schema.json keys missing from values.yaml"


def test_every_schema_node_is_described_and_typed() -> None:
    for path, node in _schema_nodes(SCHEMA):
        assert node.get("description", "").strip(), f"{path} has no description"
        assert node.get("type"), f"{path} has no type"
        if node.get("type") == "object" and path not in OPAQUE and "properties" in node:
            # A typo in a --set key must fail the install instead of being ignored.
            assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"


def test_every_leaf_value_is_commented_in_values_yaml() -> None:
    leaves = {p for p in _value_keys(VALUES) if p in OPAQUE or not isinstance(_lookup(VALUES, p), dict)}
    assert sorted(leaves - _documented_keys(VALUES_TEXT)) == [], "values without a `# --` comment"


def _lookup(node: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        node = node[part]
    return node


def test_default_values_satisfy_the_schema() -> None:
    jsonschema.validate(VALUES, SCHEMA)


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("spark.worker.memory", 2),
        ("spark.worker.memory", "2 GB"),
        ("spark.worker.cores", 0),
        ("operator.image.pullPolicy", "Sometimes"),
        ("operator.logLevel", "TRACE"),
        ("operator.replcias", 2),
    ],
)
def test_schema_rejects_bad_values(path: str, bad: object) -> None:
    values = json.loads(json.dumps(VALUES))
    *parents, leaf = path.split(".")
    target = values
    for part in parents:
        target = target[part]
    target[leaf] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, SCHEMA)


def test_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # Image tags default to appVersion, and the images are built from this package version.
    assert chart["appVersion"] == project["version"]
