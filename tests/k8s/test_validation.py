"""The API server itself refuses invalid sources (OpenAPI schema and CEL rules), naming the field.

The cases are the spec corpus (tests/spec_corpus.py), the same table `restlake validate` is tested
with in tests/unit/contracts/test_spec_corpus.py; cases the CRD cannot express say why and are skipped here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from harness import REPO_ROOT as REPO
from kubernetes import client
from kubernetes.client.rest import ApiException

from restlake.contracts.spec import API_GROUP

from ..spec_corpus import CANARY, CORPUS, BadSpec, Expect

pytestmark = pytest.mark.k8s

API_CASES = [case for case in CORPUS if case.api is not None]


def refusal(custom: client.CustomObjectsApi, case: BadSpec) -> str | None:
    """Why the API server refused the case's document (None when it accepted it)."""
    try:
        # Dry run: nothing is stored, so every case may keep the base's name.
        custom.create_namespaced_custom_object(
            API_GROUP,
            "v1alpha1",
            "default",
            "ingestionsources",
            case.document,
            dry_run="All",
            field_validation="Strict",
        )
    except ApiException as exc:
        return str(exc.body)
    return None


def names_the_field(body: str, expect: Expect) -> bool:
    status = json.loads(body)
    causes = (status.get("details") or {}).get("causes") or []
    if any(c.get("field") == expect.field and expect.message in c.get("message", "") for c in causes):
        return True
    # Strict decoding errors (unknown fields) come without causes: the message names the path.
    return not causes and expect.field in status.get("message", "") and expect.message in status["message"]


def test_the_api_server_refuses_every_corpus_case_naming_the_field(api: Any, crds: list[str]) -> None:
    custom = client.CustomObjectsApi(api)
    wrong: dict[str, str] = {}
    for case in API_CASES:
        assert case.api is not None
        body = refusal(custom, case)
        if body is None:
            wrong[case.name] = "accepted"
        elif not names_the_field(body, case.api):
            wrong[case.name] = f"expected {case.api.field}: ...{case.api.message}... in {body}"
        elif CANARY in body:
            wrong[case.name] = f"the refusal repeats the credential: {body}"
    assert wrong == {}
    assert len(API_CASES) >= 50


def test_every_example_is_accepted_by_the_api_server(control_plane: Any, crds: list[str]) -> None:
    for example in sorted((REPO / "examples").glob("*.yaml")):
        result = control_plane.kubectl(
            "apply", "--dry-run=server", "-n", "default", "-f", str(example), check=False
        )
        assert result.returncode == 0, f"{example.name}: {result.stderr}"
