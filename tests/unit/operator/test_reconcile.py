"""Reconciliation and status against a fake cluster: conditions, phase, refusal, pause, topics."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from restlake.contracts.spec import parse_source
from restlake.errors import SpecError, TransientError
from restlake.kube import conditions
from restlake.operator import credentials, pod_secrets, reconcile, render, scrape, topic_ledger
from restlake.operator.settings import OperatorSettings

from ...installed_source import module_source

REPO = Path(__file__).resolve().parents[3]
# The operator runs in the sources' namespace: their identity is the bare name (see render.identity).
SETTINGS = OperatorSettings(metrics_url="http://metrics/{namespace}/{service}:{port}", release_namespace="ns")
NOW = "2030-01-01T00:00:00Z"


class FakeCluster:
    """Stores applied objects by (kind, name); serves the kinds it is told to."""

    def __init__(
        self, *, strimzi: bool = True, prometheus: bool = True, strimzi_api: str = "kafka.strimzi.io/v1"
    ) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.kinds = {"ConfigMap", "Service", "Deployment", "CronJob", "ServiceAccount"}
        self.kinds |= {"KafkaTopic"} if strimzi else set()
        self.kinds |= {"ServiceMonitor"} if prometheus else set()
        self.strimzi_api = strimzi_api
        self.applies = 0
        self.versions = 0
        # IngestionSources exist unless stored or named here as gone (the operator reads its own).
        self.sources_gone: set[str] = set()
        self.sources: dict[str, dict[str, Any]] = {}
        # Secret metadata by name; the examples' token is labelled for restlake, and the operator's
        # Postgres Secret is there, as the chart creates it in the release namespace.
        self.secrets: dict[str, dict[str, Any]] = {
            "github-token": {"metadata": {"name": "github-token", "labels": {credentials.LABEL: "true"}}},
            SETTINGS.pg_dsn_secret: {"metadata": {"name": SETTINGS.pg_dsn_secret}},
        }

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Like server-side apply: the resourceVersion moves only when the content changes."""
        self.applies += 1
        live = self.objects.setdefault((obj["kind"], obj["metadata"]["name"]), {})
        status = live.get("status")
        version = live.get("metadata", {}).get("resourceVersion")
        before = copy.deepcopy({k: v for k, v in live.items() if k != "status"})
        for server_side in ("resourceVersion", "generation"):
            before.get("metadata", {}).pop(server_side, None)
        if before != obj or version is None:
            self.versions += 1
            version = str(self.versions)
        live.clear()
        live.update(copy.deepcopy(obj))
        live["metadata"]["resourceVersion"] = version
        if status is not None:
            live["status"] = status
        return copy.deepcopy(live)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        if kind == "IngestionSource" and (kind, name) not in self.objects:
            # The live source: what a test registered in `sources` (the same dict it keeps editing).
            found_source = None if name in self.sources_gone else self.sources.get(name)
            return copy.deepcopy(found_source) if found_source is not None else None
        found = self.objects.get((kind, name))
        if found is not None and kind == "KafkaTopic" and found.get("apiVersion") != api_version:
            return None
        return copy.deepcopy(found)

    def metadata(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> dict[str, Any] | None:
        assert kind == "Secret", f"only Secrets are read by metadata, not {kind}"
        return copy.deepcopy(self.secrets.get(name))

    def served(self, api_version: str, kind: str) -> bool:
        if kind == "KafkaTopic":
            return kind in self.kinds and api_version == self.strimzi_api
        return kind in self.kinds

    def merge(
        self, api_version: str, kind: str, name: str, namespace: str | None, patch: dict[str, Any]
    ) -> dict[str, Any]:
        live = self.objects[(kind, name)]
        for key, value in patch.get("data", {}).items():
            if value is None:
                live["data"].pop(key, None)
            else:
                live["data"][key] = value
        return copy.deepcopy(live)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        return self.objects.pop((kind, name), None) is not None

    def set_status(self, kind: str, name: str, status: dict[str, Any], generation: int = 1) -> None:
        self.objects[(kind, name)]["status"] = status
        self.objects[(kind, name)]["metadata"]["generation"] = generation


def body(generation: int = 1, **changes: Any) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / "github-issues.yaml").read_text())
    doc["metadata"].update(namespace="ns", uid="uid-1", generation=generation)
    doc["metadata"].update(changes.pop("metadata", {}))
    doc["spec"].update(changes)
    return doc


def cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def no_topic(*_: Any, **__: Any) -> bool:
    raise AssertionError("the admin API must not be used when Strimzi is installed")


def test_first_reconcile_applies_everything_and_reports_honest_unknowns() -> None:
    cluster = FakeCluster()
    out = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    assert out.applied == [
        "ConfigMap/github-issues-config",
        "ServiceAccount/github-issues-fetcher",
        "ServiceAccount/github-issues-runtime",
        "Service/github-issues-fetcher",
        "Service/github-issues-stream",
        "Deployment/github-issues-fetcher",
        "Deployment/github-issues-stream",
        "KafkaTopic/github-issues-topic",
        "KafkaTopic/github-issues-dlq-topic",
        "ServiceMonitor/github-issues-fetcher",
        "ServiceMonitor/github-issues-stream",
    ]
    assert out.changed == out.applied  # all of it was new
    status = out.status
    assert status["observedGeneration"] == 1
    assert status["phase"] == "Provisioning"
    assert [c["type"] for c in status["conditions"]] == [
        "Ready",
        "FetcherReady",
        "StreamReady",
        "TopicReady",
        "CredentialsAllowed",
        "SchemaCompatible",
        "QualityPassing",
        "ReconciliationPaused",
    ]
    assert cond(status, "CredentialsAllowed")["reason"] == "SecretsLabelled"
    assert cond(status, "FetcherReady")["status"] == "Unknown"
    assert cond(status, "FetcherReady")["reason"] == "RolloutPending"
    assert cond(status, "TopicReady")["reason"] == "WaitingForTopicOperator"
    assert cond(status, "QualityPassing") == {
        "type": "QualityPassing",
        "status": "Unknown",
        "reason": "NotEvaluated",
        "message": "no quality results reported yet",
        "lastTransitionTime": NOW,
        "observedGeneration": 1,
    }
    assert cond(status, "Ready")["status"] == "Unknown"
    assert all(c["observedGeneration"] == 1 for c in status["conditions"])


def available(replicas: int = 1) -> dict[str, Any]:
    return {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": replicas,
        "readyReplicas": replicas,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}],
    }


def test_status_follows_deployments_and_topic_to_running() -> None:
    cluster = FakeCluster()
    first = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    cluster.set_status("Deployment", "github-issues-fetcher", available())
    cluster.set_status(
        "Deployment",
        "github-issues-stream",
        {
            "observedGeneration": 1,
            "replicas": 1,
            "unavailableReplicas": 1,
            "conditions": [
                {
                    "type": "Available",
                    "status": "False",
                    "reason": "MinimumReplicasUnavailable",
                    "message": "Deployment does not have minimum availability.",
                }
            ],
        },
    )
    live = body()
    live["status"] = first.status
    cluster.sources["github-issues"] = live
    seen: list[str] = []

    def scraper(url: str, source: str, *, timeout: float) -> scrape.Figures:
        seen.append(url)
        return scrape.Figures(events_produced=42, last_fetch_time="2030-01-01T00:00:05Z")

    patch, drifted, basis, _ = reconcile.resync(
        cluster, live, SETTINGS, now="2030-01-01T00:01:00Z", scraper=scraper, create_topic=no_topic
    )
    assert basis == live  # the write is guarded by the read the status was computed from
    assert drifted == []
    assert seen == [
        "http://metrics/ns/github-issues-fetcher:9108",
        "http://metrics/ns/github-issues-stream:9109",
    ]
    assert patch["eventsProduced"] == 42 and patch["lastFetchTime"] == "2030-01-01T00:00:05Z"
    assert "consumerLag" not in patch  # not measured: the old value stays
    assert cond(patch, "FetcherReady")["status"] == "True"
    stream = cond(patch, "StreamReady")
    assert (stream["status"], stream["reason"]) == ("False", "MinimumReplicasUnavailable")
    assert (
        stream["message"]
        == "0/1 replicas available, 0 updated: Deployment does not have minimum availability."
    )
    assert stream["lastTransitionTime"] == "2030-01-01T00:01:00Z"  # Unknown → False is a transition
    assert cond(patch, "SchemaCompatible")["lastTransitionTime"] == NOW  # unchanged status keeps its time
    assert cond(patch, "Ready")["status"] == "False"

    cluster.set_status("Deployment", "github-issues-stream", available())
    cluster.set_status(
        "KafkaTopic", "github-issues-topic", {"conditions": [{"type": "Ready", "status": "True"}]}
    )
    live["status"] = {**first.status, **patch}
    waiting, _, _, _ = reconcile.resync(
        cluster, live, SETTINGS, now=NOW, scraper=scraper, create_topic=no_topic
    )
    topic = cond(waiting, "TopicReady")
    assert (topic["status"], topic["reason"]) == ("Unknown", "WaitingForTopicOperator")
    assert "github-issues-dlq-topic" in topic["message"]  # the dead-letter topic counts too
    cluster.set_status(
        "KafkaTopic", "github-issues-dlq-topic", {"conditions": [{"type": "Ready", "status": "True"}]}
    )
    final, _, _, _ = reconcile.resync(
        cluster, live, SETTINGS, now=NOW, scraper=scraper, create_topic=no_topic
    )
    assert final["phase"] == "Running"
    assert cond(final, "Ready") | {"lastTransitionTime": "-"} == {
        "type": "Ready",
        "status": "True",
        "reason": "Running",
        "message": "fetcher and stream job are available",
        "lastTransitionTime": "-",
        "observedGeneration": 1,
    }


def test_pause_scales_to_zero_and_says_so() -> None:
    cluster = FakeCluster()
    out = reconcile.reconcile(
        cluster,
        body(metadata={"annotations": {render.PAUSE_ANNOTATION: "true"}}),
        SETTINGS,
        now=NOW,
        create_topic=no_topic,
    )
    assert cluster.objects[("Deployment", "github-issues-fetcher")]["spec"]["replicas"] == 0
    assert cluster.objects[("Deployment", "github-issues-stream")]["spec"]["replicas"] == 0
    assert out.status["phase"] == "Paused"
    assert cond(out.status, "ReconciliationPaused")["status"] == "True"
    assert cond(out.status, "Ready")["reason"] == "ReconciliationPaused"


def test_breaking_schema_change_is_refused_and_the_old_schema_kept() -> None:
    cluster = FakeCluster()
    reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    old_schema = json.loads(cluster.objects[("ConfigMap", "github-issues-config")]["data"]["stream.json"])[
        "json_schema"
    ]
    breaking = body(generation=2)
    breaking["spec"]["schema"]["jsonSchema"]["required"].append("body")
    breaking["spec"]["poll"]["interval"] = "120s"
    out = reconcile.reconcile(cluster, breaking, SETTINGS, now=NOW, create_topic=no_topic)
    assert [str(p) for p in out.refused] == [
        "spec.schema.jsonSchema.required: new required field 'body': records without it would be rejected"
    ]
    schema = cond(out.status, "SchemaCompatible")
    assert (schema["status"], schema["reason"]) == ("False", "IncompatibleSchemaChange")
    assert out.status["phase"] == "Degraded"
    data = cluster.objects[("ConfigMap", "github-issues-config")]["data"]
    assert json.loads(data["stream.json"])["json_schema"] == old_schema
    assert "interval: 120s" in data["source.yaml"]  # the rest of the update went through

    fixed = body(generation=3)
    fixed["spec"]["schema"]["jsonSchema"]["properties"]["body"] = {"type": "string"}
    out = reconcile.reconcile(cluster, fixed, SETTINGS, now=NOW, create_topic=no_topic)
    assert out.refused == []
    assert cond(out.status, "SchemaCompatible")["status"] == "True"


def test_without_strimzi_the_topic_goes_through_the_admin_api() -> None:
    cluster = FakeCluster(strimzi=False, prometheus=False)
    calls: list[tuple[Any, ...]] = []

    def create(bootstrap: str, topic: str, **kw: Any) -> bool:
        calls.append((bootstrap, topic, kw["partitions"], kw["replicas"]))
        return True

    out = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=create)
    assert calls == [
        ("restlake-kafka-kafka-bootstrap:9092", "restlake.github-issues", 3, 1),
        ("restlake-kafka-kafka-bootstrap:9092", "restlake.github-issues.dlq", 1, 1),
    ]
    assert sorted({k for k, _ in cluster.objects}) == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]
    assert cond(out.status, "TopicReady")["reason"] == "TopicCreated"


def test_unreachable_kafka_is_a_condition_not_a_crash() -> None:
    def down(*_: Any, **__: Any) -> bool:
        raise TransientError("could not create Kafka topic 'restlake.github-issues' via k:9092: timed out")

    out = reconcile.reconcile(FakeCluster(strimzi=False), body(), SETTINGS, now=NOW, create_topic=down)
    topic = cond(out.status, "TopicReady")
    assert (topic["status"], topic["reason"]) == ("False", "KafkaUnreachable")
    assert out.topic_error is not None and "timed out" in out.topic_error


def test_reconcile_is_idempotent() -> None:
    cluster = FakeCluster()
    reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    snapshot = copy.deepcopy(cluster.objects)
    reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    assert cluster.objects == snapshot


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [
        (None, ("False", "DeploymentMissing")),
        (
            {"metadata": {"name": "d", "generation": 2}, "status": {"observedGeneration": 1}},
            ("Unknown", "RolloutPending"),
        ),
        (
            {
                "metadata": {"name": "d", "generation": 1},
                "spec": {"replicas": 1},
                "status": {
                    "observedGeneration": 1,
                    "conditions": [
                        {
                            "type": "Progressing",
                            "status": "False",
                            "reason": "ProgressDeadlineExceeded",
                            "message": "m",
                        }
                    ],
                },
            },
            ("False", "ProgressDeadlineExceeded"),
        ),
    ],
)
def test_deployment_condition(deployment: dict[str, Any] | None, expected: tuple[str, str]) -> None:
    got = conditions.deployment_condition("FetcherReady", deployment, paused=False)
    assert (got.status, got.reason) == expected


def test_metrics_parsing_sums_this_source_only() -> None:
    text = (
        "# TYPE restlake_fetcher_records_produced counter\n"
        'restlake_fetcher_records_produced_total{source="a"} 10\n'
        'restlake_fetcher_records_produced_total{source="b"} 99\n'
        "# TYPE restlake_fetcher_last_success_timestamp_seconds gauge\n"
        'restlake_fetcher_last_success_timestamp_seconds{source="a"} 1.893456e+09\n'
        "# TYPE restlake_stream_kafka_lag_records gauge\n"
        'restlake_stream_kafka_lag_records{source="a",topic="restlake.a",partition="0"} 3\n'
        'restlake_stream_kafka_lag_records{source="a",topic="restlake.a",partition="1"} 4\n'
        'restlake_stream_kafka_lag_records{source="b",topic="restlake.b",partition="0"} 50\n'
    )
    figures = scrape.parse(text, "a")
    assert figures == scrape.Figures(
        events_produced=10, last_fetch_time="2030-01-01T00:00:00Z", consumer_lag=7
    )
    assert scrape.parse("", "a").status() == {}


def test_an_unreachable_broker_is_a_transient_error() -> None:
    from restlake.kafka_admin import ensure_topic

    with pytest.raises(
        TransientError, match=r"could not create Kafka topic 'restlake\.x' via 127\.0\.0\.1:9"
    ):
        ensure_topic("127.0.0.1:9", "restlake.x", partitions=1, replicas=1, timeout=1.0)


def with_schedule(schedule: str | None, generation: int = 1) -> dict[str, Any]:
    return body(generation, quality={"bronze": {"schedule": schedule}} if schedule else {})


def test_quality_schedule_creates_updates_and_deletes_the_cron_job() -> None:
    cluster = FakeCluster()
    out = reconcile.reconcile(
        cluster, with_schedule("*/30 * * * *"), SETTINGS, now=NOW, create_topic=no_topic
    )
    assert "CronJob/github-issues-quality" in out.applied and out.deleted == []
    assert cluster.objects[("CronJob", "github-issues-quality")]["spec"]["schedule"] == "*/30 * * * *"

    out = reconcile.reconcile(cluster, with_schedule("@daily", 2), SETTINGS, now=NOW, create_topic=no_topic)
    assert cluster.objects[("CronJob", "github-issues-quality")]["spec"]["schedule"] == "@daily"

    out = reconcile.reconcile(cluster, with_schedule(None, 3), SETTINGS, now=NOW, create_topic=no_topic)
    assert out.deleted == ["CronJob/github-issues-quality"]
    assert "CronJob/github-issues-quality" not in out.applied
    assert ("CronJob", "github-issues-quality") not in cluster.objects
    out = reconcile.reconcile(cluster, with_schedule(None, 4), SETTINGS, now=NOW, create_topic=no_topic)
    assert out.deleted == []


def test_a_cron_job_of_the_same_name_that_is_not_ours_is_left_alone() -> None:
    cluster = FakeCluster()
    cluster.objects[("CronJob", "github-issues-quality")] = {
        "metadata": {"name": "github-issues-quality", "ownerReferences": [{"uid": "someone-else"}]}
    }
    out = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    assert out.deleted == []
    assert ("CronJob", "github-issues-quality") in cluster.objects


def test_pause_suspends_the_quality_cron_job() -> None:
    cluster = FakeCluster()
    paused = with_schedule("@hourly")
    paused["metadata"]["annotations"] = {"restlake.io/pause-reconciliation": "true"}
    reconcile.reconcile(cluster, paused, SETTINGS, now=NOW, create_topic=no_topic)
    assert cluster.objects[("CronJob", "github-issues-quality")]["spec"]["suspend"] is True


def test_reconcile_and_refresh_keep_the_quality_passing_condition_the_checks_wrote() -> None:
    cluster = FakeCluster()
    first = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    written = {
        "type": "QualityPassing",
        "status": "False",
        "reason": "ExpectationsFailed",
        "message": "2 of 9 expectations failed",
        "lastTransitionTime": "2030-01-01T00:05:00Z",
        "observedGeneration": 1,
    }
    live = body(2, poll={"interval": "5m"})
    cluster.sources["github-issues"] = live
    live["status"] = {
        **first.status,
        "conditions": [c if c["type"] != "QualityPassing" else written for c in first.status["conditions"]],
    }
    later = "2030-01-02T00:00:00Z"
    out = reconcile.reconcile(cluster, live, SETTINGS, now=later, create_topic=no_topic)
    assert cond(out.status, "QualityPassing") == written
    live["status"] = out.status
    live["metadata"]["generation"] = out.status["observedGeneration"]
    patch, _, _, _ = reconcile.resync(
        cluster, live, SETTINGS, now=later, scraper=lambda *_, **__: scrape.Figures(), create_topic=no_topic
    )
    assert cond(patch, "QualityPassing") == written


def reconciled(cluster: FakeCluster) -> dict[str, Any]:
    live = body()
    cluster.sources["github-issues"] = live
    live["status"] = reconcile.reconcile(cluster, live, SETTINGS, now=NOW, create_topic=no_topic).status
    return live


def test_the_status_timer_restores_a_deleted_and_an_edited_child() -> None:
    cluster = FakeCluster()
    live = reconciled(cluster)
    del cluster.objects[("Deployment", "github-issues-fetcher")]
    edited = cluster.objects[("Deployment", "github-issues-stream")]
    edited["spec"]["replicas"] = 3
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else:1"

    _, drifted, _, _ = reconcile.resync(
        cluster, live, SETTINGS, now=NOW, scraper=lambda *_, **__: scrape.Figures(), create_topic=no_topic
    )
    assert drifted == ["Deployment/github-issues-fetcher", "Deployment/github-issues-stream"]
    stream = cluster.objects[("Deployment", "github-issues-stream")]["spec"]
    assert stream["replicas"] == 1
    assert stream["template"]["spec"]["containers"][0]["image"] == SETTINGS.spark_image
    assert ("Deployment", "github-issues-fetcher") in cluster.objects

    _, drifted, _, _ = reconcile.resync(
        cluster, live, SETTINGS, now=NOW, scraper=lambda *_, **__: scrape.Figures(), create_topic=no_topic
    )
    assert drifted == []  # nothing moved since


def test_a_timer_tick_after_the_deletion_recreates_nothing() -> None:
    cluster = FakeCluster(strimzi=False, prometheus=False)
    live = body()
    live["status"] = reconcile.reconcile(
        cluster, live, SETTINGS, now=NOW, create_topic=lambda *_, **__: True
    ).status
    cluster.sources_gone.add("github-issues")
    applies = cluster.applies

    def create(*_: Any, **__: Any) -> bool:
        raise AssertionError("a deleted source's topics must not be created again")

    assert reconcile.resync(cluster, live, SETTINGS, now=NOW, create_topic=create) == ({}, [], None, ())
    assert cluster.applies == applies


def test_the_timer_leaves_a_newer_generation_to_the_update_handler() -> None:
    cluster = FakeCluster()
    live = reconciled(cluster)
    live["metadata"]["generation"] = 2
    applies = cluster.applies
    assert reconcile.resync(cluster, live, SETTINGS, now=NOW, create_topic=no_topic) == ({}, [], None, ())
    assert cluster.applies == applies


def test_strimzi_before_v1_gets_v1beta2_topics() -> None:
    cluster = FakeCluster(strimzi_api="kafka.strimzi.io/v1beta2")
    out = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    topics = [o for (kind, _), o in cluster.objects.items() if kind == "KafkaTopic"]
    assert [t["apiVersion"] for t in topics] == ["kafka.strimzi.io/v1beta2"] * 2
    assert [t["spec"]["topicName"] for t in topics] == [
        "restlake.github-issues",
        "restlake.github-issues.dlq",
    ]
    assert cond(out.status, "TopicReady")["reason"] == "WaitingForTopicOperator"


def test_topics_the_operator_created_are_recorded_and_released_with_the_source() -> None:
    cluster = FakeCluster(strimzi=False, prometheus=False)
    ledger = topic_ledger.TopicLedger(cluster, "restlake", "restlake-topics")
    existing = {"restlake.github-issues"}  # made by someone else: never the operator's to delete

    def create(bootstrap: str, topic: str, **_: Any) -> bool:
        if topic in existing:
            return False
        existing.add(topic)
        return True

    reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=create, ledger=ledger)
    assert ledger.entries() == {"ns.github-issues": ["restlake.github-issues.dlq"]}

    deleted: list[list[str]] = []

    def delete(bootstrap: str, names: list[str], *, timeout: float) -> list[str]:
        deleted.append(names)
        return names

    # Still there: the sweep keeps it.
    cluster.objects[("IngestionSource", "github-issues")] = body()
    assert topic_ledger.sweep(ledger, delete=delete, bootstrap="k:9092", timeout=1) == {}
    # Gone while no operator ran: the next start releases what was recorded, and only that.
    del cluster.objects[("IngestionSource", "github-issues")]
    cluster.sources_gone.add("github-issues")
    released = topic_ledger.sweep(ledger, delete=delete, bootstrap="k:9092", timeout=1)
    assert released == {"ns.github-issues": ["restlake.github-issues.dlq"]}
    assert deleted == [["restlake.github-issues.dlq"]]
    assert ledger.entries() == {}


def test_a_broker_that_is_down_keeps_the_ledger_entry_for_the_next_sweep() -> None:
    cluster = FakeCluster(strimzi=False, prometheus=False)
    cluster.sources_gone.add("gone")
    ledger = topic_ledger.TopicLedger(cluster, "restlake", "restlake-topics")
    ledger.record("ns", "gone", ["restlake.gone"])

    def down(bootstrap: str, names: list[str], *, timeout: float) -> list[str]:
        raise TransientError("could not delete Kafka topics: timed out")

    assert topic_ledger.sweep(ledger, delete=down, bootstrap="k:9092", timeout=1) == {}
    assert ledger.entries() == {"ns.gone": ["restlake.gone"]}


def test_the_metric_names_the_status_reads_are_the_ones_exported() -> None:
    fetcher_metrics = module_source("restlake.fetcher.metrics")
    stream_metrics = module_source("restlake.jobs.spark.metrics")
    assert f'"{scrape.RECORDS_PRODUCED}' in fetcher_metrics
    assert f'"{scrape.LAST_SUCCESS}"' in fetcher_metrics
    assert f'"{scrape.CONSUMER_LAG}"' in stream_metrics


def test_no_handler_puts_a_finalizer_on_sources_or_backfills() -> None:
    import kopf

    from restlake.operator import handlers  # noqa: F401 - importing registers the handlers

    registry = kopf.get_default_registry()
    spawning = list(registry._spawning.get_all_handlers())
    changing = list(registry._changing.get_all_handlers())
    assert spawning, "the status timers are registered"
    assert [h.id for h in spawning + changing if h.requires_finalizer] == []


def test_a_stale_timer_body_does_not_roll_back_an_update() -> None:
    cluster = FakeCluster()
    stale = copy.deepcopy(reconciled(cluster))  # what kopf handed the timer: generation 1
    newer = body(2, poll={"interval": "5m"})
    newer["status"] = reconcile.reconcile(cluster, newer, SETTINGS, now=NOW, create_topic=no_topic).status
    cluster.sources["github-issues"] = newer  # the update handler already applied generation 2

    _, drifted, _, _ = reconcile.resync(
        cluster, stale, SETTINGS, now=NOW, scraper=lambda *_, **__: scrape.Figures(), create_topic=no_topic
    )
    assert drifted == []
    assert "interval: 5m" in cluster.objects[("ConfigMap", "github-issues-config")]["data"]["source.yaml"]


def _fetcher_env(cluster: FakeCluster) -> list[dict[str, Any]]:
    return cluster.objects[("Deployment", "github-issues-fetcher")]["spec"]["template"]["spec"]["containers"][
        0
    ]["env"]


@pytest.mark.parametrize(
    ("secret", "reason", "says"),
    [
        (
            {"metadata": {"name": "github-token", "labels": {"team": "a"}}},
            "SecretNotLabelled",
            "Secret github-token (spec.request.auth.secretRef) is not labelled "
            'restlake.io/source-credentials: "true"',
        ),
        (
            {"metadata": {"name": "github-token", "labels": {credentials.LABEL: "yes"}}},
            "SecretNotLabelled",
            "Secret github-token (spec.request.auth.secretRef) is not labelled",
        ),
        (None, "SecretNotFound", "Secret github-token (spec.request.auth.secretRef) does not exist"),
    ],
)
def test_an_unlabelled_or_missing_secret_holds_the_fetcher_and_says_which_field(
    secret: dict[str, Any] | None, reason: str, says: str
) -> None:
    cluster = FakeCluster()
    if secret is None:
        del cluster.secrets["github-token"]
    else:
        cluster.secrets["github-token"] = secret
    out = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    allowed = cond(out.status, "CredentialsAllowed")
    assert (allowed["status"], allowed["reason"]) == ("False", reason)
    assert allowed["message"].startswith(says)
    assert out.credentials_refused == allowed["message"]  # posted as a CredentialsNotAllowed Event
    assert "kubectl label secret <name> restlake.io/source-credentials=true" in allowed["message"]
    fetcher = cluster.objects[("Deployment", "github-issues-fetcher")]
    assert fetcher["spec"]["replicas"] == 0
    # Not even a reference: no pod of this Deployment can read the Secret.
    assert "github-token" not in json.dumps(fetcher)
    assert (cond(out.status, "FetcherReady")["status"], cond(out.status, "FetcherReady")["reason"]) == (
        "False",
        reason,
    )
    assert (cond(out.status, "Ready")["reason"], out.status["phase"]) == (reason, "Degraded")
    # The stream job reads no source Secret and keeps running.
    assert cluster.objects[("Deployment", "github-issues-stream")]["spec"]["replicas"] == 1

    # Labelled later: the next reconcile (the status timer's) rolls the fetcher out with its token.
    cluster.secrets["github-token"] = {"metadata": {"labels": {credentials.LABEL: "true"}}}
    out = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    assert (cond(out.status, "CredentialsAllowed")["status"], out.status["phase"]) == ("True", "Provisioning")
    assert out.credentials_refused is None
    assert cluster.objects[("Deployment", "github-issues-fetcher")]["spec"]["replicas"] == 1
    assert [
        e["valueFrom"]["secretKeyRef"]
        for e in _fetcher_env(cluster)
        if e["name"].startswith("RESTLAKE_SECRET_")
    ] == [{"name": "github-token", "key": "token"}]


def test_every_secret_of_the_spec_is_checked_once_and_a_spec_without_any_passes() -> None:
    cluster = FakeCluster()
    looked_up: list[str] = []
    plain_metadata = cluster.metadata

    def counting(api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        looked_up.append(f"{namespace}/{name}")
        return plain_metadata(api_version, kind, name, namespace)

    cluster.metadata = counting  # type: ignore[method-assign]
    basic = {
        "type": "basic",
        "usernameSecretRef": {"name": "api-creds", "key": "user"},
        "passwordSecretRef": {"name": "api-creds", "key": "password"},
    }
    cluster.secrets["api-creds"] = {"metadata": {"labels": {credentials.LABEL: "true"}}}
    out = reconcile.reconcile(
        cluster,
        body(request={"url": "https://api.example.com/x", "auth": basic}),
        SETTINGS,
        now=NOW,
        create_topic=no_topic,
    )
    # Each once: the spec's for the label check, then the operator's Postgres Secret the pods read.
    assert looked_up == ["ns/api-creds", f"ns/{SETTINGS.pg_dsn_secret}"]
    assert cond(out.status, "CredentialsAllowed")["message"] == (
        "Secrets api-creds are labelled restlake.io/source-credentials"
    )
    looked_up.clear()
    out = reconcile.reconcile(
        cluster, body(request={"url": "https://api.example.com/x"}), SETTINGS, now=NOW, create_topic=no_topic
    )
    assert looked_up == [f"ns/{SETTINGS.pg_dsn_secret}"]
    assert cond(out.status, "CredentialsAllowed")["reason"] == "NoSecretsReferenced"


def test_sources_outside_the_operator_namespace_get_a_namespace_qualified_identity() -> None:
    cluster = FakeCluster(strimzi=False, prometheus=False)
    created: list[str] = []

    def create(bootstrap: str, topic: str, **_: Any) -> bool:
        created.append(topic)
        return True

    elsewhere = OperatorSettings(metrics_url=SETTINGS.metrics_url, release_namespace="restlake")
    reconcile.reconcile(cluster, body(), elsewhere, now=NOW, create_topic=create)
    assert created == ["restlake.ns.github-issues", "restlake.ns.github-issues.dlq"]
    data = cluster.objects[("ConfigMap", "github-issues-config")]["data"]
    pod_source = yaml.safe_load(data[render.SOURCE_FILE])
    assert pod_source["metadata"]["annotations"] == {"restlake.io/identity": "ns.github-issues"}
    # What the fetcher (and backfill, quality) read back from the mounted file.
    parsed = parse_source(pod_source, "pod")
    assert (parsed.identity, parsed.topic(), parsed.bronze_path("s3a://l")) == (
        "ns.github-issues",
        "restlake.ns.github-issues",
        "s3a://l/bronze/ns.github-issues",
    )
    stream = json.loads(data[render.STREAM_FILE])
    assert (stream["source"], stream["topic"], stream["bronze_path"], stream["checkpoint_path"]) == (
        "ns.github-issues",
        "restlake.ns.github-issues",
        "s3a://restlake/lake/bronze/ns.github-issues",
        "s3a://restlake/lake/_checkpoints/ns.github-issues/uid-1",
    )
    # Kubernetes objects keep the object's own name: they are namespaced already.
    assert ("Deployment", "github-issues-fetcher") in cluster.objects


def test_an_identity_annotation_on_the_object_cannot_claim_another_namespace() -> None:
    # Overwritten by the operator when it is one of the object's own identities ...
    own = body(metadata={"annotations": {"restlake.io/identity": "github-issues"}})
    elsewhere = OperatorSettings(release_namespace="restlake")
    assert reconcile.load(own, elsewhere).identity == "ns.github-issues"
    # ... and refused, naming the annotation, when it names another namespace's source.
    theirs = body(metadata={"annotations": {"restlake.io/identity": "team-b.github-issues"}})
    with pytest.raises(SpecError, match=r"metadata\.annotations\.restlake\.io/identity: must be"):
        reconcile.load(theirs, elsewhere)


def test_the_status_scrape_reads_the_series_of_the_identity() -> None:
    live = body()
    seen: list[str] = []

    def scraper(url: str, source: str, *, timeout: float) -> scrape.Figures:
        seen.append(source)
        return scrape.Figures()

    reconcile.figures(
        live, OperatorSettings(metrics_url="http://m/{service}", release_namespace="x"), scraper=scraper
    )
    reconcile.figures(live, SETTINGS, scraper=scraper)
    assert seen == ["ns.github-issues", "ns.github-issues", "github-issues", "github-issues"]


def test_a_timer_tick_writes_only_what_differs_from_the_read_it_computed_from() -> None:
    tick = reconcile.Resynced(
        {"phase": "Running", "eventsProduced": 7},
        [],
        {"metadata": {"resourceVersion": "5"}, "status": {"phase": "Running", "eventsProduced": 6}},
    )
    assert tick.changes() == {"eventsProduced": 7}
    assert reconcile.Resynced({"phase": "Pending"}, [], None).changes() == {"phase": "Pending"}


def test_overrides_of_a_source_in_another_namespace_stay_inside_that_namespace() -> None:
    elsewhere = OperatorSettings(release_namespace="restlake")
    theirs = body(
        kafka={"topic": "restlake.team-b.orders"},
        sinks={"bronze": {"path": "bronze/team-b.orders"}, "quarantine": {"path": "team-b/q"}},
    )
    with pytest.raises(SpecError) as refused:
        reconcile.load(theirs, elsewhere)
    assert [field for field, _ in refused.value.problems] == [
        "spec.kafka.topic",
        "spec.sinks.bronze.path",
        "spec.sinks.quarantine.path",
    ]
    assert "restlake.ns.<anything>" in str(refused.value)
    ours = body(
        kafka={"topic": "restlake.ns.orders-v2"},
        sinks={"bronze": {"path": "bronze/ns.orders"}, "quarantine": {"path": "ns/quarantine/orders"}},
    )
    loaded = reconcile.load(ours, elsewhere)
    assert (loaded.topic(), loaded.bronze_path("s3a://l")) == (
        "restlake.ns.orders-v2",
        "s3a://l/bronze/ns.orders",
    )
    # The operator's own namespace is the administrators': every override is theirs to make.
    assert reconcile.load(theirs, SETTINGS).topic() == "restlake.team-b.orders"


def test_a_secret_the_pods_read_and_the_namespace_lacks_is_named_in_their_condition() -> None:
    """With watchAllNamespaces the operator's Secrets must be copied into each source namespace; a
    missing one would leave the pods in CreateContainerConfigError behind a bare '0/1 available'."""
    cluster = FakeCluster()
    del cluster.secrets[SETTINGS.pg_dsn_secret]
    settings = SETTINGS.model_copy(update={"spark_auth_secret": "restlake-spark-auth"})
    out = reconcile.reconcile(cluster, body(), settings, now=NOW, create_topic=no_topic)
    fetcher, stream = cond(out.status, "FetcherReady"), cond(out.status, "StreamReady")
    assert (fetcher["status"], fetcher["reason"], stream["status"], stream["reason"]) == (
        "False",
        "SecretMissing",
        "False",
        "SecretMissing",
    )
    assert fetcher["message"] == (
        f"Secret {SETTINGS.pg_dsn_secret} (read by env RESTLAKE_PG_DSN of container fetcher) does not "
        "exist in namespace ns: the pods cannot start until it does (the operator's Secrets must be "
        "copied into every namespace that holds sources)"
    )
    # The driver also reads the Spark cluster's secret: both are named, in order.
    assert stream["message"].startswith(
        f"Secret {SETTINGS.pg_dsn_secret} (read by env RESTLAKE_PG_DSN of container driver); "
        "Secret restlake-spark-auth (read by env RESTLAKE_SPARK_AUTH_SECRET of container driver) "
        "does not exist in namespace ns"
    )
    assert out.status["phase"] == "Degraded"
    assert cond(out.status, "Ready")["reason"] == "SecretMissing"

    # Copied in: the conditions are the Deployments' own again.
    cluster.secrets[SETTINGS.pg_dsn_secret] = {"metadata": {"name": SETTINGS.pg_dsn_secret}}
    cluster.secrets["restlake-spark-auth"] = {"metadata": {"name": "restlake-spark-auth"}}
    out = reconcile.reconcile(cluster, body(), settings, now=NOW, create_topic=no_topic)
    assert cond(out.status, "FetcherReady")["reason"] != "SecretMissing"
    assert cond(out.status, "StreamReady")["reason"] != "SecretMissing"
    assert out.status["phase"] == "Provisioning"


def test_a_missing_secret_leaves_available_paused_and_held_components_as_they_are() -> None:
    cluster = FakeCluster()
    reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    del cluster.secrets[SETTINGS.pg_dsn_secret]
    # Pods already running keep their environment: an available component stays available.
    cluster.set_status("Deployment", "github-issues-fetcher", available())
    out = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    assert (cond(out.status, "FetcherReady")["status"], cond(out.status, "StreamReady")["reason"]) == (
        "True",
        "SecretMissing",
    )
    paused = body(metadata={"annotations": {render.PAUSE_ANNOTATION: "true"}})
    out = reconcile.reconcile(cluster, paused, SETTINGS, now=NOW, create_topic=no_topic)
    assert cond(out.status, "StreamReady")["reason"] == "ReconciliationPaused"
    # A fetcher held at zero replicas for a refused credential says that, not the missing Secret.
    del cluster.secrets["github-token"]
    out = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    assert cond(out.status, "FetcherReady")["reason"] == "SecretNotFound"
    assert cond(out.status, "StreamReady")["reason"] == "SecretMissing"


def test_every_kind_of_secret_reference_is_required_unless_optional() -> None:
    deployment = {
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "lake"}}]}],
                    "containers": [
                        {
                            "name": "main",
                            "env": [
                                {"name": "A", "value": "plain"},
                                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "pg", "key": "dsn"}}},
                                {"name": "C", "valueFrom": {"secretKeyRef": {"name": "x", "optional": True}}},
                            ],
                            "envFrom": [{"configMapRef": {"name": "cm"}}],
                        }
                    ],
                    "volumes": [
                        {"name": "certs", "secret": {"secretName": "tls"}},
                        {"name": "maybe", "secret": {"secretName": "y", "optional": True}},
                        {"name": "config", "configMap": {"name": "cm"}},
                    ],
                }
            }
        }
    }
    assert list(pod_secrets.references(deployment)) == [
        ("lake", "envFrom of container init"),
        ("pg", "env B of container main"),
        ("tls", "volume certs"),
    ]


def _secret_stamps(cluster: FakeCluster) -> dict[str, str]:
    stamps = {
        part: pod_secrets.versions_of(cluster.objects[("Deployment", f"github-issues-{part}")])
        for part in (render.FETCHER, render.STREAM)
    }
    assert all(stamps.values()), stamps
    return {part: str(stamp) for part, stamp in stamps.items()}


def test_a_rotated_secret_rolls_the_pods_that_read_it_and_only_those() -> None:
    """Pods read their Secrets as environment variables, fixed when a container starts: a Secret that
    changes (a rotated token, a new password) changes the digest on the pod templates that read it,
    which rolls them; a reconcile that finds nothing changed leaves every template as it was."""
    cluster = FakeCluster()
    cluster.secrets["github-token"]["metadata"]["resourceVersion"] = "100"
    cluster.secrets[SETTINGS.pg_dsn_secret]["metadata"]["resourceVersion"] = "200"
    reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    first = _secret_stamps(cluster)

    again = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    assert _secret_stamps(cluster) == first
    assert not [c for c in again.changed if c.startswith("Deployment/")] and not again.rotated

    # The API token only the fetcher reads.
    cluster.secrets["github-token"]["metadata"]["resourceVersion"] = "101"
    rotated = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    token_rotated = _secret_stamps(cluster)
    assert token_rotated["fetcher"] != first["fetcher"]
    assert token_rotated["stream"] == first["stream"]
    # Said as a rotation, not as drift.
    assert rotated.rotated == ["Deployment/github-issues-fetcher"]
    assert not [c for c in rotated.changed if c.startswith("Deployment/")]

    # The Postgres DSN both read.
    cluster.secrets[SETTINGS.pg_dsn_secret]["metadata"]["resourceVersion"] = "201"
    reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    dsn_rotated = _secret_stamps(cluster)
    assert dsn_rotated["fetcher"] != token_rotated["fetcher"]
    assert dsn_rotated["stream"] != token_rotated["stream"]

    # Rotated and drifted in the same tick (someone scaled the driver by hand): both are said, so
    # the drift put back is not hidden behind the rotation.
    cluster.objects[("Deployment", "github-issues-stream")]["spec"]["replicas"] = 3
    cluster.secrets[SETTINGS.pg_dsn_secret]["metadata"]["resourceVersion"] = "202"
    both = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    assert cluster.objects[("Deployment", "github-issues-stream")]["spec"]["replicas"] == 1
    assert sorted(both.rotated) == ["Deployment/github-issues-fetcher", "Deployment/github-issues-stream"]
    assert [c for c in both.changed if c.startswith("Deployment/")] == ["Deployment/github-issues-stream"]

    # A Deployment an operator without the stamp applied gets its first one as a change.
    fetcher = cluster.objects[("Deployment", "github-issues-fetcher")]
    del fetcher["spec"]["template"]["metadata"]["annotations"][pod_secrets.VERSIONS_ANNOTATION]
    upgraded = reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    assert "Deployment/github-issues-fetcher" in upgraded.changed and not upgraded.rotated


def test_a_secret_that_appears_rolls_the_pods_that_waited_for_it() -> None:
    """A pod started before its Secret existed waits in CreateContainerConfigError under the
    kubelet's back-off; the Secret's arrival changes the digest, so fresh pods start at once."""
    cluster = FakeCluster()
    del cluster.secrets[SETTINGS.pg_dsn_secret]
    reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    waiting = _secret_stamps(cluster)
    cluster.secrets[SETTINGS.pg_dsn_secret] = {
        "metadata": {"name": SETTINGS.pg_dsn_secret, "resourceVersion": "7"}
    }
    reconcile.reconcile(cluster, body(), SETTINGS, now=NOW, create_topic=no_topic)
    arrived = _secret_stamps(cluster)
    assert arrived["fetcher"] != waiting["fetcher"] and arrived["stream"] != waiting["stream"]


def test_an_optional_secret_reference_counts_in_the_digest_too() -> None:
    deployment: dict[str, Any] = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "env": [
                                {
                                    "name": "A",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": "opt", "key": "k", "optional": True}
                                    },
                                }
                            ],
                        }
                    ]
                }
            }
        }
    }
    versions = {"opt": {"metadata": {"resourceVersion": "1"}}}
    pod_secrets.stamp_versions(deployment, versions.get)
    first = pod_secrets.versions_of(deployment)
    assert first
    versions["opt"]["metadata"]["resourceVersion"] = "2"
    pod_secrets.stamp_versions(deployment, versions.get)
    assert pod_secrets.versions_of(deployment) not in (None, first)
    # Still not required: its absence is no SecretMissing.
    assert pod_secrets.condition("FetcherReady", deployment, "ns", {}.get) is None
