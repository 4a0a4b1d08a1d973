"""kopf handlers: thin adapters from kopf's callbacks to ``reconcile``; importing registers them.

Sync handlers on purpose: the ``kubernetes`` client and the Kafka admin client block, and kopf runs
sync handlers in its thread pool, so one slow API call never stalls the event loop.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import secrets
from typing import Any

import kopf

from restlake import kafka_admin
from restlake.contracts.api_version import API_GROUP, VERSION
from restlake.errors import PermanentError, SpecError, TransientError
from restlake.kube import conditions
from restlake.kube.client import Kube
from restlake.operator import backfills, reconcile, render, topic_ledger
from restlake.operator.deletion_guard import DeletionGuard
from restlake.operator.settings import FIELD_MANAGER, OperatorSettings
from restlake.redaction import install_log_redaction, redact

log = logging.getLogger(__name__)

PLURAL = "ingestionsources"
BACKFILLS = "backfills"
# kopf's own bookkeeping goes into annotations under this prefix: the CRD's status schema would
# prune kopf's default status.kopf field, and the status belongs to the source's users.
KOPF_PREFIX = "kopf.restlake.io"

_STATE: dict[str, Any] = {}
# Serialises, per source, the handlers that create its topics with the one that deletes them.
_DELETIONS = DeletionGuard()


def _settings() -> OperatorSettings:
    if "settings" not in _STATE:
        _STATE["settings"] = OperatorSettings()
    return _STATE["settings"]


def _cluster() -> Kube:
    if "kube" not in _STATE:
        _STATE["kube"] = Kube.from_environment(field_manager=FIELD_MANAGER)
    return _STATE["kube"]


def _ledger() -> topic_ledger.TopicLedger | None:
    """The created-topics ledger; only on the admin-API path and when the operator knows its namespace."""
    ours = _settings()
    if not ours.topic_admin or not ours.release_namespace:
        return None
    return topic_ledger.TopicLedger(_cluster(), ours.release_namespace, ours.topic_ledger)


def _uses_strimzi() -> bool:
    return reconcile.strimzi_topic_api(_cluster()) is not None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Peering (one active replica), kopf's storage in annotations, Events from the handlers only."""
    ours = _settings()
    settings.peering.name = ours.peering
    settings.peering.mandatory = ours.peering_mandatory
    settings.peering.clusterwide = not ours.namespaces
    # kopf peering is not leader election: replicas of equal priority all freeze. Distinct random
    # priorities make the highest live replica the active one, and the next takes over when its
    # heartbeat expires (peering.lifetime).
    settings.peering.priority = (
        ours.priority if ours.priority is not None else secrets.randbelow(1_000_000) + 1
    )
    # Events from kopf.info/warn at INFO and above; kopf's own log lines ("Timer succeeded", every
    # tick) stay out of Events (posting.loggers is off), the handlers post the ones worth reading.
    settings.posting.level = logging.INFO
    settings.posting.loggers = False
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    _cluster()
    # Every record of restlake's loggers passes the redaction patterns (URLs, DSNs, tokens in errors).
    install_log_redaction()
    log.info(
        "operator configured peering=%s priority=%s namespaces=%s",
        ours.peering,
        settings.peering.priority,
        ours.namespaces or "all",
    )


@kopf.on.startup()
def sweep_topics(**_: Any) -> None:
    """Delete the topics of sources that were deleted while no operator ran (see topic_ledger)."""
    ledger = _ledger()
    if ledger is None or _uses_strimzi():
        return
    ours = _settings()
    try:
        released = topic_ledger.sweep(
            ledger,
            delete=kafka_admin.delete_topics,
            bootstrap=ours.kafka_bootstrap,
            timeout=ours.metrics_timeout * 5,
        )
    except (TransientError, PermanentError) as exc:
        log.warning("topic sweep skipped reason=%s", exc)
        return
    for entry, deleted in released.items():
        log.info("swept topics of deleted source source=%s topics=%s", entry, ",".join(deleted))


def _uid(body: kopf.Body) -> str:
    meta = body["metadata"]
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def _raise_for_kopf(exc: Exception) -> None:
    if isinstance(exc, TransientError):
        raise kopf.TemporaryError(redact(str(exc)), delay=exc.retry_after or 10) from exc
    if isinstance(exc, PermanentError):
        raise kopf.PermanentError(redact(str(exc))) from exc
    raise exc


@kopf.on.create(API_GROUP, VERSION, PLURAL)
@kopf.on.update(API_GROUP, VERSION, PLURAL)
@kopf.on.resume(API_GROUP, VERSION, PLURAL)
def reconcile_source(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Create or update everything the source needs; write status; post what changed as Events."""
    # One read for both the computation and the write's resourceVersion guard (kopf may refresh a
    # Body it handed out while the handler runs).
    basis = copy.deepcopy(dict(body))
    try:
        with _DELETIONS.live(_uid(body)) as alive:
            if not alive:
                log.info("reconcile skipped, source deleted source=%s", body["metadata"]["name"])
                return
            outcome = reconcile.reconcile(
                _cluster(), basis, _settings(), now=conditions.now_rfc3339(), ledger=_ledger()
            )
    except SpecError as exc:
        # The API server validated the schema; the model's cross-field rules are a superset.
        kopf.warn(body, reason="InvalidSpec", message=redact(str(exc)))
        patch.status["phase"] = "Failed"
        patch.status["observedGeneration"] = body["metadata"].get("generation")
        raise kopf.PermanentError(redact(str(exc))) from exc
    except (TransientError, PermanentError) as exc:
        kopf.warn(body, reason="ReconcileFailed", message=redact(str(exc)))
        _raise_for_kopf(exc)
        return
    try:
        # Not kopf's patch, which is unconditional: the conditions were computed from ``body``, and
        # a quality reporter or the status timer may have written newer ones (QualityPassing)
        # since. A 409 re-runs the handler on a fresh read.
        _cluster().patch_status(basis, outcome.status)
    except TransientError as exc:
        raise kopf.TemporaryError(
            f"status not written, the object changed meanwhile: {redact(str(exc))}", delay=1
        ) from exc
    if outcome.refused:
        kopf.warn(
            body,
            reason="SchemaIncompatible",
            message="schema change refused, previous schema kept: "
            + "; ".join(str(p) for p in outcome.refused),
        )
    if outcome.topic_error:
        kopf.warn(body, reason="TopicNotCreated", message=redact(outcome.topic_error))
    if outcome.credentials_refused:
        kopf.warn(body, reason="CredentialsNotAllowed", message=redact(outcome.credentials_refused))
    if outcome.parent_unresolved:
        kopf.warn(body, reason="ParentUnresolved", message=redact(outcome.parent_unresolved))
    kopf.info(
        body,
        reason="Reconciled",
        message=f"applied {', '.join(outcome.applied)}"
        + (f"; deleted {', '.join(outcome.deleted)}" if outcome.deleted else "")
        + f"; phase {outcome.status['phase']}",
    )


@kopf.on.event(API_GROUP, VERSION, PLURAL)
def source_gone(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """Delete a deleted source's topics (admin-API path; with Strimzi, its KafkaTopics are owned).

    A watch event, not a deletion handler: those need a finalizer, and a finalizer makes deleting a
    source (or its namespace) hang whenever the operator is not running. What this misses while the
    operator is down, the startup sweep catches.
    """
    if event.get("type") != "DELETED" or _uses_strimzi():
        return
    ours = _settings()
    if not ours.topic_admin:
        return
    meta = body["metadata"]
    try:
        source = reconcile.load(body, ours)
        names = list(render.topics(source, ours).values())
    except SpecError:
        names = []
    # After any reconcile of this source under way (it may be creating the topics right now), and
    # before any later one, which then finds the source gone.
    with _DELETIONS.deleting(_uid(body)):
        _release_topics(meta, names, ours)


def _release_topics(meta: Any, names: list[str], ours: OperatorSettings) -> None:
    try:
        topic_ledger.release(
            _ledger(),
            meta["namespace"],
            meta["name"],
            names,
            delete=kafka_admin.delete_topics,
            bootstrap=ours.kafka_bootstrap,
            timeout=ours.metrics_timeout * 5,
        )
    except (TransientError, PermanentError) as exc:
        log.warning(
            "topics of deleted source %s/%s kept for the next sweep: %s", meta["namespace"], meta["name"], exc
        )


@kopf.timer(API_GROUP, VERSION, PLURAL, interval=_settings().status_interval, initial_delay=1.0)
def refresh_status(body: kopf.Body, **_: Any) -> None:
    """Reconcile again (put back a deleted or edited child), then refresh the status and figures."""
    name = body["metadata"]["name"]
    changed: dict[str, Any] = {}
    try:
        with _DELETIONS.live(_uid(body)) as alive:
            if not alive:
                return
            tick = reconcile.resync(
                _cluster(), body, _settings(), now=conditions.now_rfc3339(), ledger=_ledger()
            )
        if tick.drifted:
            kopf.info(body, reason="DriftCorrected", message=f"restored {', '.join(tick.drifted)}")
        if tick.rotated:
            kopf.info(
                body,
                reason="SecretsRotated",
                message=f"rolled {', '.join(tick.rotated)}: a Secret its pods read changed",
            )
        changed = tick.changes()
        if changed and tick.basis is not None:
            # Not kopf's patch: that one is unconditional, and another writer (a reconcile, a
            # quality report) may have moved the source on since the tick read it.
            _cluster().patch_status(tick.basis, changed)
    except TransientError as exc:
        log.info("status refresh skipped source=%s reason=%s", name, exc)
        return
    except PermanentError as exc:
        log.warning("status refresh failed source=%s error=%s", name, exc)
        return
    if "phase" in changed:
        before = ((tick.basis or {}).get("status") or {}).get("phase")
        kopf.info(body, reason="PhaseChanged", message=f"{before} -> {changed['phase']}")


@kopf.on.create(API_GROUP, VERSION, BACKFILLS)
@kopf.on.resume(API_GROUP, VERSION, BACKFILLS)
def start_backfill(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Create the Backfill's Job (once; a Backfill is one-shot and its spec immutable)."""
    try:
        status = backfills.start(_cluster(), body, _settings(), now=conditions.now_rfc3339())
    except (TransientError, PermanentError) as exc:
        kopf.warn(body, reason="BackfillNotStarted", message=redact(str(exc)))
        _raise_for_kopf(exc)
        return
    if not status:
        return
    patch.status.update(status)
    if status["phase"] == backfills.FAILED:
        failed = next(c for c in status["conditions"] if c["type"] == backfills.FAILED_CONDITION)
        kopf.warn(body, reason=failed["reason"], message=redact(failed["message"]))
    else:
        kopf.info(body, reason="JobCreated", message=f"created Job {status['jobName']}")


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in backfills.TERMINAL


@kopf.timer(
    API_GROUP, VERSION, BACKFILLS, interval=_settings().status_interval, initial_delay=1.0, when=_unfinished
)
def follow_backfill(body: kopf.Body, **_: Any) -> None:
    """Mirror the Job's state into the Backfill's status until it succeeded or failed."""
    name = body["metadata"]["name"]
    basis = copy.deepcopy(dict(body))  # kopf keeps a timer's body current while the tick runs
    try:
        changed = backfills.follow(_cluster(), basis, _settings(), now=conditions.now_rfc3339())
        if changed:
            # Guarded by resourceVersion: the running pod patches progress and summary meanwhile.
            _cluster().patch_status(basis, changed)
    except TransientError as exc:
        log.info("backfill status refresh skipped backfill=%s reason=%s", name, exc)
        return
    except PermanentError as exc:
        log.warning("backfill status refresh failed backfill=%s error=%s", name, exc)
        return
    if "phase" in changed:
        before = (basis.get("status") or {}).get("phase")
        kopf.info(body, reason="PhaseChanged", message=f"{before} -> {changed['phase']}")


def _without_finalizers() -> None:
    """Make our timers run without a finalizer on the objects they watch.

    kopf marks every timer ``requires_finalizer`` so that it can stop the timer before the object
    goes. Ours only read and re-apply: when the object is gone its timer simply stops, and nothing
    needs cleaning up, whereas a finalizer makes deleting a source, a Backfill or their namespace
    hang while no operator runs. kopf removes the finalizer it once added from objects it sees
    again, so sources created by an older operator are released too.
    """
    registry = kopf.get_default_registry()
    spawning = registry._spawning  # kopf 1.x: no public switch for timers
    spawning._handlers[:] = [
        dataclasses.replace(handler, requires_finalizer=False) for handler in spawning._handlers
    ]


_without_finalizers()
