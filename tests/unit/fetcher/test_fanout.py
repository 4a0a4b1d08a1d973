"""Fan-out planning for a child source: which parent records get a child fetch, and their URLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from restlake.fetcher.fanout import (
    CHANGED,
    NEW,
    REFRESH,
    MissingBindValue,
    ParentMark,
    ParentRow,
    UrlBinder,
    parent_digest,
    plan,
    state_scope,
)

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


def row(key: str, digest: str) -> ParentRow:
    return ParentRow(key, digest, {"name": key})


def mark(key: str, digest: str, age: timedelta = timedelta(0)) -> ParentMark:
    return ParentMark(key, digest, NOW - age)


def test_first_pass_fetches_children_of_every_parent() -> None:
    result = plan([row("a", "h1"), row("b", "h2")], {}, now=NOW)
    assert [(r.external_id, why) for r, why in result.due] == [("a", NEW), ("b", NEW)]
    assert result.unchanged == 0


def test_later_passes_fetch_only_new_and_changed_parents() -> None:
    rows = [row("a", "h1"), row("b", "h2-new"), row("c", "h3"), row("d", "h4")]
    marks = {"a": mark("a", "h1"), "b": mark("b", "h2"), "c": mark("c", "h3")}
    result = plan(rows, marks, now=NOW)
    assert [(r.external_id, why) for r, why in result.due] == [("b", CHANGED), ("d", NEW)]
    assert result.unchanged == 2
    assert result.reasons() == {CHANGED: 1, NEW: 1}


def test_refresh_every_brings_back_parents_whose_children_are_older() -> None:
    rows = [row("a", "h1"), row("b", "h2")]
    marks = {"a": mark("a", "h1", timedelta(hours=25)), "b": mark("b", "h2", timedelta(hours=1))}
    assert plan(rows, marks, now=NOW).due == []
    result = plan(rows, marks, now=NOW, refresh_every=timedelta(days=1))
    assert [(r.external_id, why) for r, why in result.due] == [("a", REFRESH)]
    assert result.unchanged == 1


def test_a_parent_gone_from_the_table_is_simply_not_planned() -> None:
    result = plan([row("a", "h1")], {"a": mark("a", "h1"), "gone": mark("gone", "x")}, now=NOW)
    assert result.due == [] and result.unchanged == 1


def test_marks_round_trip_through_json() -> None:
    original = mark("acme/widgets", "abc", timedelta(minutes=3))
    assert ParentMark.from_json(original.as_json()) == original


def test_each_parent_key_has_its_own_state_scope() -> None:
    assert state_scope("issues", "1") != state_scope("issues", "2")
    assert state_scope("issues", "1") == f"issues#{parent_digest('1')}"
    assert state_scope("issues", "1") != state_scope("comments", "1")


def test_values_are_path_escaped_so_a_parent_cannot_change_the_url_shape() -> None:
    binder = UrlBinder(
        "https://api.example.com/repos/{repo}/issues?label={label}",
        {"repo": "$.full_name", "label": "$.label"},
    )
    url = binder.url(ParentRow("7", "h", {"full_name": "acme/a b", "label": "x&y=z#f"}))
    assert url == "https://api.example.com/repos/acme%2Fa%20b/issues?label=x%26y%3Dz%23f"


def test_numbers_and_nested_values_bind_as_text() -> None:
    binder = UrlBinder("https://api.example.com/repos/{owner}/{id}", {"owner": "$.owner.login", "id": "$.id"})
    assert binder.url(ParentRow("7", "h", {"owner": {"login": "acme"}, "id": 7.0})) == (
        "https://api.example.com/repos/acme/7"
    )


@pytest.mark.parametrize("payload", [{}, {"full_name": None}, {"full_name": ""}, {"full_name": {"a": 1}}])
def test_a_missing_value_is_a_per_record_error_naming_the_binding(payload: dict) -> None:
    binder = UrlBinder("https://api.example.com/repos/{repo}/issues", {"repo": "$.full_name"})
    with pytest.raises(MissingBindValue) as info:
        binder.url(ParentRow("42", "h", payload))
    assert info.value.variable == "repo"
    assert "parent record '42' has no scalar value at spec.parent.bind.repo ($.full_name)" in str(info.value)
