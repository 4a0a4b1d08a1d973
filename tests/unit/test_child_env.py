"""A child process's environment: this one's, less what it must not inherit, plus its own."""

from __future__ import annotations

import pytest

from restlake.child_env import child_env


def test_the_child_inherits_this_environment_with_overrides_on_top(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTLAKE_CHILD_ENV_PROBE", "parent")
    monkeypatch.setenv("PREFECT_API_URL", "http://elsewhere/api")
    env = child_env({"RESTLAKE_CHILD_ENV_PROBE": "child"}, without=["PREFECT_API_URL"])
    assert env["RESTLAKE_CHILD_ENV_PROBE"] == "child"
    assert "PREFECT_API_URL" not in env and "PATH" in env


def test_a_given_base_replaces_this_environment() -> None:
    assert child_env({"B": "2"}, base={"A": "1", "C": "3"}, without=["C"]) == {"A": "1", "B": "2"}
