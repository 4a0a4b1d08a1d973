"""spec.parent: the URL template rules, and resolving a child's parent among the sources given."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from restlake.contracts.parents import (
    PARENT_IDENTITY_ANNOTATION,
    PARENT_TABLE_ANNOTATION,
    resolve_parents,
    run_order,
)
from restlake.contracts.spec import IngestionSource, parse_source, url_variables
from restlake.errors import SpecError

BASE = "https://api.example.com"


def doc(name: str, url: str, parent: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"request": {"url": url}, **spec}
    if parent is not None:
        body["parent"] = parent
    return {
        "apiVersion": "restlake.io/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": name},
        "spec": body,
    }


REPOS = doc("repos", f"{BASE}/orgs/acme/repos")
ISSUES = doc(
    "issues",
    f"{BASE}/repos/{{owner}}/{{repo}}/issues",
    {"source": "repos", "bind": {"owner": "$.owner.login", "repo": "$.name"}},
)


def source(document: dict[str, Any]) -> IngestionSource:
    return parse_source(copy.deepcopy(document), str(document["metadata"]["name"]))


def problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_source(copy.deepcopy(document), "test")
    return info.value.problems


def test_a_child_source_parses_with_its_bindings() -> None:
    child = source(ISSUES)
    assert child.spec.parent is not None
    assert child.spec.parent.source == "repos"
    assert child.spec.parent.bind == {"owner": "$.owner.login", "repo": "$.name"}
    assert child.spec.parent.refresh_every is None
    assert url_variables(child.spec.request.url) == ["owner", "repo"]


def test_refresh_every_is_a_bounded_duration() -> None:
    ok = copy.deepcopy(ISSUES)
    ok["spec"]["parent"]["refreshEvery"] = "6h"
    assert source(ok).spec.parent.refresh_every.total_seconds() == 6 * 3600  # type: ignore[union-attr]
    for bad, message in (("30s", "must be at least 1m"), ("400d", "must be at most 365d")):
        wrong = copy.deepcopy(ISSUES)
        wrong["spec"]["parent"]["refreshEvery"] = bad
        assert any(p == "spec.parent.refreshEvery" and message in m for p, m in problems(wrong))


def test_a_variable_without_a_parent_is_refused_naming_the_url() -> None:
    (problem,) = problems(doc("x", f"{BASE}/repos/{{repo}}/issues"))
    assert problem[0] == "spec.request.url"
    assert "template variable {repo}, which needs spec.parent" in problem[1]


def test_every_variable_must_be_bound() -> None:
    only_owner = copy.deepcopy(ISSUES)
    only_owner["spec"]["parent"]["bind"] = {"owner": "$.owner.login"}
    (problem,) = problems(only_owner)
    assert problem[0] == "spec.parent.bind"
    assert "no entry for {repo} of request.url" in problem[1]


def test_every_binding_must_be_used() -> None:
    extra = copy.deepcopy(ISSUES)
    extra["spec"]["parent"]["bind"]["org"] = "$.owner.login"
    (problem,) = problems(extra)
    assert problem == (
        "spec.parent.bind.org",
        "is not used: request.url has no {org}; remove the entry or use it in the URL",
    )


def test_a_bind_path_must_compile_and_a_name_must_be_a_variable_name() -> None:
    bad_path = copy.deepcopy(ISSUES)
    bad_path["spec"]["parent"]["bind"]["repo"] = "$.name[?("
    assert any(p == "spec.parent.bind.repo" and "not a valid JSONPath" in m for p, m in problems(bad_path))
    bad_name = copy.deepcopy(ISSUES)
    bad_name["spec"]["parent"]["bind"] = {"owner": "$.owner.login", "repo": "$.name", "9x": "$.id"}
    assert any(
        p.startswith("spec.parent.bind") and "template variable name" in m for p, m in problems(bad_name)
    )


def test_a_variable_in_the_host_is_refused() -> None:
    host = doc("x", "https://{tenant}.example.com/items", {"source": "repos", "bind": {"tenant": "$.slug"}})
    (problem,) = problems(host)
    assert problem[0] == "spec.request.url"
    assert "not in the host" in problem[1]


def test_a_source_cannot_be_its_own_parent() -> None:
    own = copy.deepcopy(ISSUES)
    own["spec"]["parent"]["source"] = "issues"
    (problem,) = problems(own)
    assert problem[0] == "spec.parent.source"
    assert "names this source itself" in problem[1]


def test_variables_are_also_allowed_in_the_query() -> None:
    child = source(
        doc("q", f"{BASE}/search?repo={{repo}}", {"source": "repos", "bind": {"repo": "$.full_name"}})
    )
    assert url_variables(child.spec.request.url) == ["repo"]


# -- resolution -------------------------------------------------------------------------------------


def test_the_parent_is_found_by_name_in_any_order() -> None:
    links = resolve_parents([source(ISSUES), source(REPOS)])
    assert list(links) == ["issues"]
    link = links["issues"]
    assert (link.name, link.identity, link.table) == ("repos", "repos", "raw.api_events")
    assert [s.name for s in run_order([source(ISSUES), source(REPOS)])] == ["repos", "issues"]


def test_a_grandchild_runs_after_its_parent_and_grandparent() -> None:
    comments = doc(
        "comments", f"{BASE}/issues/{{issue}}/comments", {"source": "issues", "bind": {"issue": "$.id"}}
    )
    sources = [source(comments), source(ISSUES), source(REPOS)]
    assert set(resolve_parents(sources)) == {"issues", "comments"}
    assert [s.name for s in run_order(sources)] == ["repos", "issues", "comments"]


def test_a_missing_parent_is_refused_naming_the_field() -> None:
    with pytest.raises(SpecError) as info:
        resolve_parents([source(ISSUES)])
    ((field, message),) = info.value.problems
    assert field == "spec.parent.source"
    assert "names 'repos', which is not among the sources given" in message


def test_a_parent_without_postgres_is_refused() -> None:
    lake_only = doc("repos", f"{BASE}/orgs/acme/repos", sinks={"postgres": {"enabled": False}})
    with pytest.raises(SpecError) as info:
        resolve_parents([source(lake_only), source(ISSUES)])
    ((field, message),) = info.value.problems
    assert field == "spec.parent.source"
    assert "sinks.postgres.enabled is false" in message


def test_a_cycle_is_refused() -> None:
    a = doc("a", f"{BASE}/a/{{x}}", {"source": "b", "bind": {"x": "$.id"}})
    b = doc("b", f"{BASE}/b/{{x}}", {"source": "a", "bind": {"x": "$.id"}})
    with pytest.raises(SpecError) as info:
        resolve_parents([source(a), source(b)])
    ((field, message),) = info.value.problems
    assert field == "spec.parent.source"
    assert "cycle of parents (a -> b -> a)" in message


def test_the_operator_rendered_annotations_stand_in_for_a_parent_not_given() -> None:
    rendered = copy.deepcopy(ISSUES)
    rendered["metadata"]["annotations"] = {
        PARENT_IDENTITY_ANNOTATION: "team-a.repos",
        PARENT_TABLE_ANNOTATION: "raw.repos",
    }
    link = resolve_parents([source(rendered)])["issues"]
    assert (link.identity, link.table) == ("team-a.repos", "raw.repos")
