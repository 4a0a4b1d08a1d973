"""The API server itself rejects invalid sources (OpenAPI schema and CEL rules), naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from harness import REPO_ROOT as REPO

pytestmark = pytest.mark.k8s

BASE = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text())


def variant(path: str, value: Any) -> dict[str, Any]:
    """BASE with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    doc = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return doc


CASES = {
    # CEL: a cursor paginator needs somewhere to read the cursor from.
    "cursor-without-cursor-path": (
        variant("spec.pagination", {"type": "cursor", "param": "cursor"}),
        ["spec.pagination.cursorPath", "cursorPath"],
    ),
    # CEL: a body only goes with POST.
    "body-with-get": (
        variant("spec.request.body", {"q": 1}),
        ["spec.request.body", "only allowed when method is POST"],
    ),
    # CEL across request and pagination (`in` reaches CEL as __in__): a body parameter needs POST.
    "pagination-in-body-with-get": (
        variant("spec.pagination", {"type": "cursor", "cursorPath": "$.next_cursor", "in": "body"}),
        ["spec.pagination", "pagination.in body needs request.method POST"],
    ),
    # CEL: a jsonl or csv body has no JSON document for cursorPath to read.
    "line-format-with-cursor-path": (
        variant("spec.records.format", "jsonl"),
        ["spec.pagination", "need records.format json"],
    ),
    # CEL on a union variant: basic auth needs a user name.
    "basic-without-username": (
        variant("spec.request.auth", {"type": "basic", "passwordSecretRef": {"name": "s", "key": "k"}}),
        ["spec.request.auth.username"],
    ),
    # Schema: enum.
    "unknown-pagination-type": (
        variant("spec.pagination", {"type": "scroll"}),
        ["spec.pagination.type", 'Unsupported value: "scroll"'],
    ),
    # Schema: minimum.
    "zero-rate": (variant("spec.rateLimit.requestsPerSecond", 0), ["spec.rateLimit.requestsPerSecond"]),
    # Schema: pattern.
    "bad-duration": (variant("spec.poll.interval", "soon"), ["spec.poll.interval", "should match"]),
    "bad-url": (variant("spec.request.url", "ftp://example.org/x"), ["spec.request.url"]),
    # Schema: required.
    "no-request": (variant("spec.request", ...), ["spec.request", "Required value"]),
    # Strict field validation: an unknown (misspelt) field is an error, not silently dropped.
    "unknown-field": (
        variant("spec.pagination.cursorpath", "$.next"),
        ['unknown field "spec.pagination.cursorpath"'],
    ),
    # CEL on sinks: something must be written.
    "no-sink": (
        variant("spec.sinks", {"postgres": {"enabled": False}, "bronze": {"enabled": False}}),
        ["spec.sinks", "at least one of postgres or bronze must be enabled"],
    ),
    # CEL across blocks: bronze checks need the bronze sink.
    "bronze-checks-without-bronze": (
        variant(
            "spec",
            {
                **variant("spec.quality", {"bronze": {"schedule": "@daily"}})["spec"],
                "sinks": {"bronze": {"enabled": False}},
            },
        ),
        ["spec", "quality.bronze checks the bronze table"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_api_server_rejects_with_the_field_named(case: str, control_plane: Any, crds: list[str]) -> None:
    document, expected = CASES[case]
    document["metadata"]["name"] = f"bad-{case}"
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-n", "default", "-f", "-", input=yaml.safe_dump(document), check=False
    )
    assert result.returncode != 0, f"{case} was accepted: {result.stdout}"
    for text in expected:
        assert text in result.stderr, f"{case}: {text!r} not in {result.stderr!r}"


def test_every_example_is_accepted_by_the_api_server(control_plane: Any, crds: list[str]) -> None:
    for example in sorted((REPO / "examples").glob("*.yaml")):
        result = control_plane.kubectl(
            "apply", "--dry-run=server", "-n", "default", "-f", str(example), check=False
        )
        assert result.returncode == 0, f"{example.name}: {result.stderr}"
