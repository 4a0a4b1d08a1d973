"""Backfills, the quality CronJob and the status reporters against a real API server and operator.

There is no kubelet, and the controller manager here runs no Job controller: nothing ever runs a
Job's pod. The tests play the Job controller's part by writing the Job's (and a pod's) status
through the status subresource, which the API server validates as it would the controller's own
writes, and check that the Backfill's status follows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import REPO_ROOT as REPO
from harness import eventually

from restlake.kube.client import Kube
from restlake.runtime import pod_reporters as reporters
from restlake.settings import PodIdentity

pytestmark = pytest.mark.k8s

SOURCE = REPO / "examples" / "github-issues.yaml"
SOURCE_NAME = "github-issues"
# The rules charts/restlake/templates/jobs-rbac.yaml grants the Job and CronJob pods
# (tests/k8s/test_helm.py asserts the chart renders exactly these).
JOB_RULES = [
    {
        "apiGroups": ["restlake.io"],
        "resources": ["backfills/status", "ingestionsources/status"],
        "verbs": ["get", "patch"],
    }
]


def backfill(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "restlake.io/v1alpha1",
        "kind": "Backfill",
        "metadata": {"name": name},
        "spec": {"source": SOURCE_NAME, **spec},
    }


def apply(control_plane: Any, namespace: str, document: dict[str, Any] | Path) -> None:
    text = document.read_text() if isinstance(document, Path) else yaml.safe_dump(document)
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=text)


def get(control_plane: Any, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    proc = control_plane.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr:
            return None
        raise AssertionError(proc.stderr)
    return json.loads(proc.stdout)


def status_of(control_plane: Any, namespace: str, name: str) -> dict[str, Any]:
    return (get(control_plane, namespace, "backfill", name) or {}).get("status") or {}


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), None)


def write_status(
    kube: Kube, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
) -> None:
    """What the Job controller (or the kubelet, for a pod) would write."""
    kube.merge_status(api_version, kind, name, namespace, status)


def source_ready(control_plane: Any, namespace: str) -> None:
    apply(control_plane, namespace, SOURCE)
    eventually(
        lambda: get(control_plane, namespace, "configmap", f"{SOURCE_NAME}-config"),
        what="the source's ConfigMap",
    )


# ---------------------------------------------------------------------------------------------
# The CRD refuses bad Backfills by itself
# ---------------------------------------------------------------------------------------------

INVALID = {
    "two-origins": (
        {"kafka": {"fromTime": "2030-01-01T00:00:00Z"}, "bronze": {"fromVersion": 1}},
        ["spec.bronze", "set only one origin, spec.kafka or spec.bronze, not both"],
    ),
    "no-origin": ({}, ["spec", "an origin is required: set spec.kafka or spec.bronze"]),
    "kafka-without-start": (
        {"kafka": {"toTime": "2030-01-01T00:00:00Z"}},
        ["spec.kafka.fromTime", "set exactly one of fromTime or fromOffsets"],
    ),
    "bad-partition": (
        {"kafka": {"fromOffsets": {"first": 1}}},
        ["spec.kafka.fromOffsets", "keys must be partition numbers"],
    ),
    "negative-offset": ({"kafka": {"fromOffsets": {"0": -5}}}, ["spec.kafka.fromOffsets.0"]),
    "to-before-from": (
        {"bronze": {"fromVersion": 5, "toVersion": 2}},
        ["spec.bronze.toVersion", "toVersion must not be less than fromVersion"],
    ),
    "as-of-words": ({"bronze": {"asOf": "yesterday"}}, ["spec.bronze.asOf", "should match"]),
    "as-of-negative": (
        {"bronze": {"asOf": -3}},
        ["spec.bronze.asOf", "asOf must be a version of 0 or more, or an RFC 3339 time"],
    ),
    "no-source": ({"source": None, "bronze": {"asOf": 3}}, ["spec.source", "Required value"]),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_api_server_rejects_invalid_backfills_naming_the_field(
    case: str, control_plane: Any, crds: list[str]
) -> None:
    spec, expected = INVALID[case]
    document = backfill(f"bad-{case}", **spec)
    document["spec"] = {k: v for k, v in document["spec"].items() if v is not None}
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-n", "default", "-f", "-", input=yaml.safe_dump(document), check=False
    )
    assert result.returncode != 0, f"{case} was accepted: {result.stdout}"
    for text in expected:
        assert text in result.stderr, f"{case}: {text!r} not in {result.stderr!r}"


def test_valid_backfills_are_accepted(control_plane: Any, crds: list[str]) -> None:
    for i, spec in enumerate(
        [
            {
                "kafka": {"fromOffsets": {"0": 120, "1": 95}, "toTime": "2030-01-01T00:00:00Z"},
                "chunkRows": 500,
            },
            {"bronze": {"fromVersion": 0, "toVersion": 3}},
            {"bronze": {"asOf": 12}},
            {"bronze": {"asOf": "2030-01-01T00:00:00+02:00"}},
        ]
    ):
        result = control_plane.kubectl(
            "apply",
            "--dry-run=server",
            "-n",
            "default",
            "-f",
            "-",
            input=yaml.safe_dump(backfill(f"ok-{i}", **spec)),
            check=False,
        )
        assert result.returncode == 0, f"{spec}: {result.stderr}"


def test_a_backfill_spec_cannot_change_after_creation(
    control_plane: Any, crds: list[str], namespace: str
) -> None:
    apply(control_plane, namespace, backfill("once", bronze={"fromVersion": 1}))
    result = control_plane.kubectl(
        "patch",
        "backfill",
        "once",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"bronze": {"fromVersion": 2}}}),
        check=False,
    )
    assert result.returncode != 0
    assert "a Backfill is one-shot: spec cannot change after creation; create a new Backfill" in result.stderr
    # Labels and annotations are not the spec: they may change.
    control_plane.kubectl("label", "backfill", "once", "-n", namespace, "team=data")


# ---------------------------------------------------------------------------------------------
# The operator runs a Backfill as a Job and follows it
# ---------------------------------------------------------------------------------------------


def test_backfill_creates_the_job_and_follows_it_to_success(
    operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    kube = Kube(api)
    source_ready(control_plane, namespace)
    apply(
        control_plane,
        namespace,
        backfill("replay", kafka={"fromOffsets": {"1": 95, "0": 120}, "toTime": "2030-01-01T00:00:00Z"}),
    )
    uid = get(control_plane, namespace, "backfill", "replay")["metadata"]["uid"]  # type: ignore[index]
    job = eventually(
        lambda: get(control_plane, namespace, "job", "replay-backfill"), what="the Backfill's Job"
    )
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [
        "restlake",
        "backfill",
        "-f",
        "/etc/restlake/source.yaml",
        "--source",
        "github-issues",
        "--from-offsets",
        "0:120,1:95",
        "--to-time",
        "2030-01-01T00:00:00+00:00",
        "--run-id",
        uid,
    ]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert [(r["kind"], r["name"], r["uid"]) for r in job["metadata"]["ownerReferences"]] == [
        ("Backfill", "replay", uid)
    ]
    pending = eventually(lambda: status_of(control_plane, namespace, "replay").get("phase"), what="a phase")
    assert pending == "Pending"
    assert status_of(control_plane, namespace, "replay")["jobName"] == "replay-backfill"

    started = "2030-01-01T00:00:10Z"
    write_status(kube, "batch/v1", "Job", "replay-backfill", namespace, {"startTime": started, "active": 1})
    eventually(
        lambda: status_of(control_plane, namespace, "replay").get("phase") == "Running", what="phase Running"
    )
    assert status_of(control_plane, namespace, "replay")["startTime"] == started

    # The pod as the Job controller would have made it, finished as the kubelet would report it.
    summary = {"run_id": uid, "rows": 215, "merged": 200, "unchanged": 15}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "replay-backfill-x1",
            "labels": {"batch.kubernetes.io/job-name": "replay-backfill", "job-name": "replay-backfill"},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "backfill", "image": "restlake/spark:dev"}],
        },
    }
    apply(control_plane, namespace, pod)
    finished = "2030-01-01T00:03:00Z"
    write_status(
        kube,
        "v1",
        "Pod",
        "replay-backfill-x1",
        namespace,
        {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": "backfill",
                    "image": "restlake/spark:dev",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": started,
                            "finishedAt": finished,
                            "message": json.dumps(summary),
                        }
                    },
                }
            ],
        },
    )
    write_status(
        kube,
        "batch/v1",
        "Job",
        "replay-backfill",
        namespace,
        {
            "active": 0,
            "succeeded": 1,
            "completionTime": finished,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": finished},
                {"type": "Complete", "status": "True", "lastTransitionTime": finished},
            ],
        },
    )
    done = eventually(
        lambda: (s := status_of(control_plane, namespace, "replay")).get("phase") == "Succeeded" and s,
        what="phase Succeeded",
    )
    assert done["completionTime"] == finished
    assert done["summary"] == summary
    assert condition(done, "Complete")["status"] == "True"  # type: ignore[index]
    printed = control_plane.kubectl("get", "bf", "-n", namespace).stdout.splitlines()
    assert printed[0].split()[:3] == ["NAME", "SOURCE", "PHASE"]
    assert printed[1].split()[:3] == ["replay", "github-issues", "Succeeded"]


def test_a_failed_job_fails_the_backfill(operator: Any, control_plane: Any, api: Any, namespace: str) -> None:
    kube = Kube(api)
    source_ready(control_plane, namespace)
    apply(control_plane, namespace, backfill("doomed", bronze={"asOf": 3}))
    job = eventually(lambda: get(control_plane, namespace, "job", "doomed-backfill"), what="the Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][6:8] == ["--as-of", "3"]
    eventually(
        lambda: status_of(control_plane, namespace, "doomed").get("phase") == "Pending", what="Pending"
    )
    at = "2030-01-01T00:09:00Z"
    write_status(
        kube,
        "batch/v1",
        "Job",
        "doomed-backfill",
        namespace,
        {
            "startTime": "2030-01-01T00:00:00Z",
            "failed": 3,
            "conditions": [
                {
                    "type": "FailureTarget",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "lastTransitionTime": at,
                },
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastTransitionTime": at,
                },
            ],
        },
    )
    failed = eventually(
        lambda: (s := status_of(control_plane, namespace, "doomed")).get("phase") == "Failed" and s,
        what="phase Failed",
    )
    verdict = condition(failed, "Failed")
    assert (verdict["status"], verdict["reason"]) == ("True", "BackoffLimitExceeded")  # type: ignore[index]
    assert failed["completionTime"] == at


def test_a_backfill_of_a_missing_source_fails_naming_spec_source(
    operator: Any, control_plane: Any, namespace: str
) -> None:
    apply(
        control_plane,
        namespace,
        {
            **backfill("orphan", bronze={"fromVersion": 0}),
            "spec": {"source": "nope", "bronze": {"fromVersion": 0}},
        },
    )
    failed = eventually(
        lambda: (s := status_of(control_plane, namespace, "orphan")).get("phase") == "Failed" and s,
        what="phase Failed",
    )
    verdict = condition(failed, "Failed")
    assert verdict["reason"] == "SourceNotFound"  # type: ignore[index]
    assert verdict["message"] == f"spec.source: IngestionSource 'nope' not found in namespace '{namespace}'"  # type: ignore[index]
    assert get(control_plane, namespace, "job", "orphan-backfill") is None


# ---------------------------------------------------------------------------------------------
# The reporters the pods call, with exactly the chart's permissions
# ---------------------------------------------------------------------------------------------


def as_job_pod(control_plane: Any, api: Any, namespace: str) -> Kube:
    """A client that is the Job pods' ServiceAccount (impersonated), bound to the chart's rules."""
    from kubernetes import client

    documents = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "restlake-jobs"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "restlake-jobs"},
            "rules": JOB_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "restlake-jobs"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "restlake-jobs"},
            "subjects": [{"kind": "ServiceAccount", "name": "restlake-jobs", "namespace": namespace}],
        },
    ]
    for doc in documents:
        apply(control_plane, namespace, doc)
    impersonated = client.ApiClient(api.configuration)
    impersonated.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:restlake-jobs")
    return Kube(impersonated)


def test_progress_reporter_patches_the_backfill_status(
    operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    pod_client = as_job_pod(control_plane, api, namespace)
    apply(control_plane, namespace, backfill("live", bronze={"fromVersion": 0}))  # no source: fails at once
    eventually(lambda: status_of(control_plane, namespace, "live").get("phase") == "Failed", what="Failed")
    reporter = reporters.BackfillProgressReporter.from_environment(
        PodIdentity(backfill_name="live", backfill_namespace=namespace), client=pod_client
    )
    assert reporter is not None
    reporter(10, 100)
    assert status_of(control_plane, namespace, "live")["progress"] == {"rowsDone": 10, "rowsTotal": 100}
    reporter(100, 100)
    reporter.finish({"rows": 100, "run_id": "r-1"})
    status = status_of(control_plane, namespace, "live")
    assert status["progress"] == {"rowsDone": 100, "rowsTotal": 100}
    assert status["summary"] == {"rows": 100, "run_id": "r-1"}
    assert status["phase"] == "Failed"  # the reporter touched only its own keys
    # The pods' account may write status and nothing else.
    denied = control_plane.kubectl(
        "auth",
        "can-i",
        "patch",
        "backfills",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:restlake-jobs",
        check=False,
    )
    assert denied.stdout.strip() == "no"


def test_quality_reporter_sets_quality_passing_and_the_operator_keeps_it(
    operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    pod_client = as_job_pod(control_plane, api, namespace)
    source_ready(control_plane, namespace)

    def source() -> dict[str, Any]:
        return get(control_plane, namespace, "isrc", SOURCE_NAME) or {}

    eventually(lambda: (source().get("status") or {}).get("observedGeneration") == 1, what="first reconcile")
    pod = PodIdentity(source_name=SOURCE_NAME, source_namespace=namespace)
    assert reporters.report_quality(
        passed=False, evaluated=9, unsuccessful=2, detail="p_title not null", client=pod_client, identity=pod
    )
    written = condition(source()["status"], "QualityPassing")
    assert written is not None
    assert (written["status"], written["reason"], written["message"]) == (
        "False",
        "ExpectationsFailed",
        "2 of 9 expectations failed: p_title not null",
    )
    # A spec change makes the operator reconcile and rewrite the status; the condition survives it,
    # and so do the status timer's refreshes (every second here).
    control_plane.kubectl(
        "patch",
        "isrc",
        SOURCE_NAME,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"poll": {"interval": "5m"}}}),
    )
    eventually(lambda: source()["status"].get("observedGeneration") == 2, what="the second reconcile")
    eventually(lambda: condition(source()["status"], "Ready") is not None, what="conditions")
    assert condition(source()["status"], "QualityPassing") == written
    assert reporters.report_quality(passed=True, evaluated=9, unsuccessful=0, client=pod_client, identity=pod)
    passed = condition(source()["status"], "QualityPassing")
    assert (passed["status"], passed["reason"], passed["message"]) == (  # type: ignore[index]
        "True",
        "ExpectationsPassed",
        "9 of 9 expectations passed",
    )


# ---------------------------------------------------------------------------------------------
# The quality CronJob follows spec.quality.bronze.schedule
# ---------------------------------------------------------------------------------------------


def test_quality_schedule_creates_and_deletes_the_cron_job(
    operator: Any, control_plane: Any, namespace: str
) -> None:
    document = yaml.safe_load(SOURCE.read_text())
    document["spec"]["quality"] = {"bronze": {"schedule": "*/20 * * * *"}}
    apply(control_plane, namespace, document)
    cron = eventually(
        lambda: get(control_plane, namespace, "cronjob", f"{SOURCE_NAME}-quality"), what="CronJob"
    )
    assert cron["spec"]["schedule"] == "*/20 * * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [
        "restlake",
        "quality",
        "run",
        "--source",
        SOURCE_NAME,
        "-f",
        "/etc/restlake/source.yaml",
    ]
    assert [r["kind"] for r in cron["metadata"]["ownerReferences"]] == ["IngestionSource"]

    control_plane.kubectl(
        "patch",
        "isrc",
        SOURCE_NAME,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"quality": {"bronze": {"schedule": "@hourly"}}}}),
    )
    eventually(
        lambda: (
            (get(control_plane, namespace, "cronjob", f"{SOURCE_NAME}-quality") or {})["spec"]["schedule"]
            == "@hourly"
        ),
        what="the new schedule",
    )
    control_plane.kubectl(
        "patch",
        "isrc",
        SOURCE_NAME,
        "-n",
        namespace,
        "--type=json",
        "-p",
        json.dumps([{"op": "remove", "path": "/spec/quality/bronze/schedule"}]),
    )
    eventually(
        lambda: get(control_plane, namespace, "cronjob", f"{SOURCE_NAME}-quality") is None,
        what="the CronJob deleted",
    )
