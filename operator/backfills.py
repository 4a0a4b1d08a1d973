"""What the operator does for a Backfill: create its Job once, then mirror the Job into the status.

Independent of kopf like ``reconcile.py``: ``start`` runs on create (and on operator restart),
``follow`` on a timer until the phase is final. The Job's conditions are the verdict; the pod's
termination message (the CLI's JSON summary) becomes ``status.summary`` when the backfill process
did not write it itself (``restlake.runtime.pod_reporters.BackfillProgressReporter.finish``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from restlake.contracts.api_version import API_VERSION
from restlake.contracts.backfill import Backfill, InvalidBackfill, parse_backfill
from restlake.contracts.spec import KIND
from restlake.errors import TransientError
from restlake.operator import conditions, render
from restlake.operator.conditions import Condition
from restlake.operator.settings import OperatorSettings

log = logging.getLogger(__name__)

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
TERMINAL = frozenset({SUCCEEDED, FAILED})

JOB_CREATED = "JobCreated"
COMPLETE = "Complete"
FAILED_CONDITION = "Failed"
# The label the Job controller puts on a Job's pods.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
_MESSAGE_TAIL = 1000


class Cluster(Protocol):
    """The API-server calls a Backfill needs (``kube.Kube``, or a fake in unit tests)."""

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, namespace: str | None, *, label_selector: str
    ) -> list[dict[str, Any]]: ...


def load(body: Mapping[str, Any]) -> Backfill:
    document = json.loads(json.dumps({k: v for k, v in body.items() if k != "status"}))
    return parse_backfill(document, f"{body['metadata'].get('namespace')}/{body['metadata'].get('name')}")


def _status(
    body: Mapping[str, Any], phase: str, current: list[Condition], *, now: str, **fields: Any
) -> dict[str, Any]:
    generation = body["metadata"].get("generation")
    previous = (body.get("status") or {}).get("conditions", [])
    return {
        "phase": phase,
        "observedGeneration": generation,
        **fields,
        "conditions": conditions.transition(previous, current, generation=generation, now=now),
    }


def _failed(body: Mapping[str, Any], reason: str, message: str, *, now: str, **fields: Any) -> dict[str, Any]:
    return _status(
        body,
        FAILED,
        [
            Condition(COMPLETE, "False", reason, message),
            Condition(FAILED_CONDITION, "True", reason, message),
        ],
        now=now,
        completionTime=now,
        **fields,
    )


def start(
    cluster: Cluster, body: Mapping[str, Any], settings: OperatorSettings, *, now: str
) -> dict[str, Any]:
    """Create the Backfill's Job; the status to write (empty when there is nothing to do).

    Idempotent: on an operator restart a Backfill whose Job exists, or which already finished, is
    left alone. A missing source fails the Backfill for good: a one-shot does not wait for one.
    """
    status = body.get("status") or {}
    if status.get("phase") in TERMINAL:
        return {}
    owner = render.Owner.of(body)
    job_name = render.backfill_job_name(owner.name)
    if status.get("jobName") and cluster.get("batch/v1", "Job", job_name, owner.namespace) is not None:
        return {}
    try:
        backfill = load(body)
    except InvalidBackfill as exc:
        return _failed(body, "InvalidSpec", str(exc), now=now)
    source = backfill.spec.source
    if cluster.get(API_VERSION, KIND, source, owner.namespace) is None:
        return _failed(
            body,
            "SourceNotFound",
            f"spec.source: IngestionSource {source!r} not found in namespace {owner.namespace!r}",
            now=now,
        )
    config = render.child_name(source, "config")
    if cluster.get("v1", "ConfigMap", config, owner.namespace) is None:
        raise TransientError(
            f"spec.source: IngestionSource {source!r} has no ConfigMap {config} yet (not reconciled)",
            retry_after=5,
        )
    cluster.apply(render.backfill_job(backfill, owner, settings))
    log.info("backfill job created backfill=%s namespace=%s job=%s", owner.name, owner.namespace, job_name)
    return _status(
        body,
        PENDING,
        [
            Condition(JOB_CREATED, "True", "Created", f"Job {job_name} created"),
            Condition(COMPLETE, "False", PENDING, "the Job's pod has not started"),
            Condition(FAILED_CONDITION, "False", PENDING, ""),
        ],
        now=now,
        jobName=job_name,
    )


def _terminations(cluster: Cluster, job: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Terminated states of the backfill container over the Job's pods, oldest first."""
    meta = job["metadata"]
    pods = cluster.list("v1", "Pod", meta["namespace"], label_selector=f"{JOB_NAME_LABEL}={meta['name']}")
    found = []
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated")
            if container.get("name") == render.BACKFILL and terminated:
                found.append(terminated)
    return sorted(found, key=lambda t: t.get("finishedAt") or "")


def _summary(message: str | None) -> dict[str, Any] | None:
    """The JSON summary in a termination message: the whole message, else its last JSON line."""
    text = (message or "").strip()
    for candidate in (text, *reversed(text.splitlines())):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def follow(
    cluster: Cluster, body: Mapping[str, Any], settings: OperatorSettings, *, now: str
) -> dict[str, Any]:
    """The status patch that mirrors the Job: phase, times, conditions, and the summary at the end."""
    status = body.get("status") or {}
    phase = status.get("phase")
    if phase is None or phase in TERMINAL:
        return {}
    owner = render.Owner.of(body)
    job_name = status.get("jobName") or render.backfill_job_name(owner.name)
    job = cluster.get("batch/v1", "Job", job_name, owner.namespace)
    if job is None:
        return _changed(
            status, _failed(body, "JobNotFound", f"Job {job_name} was deleted before it finished", now=now)
        )
    job_status = job.get("status") or {}
    verdicts = {c.get("type"): c for c in job_status.get("conditions") or [] if c.get("status") == "True"}
    times = {"startTime": job_status["startTime"]} if job_status.get("startTime") else {}
    if "Complete" in verdicts:
        done = job_status.get("completionTime") or verdicts["Complete"].get("lastTransitionTime") or now
        fields: dict[str, Any] = {**times, "completionTime": done}
        if not status.get("summary"):
            ok = [t for t in _terminations(cluster, job) if t.get("exitCode") == 0]
            summary = _summary(ok[-1].get("message")) if ok else None
            if summary is not None:
                fields["summary"] = summary
        message = f"Job {job_name} succeeded"
        new = _status(
            body,
            SUCCEEDED,
            [
                Condition(COMPLETE, "True", "JobComplete", message),
                Condition(FAILED_CONDITION, "False", "JobComplete", ""),
            ],
            now=now,
            **fields,
        )
    elif "Failed" in verdicts:
        verdict = verdicts["Failed"]
        reason = verdict.get("reason") or "JobFailed"
        message = f"Job {job_name} failed: {verdict.get('message') or reason}"
        ended = _terminations(cluster, job)
        if ended and ended[-1].get("message"):
            message += f"; last pod said: {ended[-1]['message'].strip()[-_MESSAGE_TAIL:]}"
        message = message[:4096]  # the CRD's bound on a condition message
        done = verdict.get("lastTransitionTime") or now
        new = _status(
            body,
            FAILED,
            [
                Condition(COMPLETE, "False", reason, message),
                Condition(FAILED_CONDITION, "True", reason, message),
            ],
            now=now,
            **times,
            completionTime=done,
        )
    elif job_status.get("active") or job_status.get("startTime"):
        new = _status(
            body,
            RUNNING,
            [
                Condition(COMPLETE, "False", RUNNING, f"Job {job_name} is running"),
                Condition(FAILED_CONDITION, "False", RUNNING, ""),
            ],
            now=now,
            **times,
        )
    else:
        return {}
    return _changed(status, new)


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in after.items() if before.get(k) != v}
