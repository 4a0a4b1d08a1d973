"""Condition messages quote what the cluster said; none of it may put a credential into a CR status."""

from __future__ import annotations

from restlake.kube.conditions import Condition


def test_a_condition_message_is_redacted_in_the_status() -> None:
    message = (
        "Back-off pulling image from https://robot:Pull-Secret-77@registry.example/img; "
        "env RESTLAKE_PG_DSN=host=db password=Pg-Secret-88"
    )
    status = Condition("FetcherReady", "False", "ImagePullBackOff", message).as_dict(
        3, "2026-01-01T00:00:00Z"
    )
    assert status["message"] == (
        "Back-off pulling image from https://robot:***@registry.example/img; "
        "env RESTLAKE_PG_DSN=host=db password=***"
    )
    assert (status["type"], status["reason"], status["observedGeneration"]) == (
        "FetcherReady",
        "ImagePullBackOff",
        3,
    )
