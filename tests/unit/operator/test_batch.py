"""Backfill Job and quality CronJob: rendering, the Backfill's lifecycle, and the status reporters."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from restlake.contracts import batch_pods
from restlake.contracts.backfill import parse_backfill
from restlake.contracts.spec import load_source
from restlake.errors import TransientError
from restlake.operator import backfills, render
from restlake.operator.settings import OperatorSettings
from restlake.runtime import pod_reporters as reporters
from restlake.settings import PodIdentity

REPO = Path(__file__).resolve().parents[3]
SETTINGS = OperatorSettings(
    release="rl",
    lake_root="s3a://lake/root",
    kafka_bootstrap="kafka:9092",
    spark_image="restlake/spark:dev",
    lake_secret="lake-creds",
    job_service_account="rl-restlake-jobs",
)
NOW = "2030-01-01T00:00:00Z"


def backfill_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "restlake.io/v1alpha1",
        "kind": "Backfill",
        "metadata": {"name": "replay", "namespace": "team-a", "uid": "bf-uid-1", "generation": 1},
        "spec": {"source": "github-issues", **(spec or {"kafka": {"fromOffsets": {"0": 120, "1": 95}}})},
    }


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


def test_backfill_job_runs_the_cli_exactly_and_is_owned_by_the_backfill() -> None:
    body = backfill_body(
        kafka={"fromTime": "2030-01-01T00:00:00Z", "toOffsets": {"1": 95, "0": 120}}, chunkRows=5000
    )
    job = render.backfill_job(parse_backfill(body, "t"), render.Owner.of(body), SETTINGS)
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["name"] == "replay-backfill"
    assert job["metadata"]["namespace"] == "team-a"
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "restlake.io/v1alpha1",
            "kind": "Backfill",
            "name": "replay",
            "uid": "bf-uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["metadata"]["labels"]["restlake.io/backfill"] == "replay"
    assert job["metadata"]["labels"]["restlake.io/source"] == "github-issues"
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "rl-restlake-jobs"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["args"] == [
        "restlake",
        "backfill",
        "-f",
        "/etc/restlake/source.yaml",
        "--source",
        "github-issues",
        "--from-time",
        "2030-01-01T00:00:00+00:00",
        "--to-offsets",
        "0:120,1:95",
        "--chunk-rows",
        "5000",
        "--run-id",
        "bf-uid-1",
    ]
    assert container["image"] == "restlake/spark:dev"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["envFrom"] == [{"secretRef": {"name": "lake-creds"}}]
    assert container["resources"] == render.DEFAULT_RESOURCES["backfill"]
    namespace = {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env_of(container) == {
        "RESTLAKE_KAFKA_BOOTSTRAP": "kafka:9092",
        "RESTLAKE_KAFKA_TOPIC_PREFIX": "restlake.",
        "RESTLAKE_LAKE_ROOT": "s3a://lake/root",
        "RESTLAKE_PG_DSN": {"secretKeyRef": {"name": "restlake-postgres", "key": "dsn"}},
        "HOME": "/tmp",
        "RESTLAKE_SOURCE_NAME": "github-issues",
        "RESTLAKE_SOURCE_NAMESPACE": namespace,
        "RESTLAKE_BACKFILL_NAME": "replay",
        "RESTLAKE_BACKFILL_NAMESPACE": namespace,
    }
    # The source's ConfigMap, the same mount the driver has.
    assert pod["volumes"][0] == {
        "name": "config",
        "configMap": {
            "name": "github-issues-config",
            "items": [{"key": "source.yaml", "path": "source.yaml"}],
        },
    }
    assert container["volumeMounts"] == [
        {"name": "config", "mountPath": "/etc/restlake", "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]


@pytest.mark.parametrize(
    ("origin", "flags"),
    [
        ({"bronze": {"fromVersion": 3, "toVersion": 7}}, ["--from-version", "3", "--to-version", "7"]),
        ({"bronze": {"asOf": "2030-01-01T00:00:00Z"}}, ["--as-of", "2030-01-01T00:00:00Z"]),
    ],
)
def test_bronze_backfill_flags(origin: dict[str, Any], flags: list[str]) -> None:
    body = backfill_body(**origin, resources={"limits": {"memory": "8Gi"}})
    job = render.backfill_job(parse_backfill(body, "t"), render.Owner.of(body), SETTINGS)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][6:] == [*flags, "--run-id", "bf-uid-1"]
    assert container["resources"] == {"limits": {"memory": "8Gi"}}


def source_with_schedule(schedule: str | None) -> Any:
    source = load_source(REPO / "examples" / "github-issues.yaml")
    data = source.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["spec"]["quality"] = {"bronze": {"schedule": schedule}} if schedule else {}
    return type(source).model_validate(data)


def test_quality_cron_job() -> None:
    owner = render.Owner(name="github-issues", namespace="team-a", uid="src-uid")
    assert render.quality_cron_job(source_with_schedule(None), owner, SETTINGS, paused=False) is None
    cron = render.quality_cron_job(source_with_schedule("*/15 * * * *"), owner, SETTINGS, paused=False)
    assert cron is not None
    assert (cron["apiVersion"], cron["kind"], cron["metadata"]["name"]) == (
        "batch/v1",
        "CronJob",
        "github-issues-quality",
    )
    assert cron["metadata"]["ownerReferences"][0]["kind"] == "IngestionSource"
    spec = cron["spec"]
    assert spec["schedule"] == "*/15 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["suspend"] is False
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 3)
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "rl-restlake-jobs"
    (container,) = pod["containers"]
    assert container["args"] == [
        "restlake",
        "quality",
        "run",
        "--source",
        "github-issues",
        "-f",
        "/etc/restlake/source.yaml",
    ]
    assert container["image"] == "restlake/spark:dev"
    env = env_of(container)
    assert env["RESTLAKE_SOURCE_NAME"] == "github-issues"
    assert env["RESTLAKE_SOURCE_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "RESTLAKE_BACKFILL_NAME" not in env
    assert env["RESTLAKE_PG_DSN"] == {"secretKeyRef": {"name": "restlake-postgres", "key": "dsn"}}
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    # The watermark lives on a volume mounted where RESTLAKE_QUALITY_DIR points; emptyDir by default.
    assert env["RESTLAKE_QUALITY_DIR"] == "/var/lib/restlake/quality"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["quality"] == "/var/lib/restlake/quality"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["quality"] == {"name": "quality", "emptyDir": {}}
    claimed = SETTINGS.model_copy(update={"quality_claim": "quality-results"})
    cron = render.quality_cron_job(source_with_schedule("@hourly"), owner, claimed, paused=True)
    assert cron is not None and cron["spec"]["suspend"] is True
    volumes = {v["name"]: v for v in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["quality"]["persistentVolumeClaim"] == {"claimName": "quality-results"}
    assert "RESTLAKE_QUALITY_PUSHGATEWAY_URL" not in env
    pushing = SETTINGS.model_copy(update={"quality_pushgateway_url": "http://pushgateway.monitoring:9091"})
    cron = render.quality_cron_job(source_with_schedule("@hourly"), owner, pushing, paused=False)
    assert cron is not None
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["RESTLAKE_QUALITY_PUSHGATEWAY_URL"] == "http://pushgateway.monitoring:9091"


def test_without_a_job_service_account_the_pods_use_the_shared_one() -> None:
    settings = OperatorSettings(service_account="restlake-pods")
    body = backfill_body()
    job = render.backfill_job(parse_backfill(body, "t"), render.Owner.of(body), settings)
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "restlake-pods"


# ---------------------------------------------------------------------------------------------
# Backfill lifecycle against a fake cluster
# ---------------------------------------------------------------------------------------------


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.applied: list[dict[str, Any]] = []

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(copy.deepcopy(obj))
        self.objects[(obj["kind"], obj["metadata"]["name"])] = copy.deepcopy(obj)
        return obj

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((kind, name)))

    def list(
        self, api_version: str, kind: str, namespace: str | None, *, label_selector: str
    ) -> list[dict[str, Any]]:
        assert (kind, label_selector) == ("Pod", "batch.kubernetes.io/job-name=replay-backfill")
        return copy.deepcopy(self.pods)


def with_source(cluster: FakeCluster, *, config: bool = True) -> None:
    cluster.objects[("IngestionSource", "github-issues")] = {"metadata": {"name": "github-issues"}}
    if config:
        cluster.objects[("ConfigMap", "github-issues-config")] = {
            "metadata": {"name": "github-issues-config"}
        }


def cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def started(cluster: FakeCluster) -> dict[str, Any]:
    body = backfill_body()
    body["status"] = backfills.start(cluster, body, SETTINGS, now=NOW)
    return body


def test_start_creates_the_job_once() -> None:
    cluster = FakeCluster()
    with_source(cluster)
    body = started(cluster)
    assert [o["kind"] for o in cluster.applied] == ["Job"]
    assert body["status"]["phase"] == "Pending"
    assert body["status"]["jobName"] == "replay-backfill"
    assert cond(body["status"], "JobCreated")["status"] == "True"
    # An operator restart (kopf resume) must not re-apply the Job: its template is immutable.
    assert backfills.start(cluster, body, SETTINGS, now=NOW) == {}
    assert len(cluster.applied) == 1


def test_a_missing_source_fails_the_backfill_naming_spec_source() -> None:
    cluster = FakeCluster()
    status = backfills.start(cluster, backfill_body(), SETTINGS, now=NOW)
    assert status["phase"] == "Failed"
    failed = cond(status, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "SourceNotFound")
    assert failed["message"] == "spec.source: IngestionSource 'github-issues' not found in namespace 'team-a'"
    assert cluster.applied == []


def test_a_source_not_yet_reconciled_is_retried() -> None:
    cluster = FakeCluster()
    with_source(cluster, config=False)
    with pytest.raises(TransientError, match="no ConfigMap github-issues-config"):
        backfills.start(cluster, backfill_body(), SETTINGS, now=NOW)


def set_job_status(cluster: FakeCluster, status: dict[str, Any]) -> None:
    cluster.objects[("Job", "replay-backfill")]["status"] = status


def test_status_follows_the_job_to_success_with_the_summary_from_the_termination_message() -> None:
    cluster = FakeCluster()
    with_source(cluster)
    body = started(cluster)
    assert backfills.follow(cluster, body, SETTINGS, now=NOW) == {}  # no pod started yet

    set_job_status(cluster, {"startTime": "2030-01-01T00:00:10Z", "active": 1})
    change = backfills.follow(cluster, body, SETTINGS, now=NOW)
    assert change["phase"] == "Running" and change["startTime"] == "2030-01-01T00:00:10Z"
    body["status"].update(change)
    assert backfills.follow(cluster, body, SETTINGS, now=NOW) == {}

    summary = {"run_id": "bf-uid-1", "rows": 42, "merged": 40}
    cluster.pods = [
        {
            "status": {
                "containerStatuses": [
                    {
                        "name": "backfill",
                        "state": {
                            "terminated": {
                                "exitCode": 0,
                                "finishedAt": "2030-01-01T00:01:00Z",
                                "message": "some log line\n" + json.dumps(summary) + "\n",
                            }
                        },
                    }
                ]
            }
        }
    ]
    set_job_status(
        cluster,
        {
            "startTime": "2030-01-01T00:00:10Z",
            "completionTime": "2030-01-01T00:01:01Z",
            "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True", "lastTransitionTime": "2030-01-01T00:01:01Z"},
            ],
        },
    )
    change = backfills.follow(cluster, body, SETTINGS, now=NOW)
    assert change["phase"] == "Succeeded"
    assert change["completionTime"] == "2030-01-01T00:01:01Z"
    assert change["summary"] == summary
    assert cond(change, "Complete")["status"] == "True"
    assert cond(change, "Failed")["status"] == "False"
    body["status"].update(change)
    assert backfills.follow(cluster, body, SETTINGS, now=NOW) == {}  # final


def test_a_summary_the_process_wrote_itself_is_not_replaced() -> None:
    cluster = FakeCluster()
    with_source(cluster)
    body = started(cluster)
    body["status"]["summary"] = {"rows": 1}
    set_job_status(cluster, {"conditions": [{"type": "Complete", "status": "True"}]})
    change = backfills.follow(cluster, body, SETTINGS, now=NOW)
    assert change["phase"] == "Succeeded" and "summary" not in change


def test_status_follows_the_job_to_failure_with_the_pod_message() -> None:
    cluster = FakeCluster()
    with_source(cluster)
    body = started(cluster)
    cluster.pods = [
        {
            "status": {
                "containerStatuses": [
                    {
                        "name": "backfill",
                        "state": {
                            "terminated": {"exitCode": 2, "message": "error: --from-offsets: no partition 7"}
                        },
                    }
                ]
            }
        }
    ]
    set_job_status(
        cluster,
        {
            "failed": 3,
            "conditions": [
                {"type": "FailureTarget", "status": "True"},
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastTransitionTime": "2030-01-01T00:02:00Z",
                },
            ],
        },
    )
    change = backfills.follow(cluster, body, SETTINGS, now=NOW)
    assert change["phase"] == "Failed"
    assert change["completionTime"] == "2030-01-01T00:02:00Z"
    failed = cond(change, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "BackoffLimitExceeded")
    assert failed["message"] == (
        "Job replay-backfill failed: Job has reached the specified backoff limit; "
        "last pod said: error: --from-offsets: no partition 7"
    )


def test_a_deleted_job_fails_the_backfill() -> None:
    cluster = FakeCluster()
    with_source(cluster)
    body = started(cluster)
    del cluster.objects[("Job", "replay-backfill")]
    change = backfills.follow(cluster, body, SETTINGS, now=NOW)
    assert change["phase"] == "Failed" and cond(change, "Failed")["reason"] == "JobNotFound"


# ---------------------------------------------------------------------------------------------
# reporters
# ---------------------------------------------------------------------------------------------


class FakeStatusClient:
    def __init__(self, source: dict[str, Any] | None = None, conflicts: int = 0) -> None:
        self.merged: list[tuple[str, str, str, dict[str, Any]]] = []
        self.patched: list[dict[str, Any]] = []
        self.source = source
        self.conflicts = conflicts

    def merge_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.merged.append((kind, namespace, name, status))
        return {}

    def get_status(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.source)

    def patch_status(self, body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        if self.conflicts:
            self.conflicts -= 1
            raise TransientError("HTTP 409: the object has been modified")
        self.patched.append(status)
        assert self.source is not None
        self.source["status"] = {**(self.source.get("status") or {}), **status}
        return self.source


def test_progress_reporter_is_throttled_and_finish_writes_the_summary() -> None:
    clock = [0.0]
    client = FakeStatusClient()
    reporter = reporters.BackfillProgressReporter(
        "team-a", "replay", client=client, interval=5.0, clock=lambda: clock[0]
    )
    reporter(0, 1000)
    for done in range(100, 900, 100):
        clock[0] += 1.0
        reporter(done, 1000)
    clock[0] += 1.0
    reporter(1000, 1000)
    reporter.finish({"rows": 1000, "run_id": "bf-uid-1"})
    assert [status for *_, status in client.merged] == [
        {"progress": {"rowsDone": 0, "rowsTotal": 1000}},
        {"progress": {"rowsDone": 500, "rowsTotal": 1000}},
        {"progress": {"rowsDone": 1000, "rowsTotal": 1000}},
        {"summary": {"rows": 1000, "run_id": "bf-uid-1"}, "progress": {"rowsDone": 1000, "rowsTotal": 1000}},
    ]
    assert {(kind, ns, name) for kind, ns, name, _ in client.merged} == {("Backfill", "team-a", "replay")}


def test_progress_reporter_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    outside = PodIdentity(backfill_name=None, backfill_namespace=None)
    assert reporters.BackfillProgressReporter.from_environment(outside) is None
    # The variables the operator renders on the pod (contracts.batch_pods).
    monkeypatch.setenv(batch_pods.ENV_BACKFILL_NAME, "replay")
    monkeypatch.setenv(batch_pods.ENV_BACKFILL_NAMESPACE, "team-a")
    reporter = reporters.BackfillProgressReporter.from_environment()
    assert reporter is not None and (reporter.namespace, reporter.name) == ("team-a", "replay")
    monkeypatch.setenv(batch_pods.ENV_SOURCE_NAME, "orders")
    monkeypatch.setenv(batch_pods.ENV_SOURCE_NAMESPACE, "team-b")
    assert (PodIdentity().source_name, PodIdentity().source_namespace) == ("orders", "team-b")


def test_a_failing_status_write_never_fails_the_backfill(caplog: pytest.LogCaptureFixture) -> None:
    class Refusing(FakeStatusClient):
        def merge_status(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise TransientError("HTTP 503: unavailable")

    reporter = reporters.BackfillProgressReporter("team-a", "replay", client=Refusing())
    reporter(1, 2)
    reporter.finish({"rows": 2})
    assert "backfill status not written backfill=replay" in caplog.text

    def no_cluster() -> reporters.StatusClient:
        raise RuntimeError("no service account token")

    local = reporters.BackfillProgressReporter("team-a", "replay", client_factory=no_cluster)
    local(1, 2)
    local(2, 2)
    assert "backfill status reporting disabled" in caplog.text


def source_status(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "restlake.io/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": "github-issues", "namespace": "team-a", "generation": 4, "resourceVersion": "9"},
        "status": {"phase": "Running", "conditions": list(conditions)},
    }


READY = {"type": "Ready", "status": "True", "reason": "Running", "message": "", "lastTransitionTime": NOW}


def test_report_quality_sets_the_condition_and_keeps_the_others() -> None:
    client = FakeStatusClient(source_status(READY), conflicts=1)
    env = PodIdentity(source_name="github-issues", source_namespace="team-a")
    assert reporters.report_quality(
        passed=False,
        evaluated=9,
        unsuccessful=2,
        detail="p_id not null",
        client=client,
        identity=env,
        now=NOW,
    )
    conditions = client.source["status"]["conditions"]  # type: ignore[index]
    assert conditions[0] == READY
    assert conditions[1] == {
        "type": "QualityPassing",
        "status": "False",
        "reason": "ExpectationsFailed",
        "message": "2 of 9 expectations failed: p_id not null",
        "lastTransitionTime": NOW,
        "observedGeneration": 4,
    }
    later = "2030-01-02T00:00:00Z"
    reporters.report_quality(
        passed=False, evaluated=9, unsuccessful=1, client=client, identity=env, now=later
    )
    quality = client.source["status"]["conditions"][1]  # type: ignore[index]
    assert (quality["message"], quality["lastTransitionTime"]) == ("1 of 9 expectations failed", NOW)
    reporters.report_quality(passed=True, evaluated=9, unsuccessful=0, client=client, identity=env, now=later)
    quality = client.source["status"]["conditions"][1]  # type: ignore[index]
    assert (quality["status"], quality["reason"], quality["message"], quality["lastTransitionTime"]) == (
        "True",
        "ExpectationsPassed",
        "9 of 9 expectations passed",
        later,
    )


def test_report_quality_outside_a_pod_does_nothing() -> None:
    client = FakeStatusClient(source_status())
    assert not reporters.report_quality(
        passed=True,
        evaluated=1,
        unsuccessful=0,
        client=client,
        identity=PodIdentity(source_name=None, source_namespace=None),
    )
    assert client.patched == []
    missing = FakeStatusClient(None)
    assert not reporters.report_quality(
        passed=True, evaluated=1, unsuccessful=0, source="gone", namespace="team-a", client=missing
    )


def test_termination_message_is_the_summary_only_inside_a_pod(tmp_path: Path) -> None:
    log_file = tmp_path / "termination-log"
    summary = {"origin": "bronze", "rows_read": 7, "inserted": 0}
    # No such file: not in a container, nothing is created.
    assert reporters.write_termination_message(summary, log_file) is False
    assert not log_file.exists()
    log_file.write_text("")
    assert reporters.write_termination_message(summary, log_file) is True
    assert json.loads(log_file.read_text()) == summary
    # Over the kubelet's 4 KiB a cut message would be invalid JSON: leave the log-tail fallback to it.
    assert reporters.write_termination_message({"detail": "x" * 5000}, log_file) is False
    assert json.loads(log_file.read_text()) == summary
