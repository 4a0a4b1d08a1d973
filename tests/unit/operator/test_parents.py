"""spec.parent on the operator's side: the parent found by name in the namespace, against a fake cluster."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from restlake.contracts.parents import PARENT_IDENTITY_ANNOTATION, PARENT_TABLE_ANNOTATION
from restlake.kube import conditions
from restlake.operator import parents, reconcile, render

from .test_reconcile import NOW, SETTINGS, FakeCluster, cond, no_topic

REPO = Path(__file__).resolve().parents[3]
PARENT, CHILD = (
    d for d in yaml.safe_load_all((REPO / "examples" / "demo-parent-child.yaml").read_text()) if d
)


def body(document: dict[str, Any], namespace: str = "ns") -> dict[str, Any]:
    doc = copy.deepcopy(document)
    doc["metadata"].update(namespace=namespace, uid=f"uid-{doc['metadata']['name']}", generation=1)
    return doc


def rendered_source(cluster: FakeCluster, name: str) -> dict[str, Any]:
    config = cluster.objects[("ConfigMap", f"{name}-config")]
    return yaml.safe_load(config["data"][render.SOURCE_FILE])


def replicas(cluster: FakeCluster, name: str) -> int:
    return int(cluster.objects[("Deployment", f"{name}-fetcher")]["spec"]["replicas"])


def test_a_missing_parent_holds_the_fetcher_and_says_why() -> None:
    cluster = FakeCluster()
    child = body(CHILD)
    out = reconcile.reconcile(cluster, child, SETTINGS, now=NOW, create_topic=no_topic)
    resolved = cond(out.status, parents.PARENT_RESOLVED)
    assert (resolved["status"], resolved["reason"]) == ("False", parents.NOT_FOUND)
    assert (
        "spec.parent.source 'demo-parent-child-repos' is not an IngestionSource in namespace ns"
        in (resolved["message"])
    )
    fetcher = cond(out.status, conditions.FETCHER_READY)
    assert (fetcher["status"], fetcher["reason"]) == ("False", parents.NOT_FOUND)
    assert cond(out.status, conditions.READY)["reason"] == parents.NOT_FOUND
    assert out.status["phase"] == "Degraded"
    assert out.parent_unresolved is not None
    assert replicas(cluster, "demo-parent-child-issues") == 0


def test_once_the_parent_exists_its_identity_and_table_reach_the_fetcher() -> None:
    cluster = FakeCluster()
    child = body(CHILD)
    reconcile.reconcile(cluster, child, SETTINGS, now=NOW, create_topic=no_topic)
    cluster.sources["demo-parent-child-repos"] = body(PARENT)
    out = reconcile.reconcile(cluster, child, SETTINGS, now=NOW, create_topic=no_topic)
    resolved = cond(out.status, parents.PARENT_RESOLVED)
    assert (resolved["status"], resolved["reason"]) == ("True", parents.FOUND)
    assert out.parent_unresolved is None
    annotations = rendered_source(cluster, "demo-parent-child-issues")["metadata"]["annotations"]
    assert annotations[PARENT_IDENTITY_ANNOTATION] == "demo-parent-child-repos"
    assert annotations[PARENT_TABLE_ANNOTATION] == "raw.api_events"
    assert replicas(cluster, "demo-parent-child-issues") == 1
    assert "ConfigMap/demo-parent-child-issues-config" in out.changed  # the fetcher rolls onto it


def test_a_parent_in_another_namespace_has_the_qualified_identity() -> None:
    cluster = FakeCluster()
    cluster.sources["demo-parent-child-repos"] = body(PARENT, "team-a")
    reconcile.reconcile(cluster, body(CHILD, "team-a"), SETTINGS, now=NOW, create_topic=no_topic)
    annotations = rendered_source(cluster, "demo-parent-child-issues")["metadata"]["annotations"]
    assert annotations[PARENT_IDENTITY_ANNOTATION] == "team-a.demo-parent-child-repos"


def test_a_parent_without_postgres_is_refused() -> None:
    cluster = FakeCluster()
    lake_only = body(PARENT)
    lake_only["spec"]["sinks"] = {"postgres": {"enabled": False}}
    cluster.sources["demo-parent-child-repos"] = lake_only
    out = reconcile.reconcile(cluster, body(CHILD), SETTINGS, now=NOW, create_topic=no_topic)
    resolved = cond(out.status, parents.PARENT_RESOLVED)
    assert (resolved["status"], resolved["reason"]) == ("False", parents.SINK_DISABLED)
    assert "sinks.postgres.enabled is false" in resolved["message"]
    assert replicas(cluster, "demo-parent-child-issues") == 0


def test_a_cycle_is_refused() -> None:
    cluster = FakeCluster()
    looped = body(PARENT)
    looped["spec"]["parent"] = {"source": "demo-parent-child-issues", "bind": {"org": "$.login"}}
    looped["spec"]["request"]["url"] = "http://127.0.0.1:8085/v1/orgs/{org}/repos"
    cluster.sources["demo-parent-child-repos"] = looped
    cluster.sources["demo-parent-child-issues"] = body(CHILD)
    out = reconcile.reconcile(cluster, body(CHILD), SETTINGS, now=NOW, create_topic=no_topic)
    resolved = cond(out.status, parents.PARENT_RESOLVED)
    assert (resolved["status"], resolved["reason"]) == ("False", parents.CYCLE)
    assert (
        "demo-parent-child-issues -> demo-parent-child-repos -> demo-parent-child-issues"
        in (resolved["message"])
    )


def test_a_source_without_parent_has_no_parent_condition() -> None:
    cluster = FakeCluster()
    out = reconcile.reconcile(cluster, body(PARENT), SETTINGS, now=NOW, create_topic=no_topic)
    assert parents.PARENT_RESOLVED not in {c["type"] for c in out.status["conditions"]}
    annotations = rendered_source(cluster, "demo-parent-child-repos")["metadata"].get("annotations", {})
    assert not {PARENT_IDENTITY_ANNOTATION, PARENT_TABLE_ANNOTATION} & set(annotations)


def test_parent_annotations_a_user_wrote_never_reach_the_fetcher() -> None:
    cluster = FakeCluster()
    forged = body(PARENT)
    forged["metadata"]["annotations"] = {
        PARENT_IDENTITY_ANNOTATION: "team-b.secrets",
        PARENT_TABLE_ANNOTATION: "raw.x",
    }
    reconcile.reconcile(cluster, forged, SETTINGS, now=NOW, create_topic=no_topic)
    annotations = rendered_source(cluster, "demo-parent-child-repos")["metadata"].get("annotations", {})
    assert not {PARENT_IDENTITY_ANNOTATION, PARENT_TABLE_ANNOTATION} & set(annotations)
    child = body(CHILD)
    child["metadata"]["annotations"] = {PARENT_IDENTITY_ANNOTATION: "team-b.secrets"}
    reconcile.reconcile(cluster, child, SETTINGS, now=NOW, create_topic=no_topic)
    annotations = rendered_source(cluster, "demo-parent-child-issues")["metadata"].get("annotations", {})
    assert PARENT_IDENTITY_ANNOTATION not in annotations  # unresolved: no parent at all
    assert replicas(cluster, "demo-parent-child-issues") == 0
