"""The demo API's parent -> child shape: an organisation's repositories, each repository's issues."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from restlake.demoapi import DemoApiConfig, DemoApiHandle, running_demo_api
from restlake.demoapi.faults import FaultConfig
from restlake.demoapi.orgs import OrgConfig

from .demoapi_http import http_get

ORGS = OrgConfig(repos=3, issues_per_repo=5)


@pytest.fixture
def api() -> Iterator[DemoApiHandle]:
    with running_demo_api(DemoApiConfig(orgs=ORGS)) as handle:
        yield handle


def test_repositories_name_their_owner_and_link_to_the_next_page(api: DemoApiHandle) -> None:
    status, headers, body = http_get(api.url("/v1/orgs/acme/repos?per_page=2"))
    repos = json.loads(body)
    assert status == 200 and [r["id"] for r in repos] == [1001, 1002]
    assert repos[0]["full_name"] == f"acme/{repos[0]['name']}"
    assert repos[0]["owner"]["login"] == "acme"
    assert 'rel="next"' in headers["Link"]
    assert http_get(api.url("/v1/orgs/nobody/repos"))[0] == 404


def test_issues_of_one_repository_with_validators_and_since(api: DemoApiHandle) -> None:
    name = json.loads(http_get(api.url("/v1/orgs/acme/repos"))[2])[1]["name"]
    path = f"/v1/repos/acme/{name}/issues"
    status, headers, body = http_get(api.url(path))
    issues = json.loads(body)
    assert status == 200 and [i["number"] for i in issues] == [1, 2, 3, 4, 5]
    assert len({i["id"] for i in issues}) == 5 and all(i["id"] // 10_000 == 1002 for i in issues)
    assert http_get(api.url(path), {"If-None-Match": headers["ETag"]})[0] == 304
    changed = api.touch_org(name, 4)
    assert changed["number"] == 4 and changed["updated_at"] == "2024-01-01T00:01:00Z"
    status, _, body = http_get(api.url(path), {"If-None-Match": headers["ETag"]})
    assert status == 200
    since = json.loads(http_get(api.url(f"{path}?since=2024-01-01T00:00:30Z"))[2])
    assert [i["number"] for i in since] == [4]
    assert http_get(api.url("/v1/repos/acme/nope/issues"))[0] == 404


def test_touching_a_repository_changes_its_record_and_nothing_else(api: DemoApiHandle) -> None:
    before = json.loads(http_get(api.url("/v1/orgs/acme/repos"))[2])
    api.touch_org(before[0]["name"])
    after = json.loads(http_get(api.url("/v1/orgs/acme/repos"))[2])
    assert after[0] != before[0] and after[1:] == before[1:]
    with pytest.raises(RuntimeError, match="404"):
        api.touch_org("nope")


def test_the_request_log_and_fault_injection_cover_these_listings(api: DemoApiHandle) -> None:
    api.requests(clear=True)
    http_get(api.url("/v1/orgs/acme/repos?per_page=2"))
    http_get(api.url("/healthz"))
    assert api.requests() == ["GET /v1/orgs/acme/repos?per_page=2"]
    api.set_faults(FaultConfig(fail_next=1, error_status=503))
    assert http_get(api.url("/v1/repos/acme/atlas-1/issues"))[0] == 503
