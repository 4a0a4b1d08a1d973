"""Pure status computation: conditions and phase from what the operator or a batch pod observed.

Conditions follow the Kubernetes conventions (and Strimzi's look): one entry per type, a CamelCase
reason, a message a person can act on, and a ``lastTransitionTime`` that moves only when the status
does, so `kubectl describe` shows when something actually changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from restlake.redaction import redact

Status = Literal["True", "False", "Unknown"]

READY = "Ready"
FETCHER_READY = "FetcherReady"
STREAM_READY = "StreamReady"
QUALITY_PASSING = "QualityPassing"
PAUSED = "ReconciliationPaused"
SCHEMA_COMPATIBLE = "SchemaCompatible"
TOPIC_READY = "TopicReady"
CREDENTIALS_ALLOWED = "CredentialsAllowed"
PARENT_RESOLVED = "ParentResolved"

# Status order in `kubectl describe`: the summary first, then what it summarises.
_ORDER = (
    READY,
    FETCHER_READY,
    STREAM_READY,
    TOPIC_READY,
    CREDENTIALS_ALLOWED,
    PARENT_RESOLVED,
    SCHEMA_COMPATIBLE,
    QUALITY_PASSING,
    PAUSED,
)


@dataclass(frozen=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str = ""

    def as_dict(self, generation: int | None, now: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            # Messages quote what the cluster and the spec said (URLs, errors): never a secret.
            "message": redact(self.message),
            "lastTransitionTime": now,
        }
        if generation is not None:
            out["observedGeneration"] = generation
        return out


def now_rfc3339(clock: dt.datetime | None = None) -> str:
    moment = clock or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


# A component whose pods read a Secret the namespace lacks (restlake.operator.pod_secrets): they
# cannot start until a user creates it, so the source is Degraded, not still provisioning.
SECRET_MISSING = "SecretMissing"


def deployment_condition(kind: str, deployment: Mapping[str, Any] | None, *, paused: bool) -> Condition:
    """``FetcherReady``/``StreamReady`` from a Deployment, honestly: Unknown until it was observed.

    Without a deployment controller (or a kubelet) a Deployment never gets status; that is reported
    as Unknown with the reason, not guessed as ready or failed.
    """
    if paused:
        return Condition(kind, "False", "ReconciliationPaused", "scaled to zero by the pause annotation")
    if deployment is None:
        return Condition(kind, "False", "DeploymentMissing", "the Deployment does not exist (yet)")
    name = deployment.get("metadata", {}).get("name", "?")
    generation = deployment.get("metadata", {}).get("generation")
    status = deployment.get("status") or {}
    observed = status.get("observedGeneration")
    if observed is None or (generation is not None and observed < generation):
        return Condition(
            kind,
            "Unknown",
            "RolloutPending",
            f"Deployment {name} generation {generation} not yet observed by the deployment controller "
            f"(observed {observed if observed is not None else 'never'})",
        )
    wanted = deployment.get("spec", {}).get("replicas", 1)
    available = status.get("availableReplicas", 0) or 0
    updated = status.get("updatedReplicas", 0) or 0
    conds = {c.get("type"): c for c in status.get("conditions", [])}
    progressing = conds.get("Progressing", {})
    if progressing.get("status") == "False":
        return Condition(
            kind, "False", progressing.get("reason") or "NotProgressing", progressing.get("message", "")
        )
    if available >= wanted and updated >= wanted:
        return Condition(kind, "True", "Available", f"{available}/{wanted} replicas available")
    availability = conds.get("Available", {})
    detail = availability.get("message") or "waiting for pods to become ready"
    return Condition(
        kind,
        "False",
        availability.get("reason") or "ReplicasUnavailable",
        f"{available}/{wanted} replicas available, {updated} updated: {detail}",
    )


def summarise(
    fetcher: Condition,
    stream: Condition,
    *,
    paused: bool,
    schema: Condition | None = None,
    topic: Condition | None = None,
    credentials: Condition | None = None,
    parent: Condition | None = None,
) -> tuple[str, list[Condition]]:
    """The phase and the full condition set (Ready first) from the component conditions.

    A refused credential comes first among the blockers: it is why the fetcher is not ready, and
    the one thing the user has to act on.
    """
    parts = [fetcher, stream, *(c for c in (topic, credentials, parent, schema) if c is not None)]
    paused_condition = Condition(
        PAUSED,
        "True" if paused else "False",
        "PauseAnnotationSet" if paused else "NotPaused",
        'restlake.io/pause-reconciliation is "true"' if paused else "",
    )
    blocking = [c for c in parts if c.status != "True"]
    if paused:
        ready = Condition(
            READY,
            "False",
            "ReconciliationPaused",
            "the source is paused; remove the restlake.io/pause-reconciliation annotation to resume",
        )
        phase = "Paused"
    elif not blocking:
        ready = Condition(READY, "True", "Running", "fetcher and stream job are available")
        phase = "Running"
    else:
        first = next((c for c in blocking if c is credentials or c is parent), blocking[0])
        status: Status = "False" if any(c.status == "False" for c in blocking) else "Unknown"
        ready = Condition(READY, status, first.reason, f"{first.type}: {first.message}")
        refused = any(c is not None and c.status == "False" for c in (schema, credentials, parent))
        stuck = any(c.reason in ("ProgressDeadlineExceeded", SECRET_MISSING) for c in blocking)
        phase = "Degraded" if refused or stuck else "Provisioning"
    return phase, [ready, *parts, paused_condition]


def merge(
    previous: Iterable[Mapping[str, Any]],
    current: Iterable[Condition],
    *,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """New condition list: ``lastTransitionTime`` kept where the status did not change.

    Types the operator did not compute this time (``QualityPassing``, owned by the quality checks)
    are kept as they are; ``QualityPassing`` starts as Unknown.
    """
    out = {c["type"]: c for c in transition(previous, current, generation=generation, now=now)}
    if QUALITY_PASSING not in out:
        out[QUALITY_PASSING] = Condition(
            QUALITY_PASSING, "Unknown", "NotEvaluated", "no quality results reported yet"
        ).as_dict(generation, now)
    rank = {kind: i for i, kind in enumerate(_ORDER)}
    return sorted(out.values(), key=lambda c: (rank.get(c["type"], len(rank)), c["type"]))


def transition(
    previous: Iterable[Mapping[str, Any]],
    current: Iterable[Condition],
    *,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """``current`` over ``previous``: ``lastTransitionTime`` kept where the status did not change,
    types not in ``current`` kept as they are, in their previous order, new types after them."""
    before = {c["type"]: dict(c) for c in previous if c.get("type") is not None}
    out: dict[str, dict[str, Any]] = dict(before)
    for cond in current:
        entry = cond.as_dict(generation, now)
        old = before.get(cond.type)
        if old is not None and old.get("status") == cond.status and old.get("lastTransitionTime"):
            entry["lastTransitionTime"] = old["lastTransitionTime"]
        out[cond.type] = entry
    return list(out.values())
