"""What one reconciliation and one status refresh do, independent of kopf.

The kopf handlers (``handlers.py``) only translate between kopf and these functions, so the whole
control loop runs in unit tests against a fake cluster and in the k8s tier against a real one.

``reconcile`` runs on every change of a source *and* on the status timer: server-side apply of an
unchanged object changes nothing, while a child someone deleted or edited is put back (drift
correction), and ``Outcome.changed`` says which.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from restlake import kafka_admin
from restlake.contracts.api_version import API_VERSION
from restlake.contracts.spec import KIND, IngestionSource, parse_source
from restlake.errors import TransientError
from restlake.kube import conditions
from restlake.kube.conditions import Condition
from restlake.operator import (
    compatibility,
    credentials,
    parents,
    pod_secrets,
    render,
    scrape,
    tenancy,
)
from restlake.operator.settings import OperatorSettings
from restlake.operator.topic_ledger import TopicLedger

log = logging.getLogger(__name__)


class Cluster(Protocol):
    """The API-server calls reconciliation needs (``kube.Kube`` in production, a fake in unit tests)."""

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None: ...

    def metadata(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> dict[str, Any] | None: ...

    def served(self, api_version: str, kind: str) -> bool: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool: ...


TopicCreator = Callable[..., bool]
Scraper = Callable[..., scrape.Figures]


@dataclass
class Outcome:
    """What a reconciliation did: the status to write and what is worth an Event."""

    status: dict[str, Any]
    applied: list[str] = field(default_factory=list)
    # Applied objects that were missing or differed from what the source renders to.
    changed: list[str] = field(default_factory=list)
    # Deployments rolled because a Secret their pods read changed (a rotation), not drift.
    rotated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    refused: list[compatibility.Incompatibility] = field(default_factory=list)
    topic_error: str | None = None
    # The CredentialsAllowed message when a referenced Secret is refused (the fetcher is held).
    credentials_refused: str | None = None
    # The ParentResolved message when spec.parent cannot be resolved (the fetcher is held).
    parent_unresolved: str | None = None


def load(body: Mapping[str, Any], settings: OperatorSettings) -> IngestionSource:
    """The source model from a watched object (status is the operator's own, so it is not parsed),
    with the identity the operator gives it (``render.identity``)."""
    document = {k: v for k, v in body.items() if k != "status"}
    origin = f"{body['metadata'].get('namespace')}/{body['metadata'].get('name')}"
    source = render.with_identity(parse_source(json.loads(json.dumps(document)), origin), settings)
    tenancy.refuse_foreign_overrides(source, settings, origin)
    return source


def accepted_schema(config_map: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The JSON Schema the running stream job was given, from the live ConfigMap (None: first apply)."""
    if not config_map:
        return None
    text = (config_map.get("data") or {}).get(render.STREAM_FILE)
    if not text:
        return None
    schema = json.loads(text).get("json_schema")
    return schema if isinstance(schema, dict) else None


def _component_conditions(
    cluster: Cluster, owner: render.Owner, *, paused: bool
) -> tuple[Condition, Condition]:
    deployments = [
        cluster.get("apps/v1", "Deployment", render.child_name(owner.name, part), owner.namespace)
        for part in (render.FETCHER, render.STREAM)
    ]
    return (
        conditions.deployment_condition(conditions.FETCHER_READY, deployments[0], paused=paused),
        conditions.deployment_condition(conditions.STREAM_READY, deployments[1], paused=paused),
    )


def _secrets_missing(
    objects: list[dict[str, Any]],
    owner: render.Owner,
    lookup: credentials.SecretLookup,
    fetcher: Condition,
    stream: Condition,
    *,
    paused: bool,
    fetcher_held: bool,
) -> tuple[Condition, Condition]:
    """The component conditions, with a Secret their pods read and the namespace lacks named in
    place of the Deployment's bare "0/1 available" (the pods wait in CreateContainerConfigError).
    A component that is available, paused or held at zero replicas keeps its condition."""
    if paused:
        return fetcher, stream
    rendered = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Deployment"}

    def checked(current: Condition, part: str) -> Condition:
        if current.status == "True":
            return current
        deployment = rendered.get(render.child_name(owner.name, part))
        return pod_secrets.condition(current.type, deployment, owner.namespace, lookup) or current

    return (fetcher if fetcher_held else checked(fetcher, render.FETCHER)), checked(stream, render.STREAM)


def strimzi_topic_api(cluster: Cluster) -> str | None:
    """The KafkaTopic apiVersion this cluster's Strimzi serves (newest first), or None without Strimzi."""
    return next((api for api in render.STRIMZI_TOPIC_APIS if cluster.served(api, "KafkaTopic")), None)


def _strimzi_topic_condition(cluster: Cluster, owner: render.Owner, api_version: str) -> Condition:
    """Ready when the topic operator reports both the records topic and the dead-letter topic ready."""
    waiting: list[str] = []
    for role in (render.TOPIC, render.DLQ_TOPIC):
        name = render.child_name(owner.name, role)
        live = cluster.get(api_version, "KafkaTopic", name, owner.namespace)
        found = {c.get("type"): c for c in ((live or {}).get("status") or {}).get("conditions", [])}
        ready = found.get("Ready")
        if ready is None:
            waiting.append(name)
            continue
        status = ready.get("status", "Unknown")
        if status != "True":
            return Condition(
                conditions.TOPIC_READY,
                status if status == "False" else "Unknown",
                ready.get("reason") or "TopicNotReady",
                f"KafkaTopic {name}: {ready.get('message') or 'not ready'}",
            )
    if waiting:
        return Condition(
            conditions.TOPIC_READY,
            "Unknown",
            "WaitingForTopicOperator",
            f"KafkaTopic {', '.join(waiting)} created; the Strimzi topic operator has not reported yet",
        )
    return Condition(conditions.TOPIC_READY, "True", "TopicReady", "records and dead-letter topics ready")


def _admin_topic_condition(
    source: IngestionSource,
    settings: OperatorSettings,
    create: TopicCreator,
    ledger: TopicLedger | None = None,
    namespace: str | None = None,
) -> tuple[Condition, str | None]:
    partitions = (source.spec.kafka.partitions if source.spec.kafka else None) or settings.default_partitions
    wanted = render.topics(source, settings)
    created: list[str] = []
    try:
        for role, topic in wanted.items():
            if create(
                settings.kafka_bootstrap,
                topic,
                partitions=partitions if role == render.TOPIC else 1,
                replicas=settings.topic_replicas,
                timeout=settings.metrics_timeout * 5,
            ):
                created.append(topic)
    except TransientError as exc:
        return Condition(conditions.TOPIC_READY, "False", "KafkaUnreachable", str(exc)), str(exc)
    finally:
        # Written even when a later topic failed: what was created must be found again to delete it.
        if created and ledger is not None and namespace is not None:
            ledger.record(namespace, source.name, created)
    reason = "TopicCreated" if created else "TopicExists"
    names = " and ".join(wanted.values())
    return Condition(conditions.TOPIC_READY, "True", reason, f"topics {names} via the Kafka admin API"), None


def reconcile(
    cluster: Cluster,
    body: Mapping[str, Any],
    settings: OperatorSettings,
    *,
    now: str,
    create_topic: TopicCreator = kafka_admin.ensure_topic,
    ledger: TopicLedger | None = None,
) -> Outcome:
    """Apply every object the source needs and compute its status.

    A schema change that breaks ``spec.schema.compatibility`` is refused: the previous schema stays
    in force (the ConfigMap keeps it), everything else in the update is applied, and the
    ``SchemaCompatible`` condition says why.
    """
    source = load(body, settings)
    owner = render.Owner.of(body)
    paused = render.is_paused(body["metadata"].get("annotations"))

    live_config = cluster.get("v1", "ConfigMap", render.child_name(owner.name, "config"), owner.namespace)
    old_schema = accepted_schema(live_config)
    declared = source.spec.schema_
    refused = compatibility.check(
        old_schema,
        declared.json_schema if declared else None,
        declared.compatibility if declared else "NONE",
    )
    if refused and declared is not None and old_schema is not None:
        kept = declared.model_copy(update={"json_schema": old_schema})
        source = source.model_copy(update={"spec": source.spec.model_copy(update={"schema_": kept})})
        schema_condition = Condition(
            conditions.SCHEMA_COMPATIBLE,
            "False",
            "IncompatibleSchemaChange",
            f"change refused under compatibility {declared.compatibility}, previous schema kept: "
            + "; ".join(str(p) for p in refused),
        )
    else:
        mode = declared.compatibility if declared else "NONE"
        schema_condition = Condition(
            conditions.SCHEMA_COMPATIBLE, "True", "Accepted", f"schema accepted (compatibility {mode})"
        )

    # Before anything is applied: a refused Secret must never reach a pod spec, not even once.
    # Once per name and reconcile: the label check and the pods' check read the same Secrets.
    @functools.cache
    def secret_metadata(name: str) -> Mapping[str, Any] | None:
        return cluster.metadata("v1", "Secret", name, owner.namespace)

    credentials_condition = credentials.check(source, secret_metadata)
    allowed = credentials_condition.status == "True"
    if not allowed:
        log.warning(
            "credentials refused source=%s namespace=%s reason=%s",
            owner.name,
            owner.namespace,
            credentials_condition.reason,
        )

    # spec.parent: the parent's identity and table go into the rendered document; unresolved, the
    # fetcher is held like a refused credential (it could only fail pass after pass).
    parent_condition, source = parents.resolve(
        source,
        lambda name: cluster.get(API_VERSION, KIND, name, owner.namespace),
        lambda found: render.with_identity(found, settings),
    )
    # The condition when it holds the fetcher back; None when there is no parent or it resolved.
    parent_refusal = (
        parent_condition if parent_condition is not None and parent_condition.status != "True" else None
    )
    if parent_refusal is not None:
        log.warning(
            "parent unresolved source=%s namespace=%s reason=%s",
            owner.name,
            owner.namespace,
            parent_refusal.reason,
        )

    strimzi = strimzi_topic_api(cluster)
    prometheus = cluster.served(render.SERVICE_MONITOR_API, "ServiceMonitor")
    objects = render.render_all(
        source,
        owner,
        settings,
        paused=paused,
        strimzi=strimzi,
        prometheus=prometheus,
        credentials_allowed=allowed and parent_refusal is None,
    )
    for obj in objects:
        if obj["kind"] == "Deployment":
            pod_secrets.stamp_versions(obj, secret_metadata)
    applied: list[str] = []
    changed: list[str] = []
    rotated: list[str] = []
    for obj in objects:
        meta = obj["metadata"]
        before = cluster.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        after = cluster.apply(obj)
        what = f"{obj['kind']}/{meta['name']}"
        applied.append(what)
        # An apply that changes nothing leaves resourceVersion alone; anything else was drift
        # (or a spec change, on the update path), or a rotated Secret, or both: a rotation is
        # drift as well when the Deployment differs in more than the digest. A Deployment an
        # operator without the stamp applied gets its first one as a change, not a rotation.
        stamped = pod_secrets.versions_of(before) if before is not None else None
        if before is not None and stamped is not None and stamped != pod_secrets.versions_of(obj):
            rotated.append(what)
            if pod_secrets.content_without_stamp(before) != pod_secrets.content_without_stamp(after):
                changed.append(what)
        elif before is None or _version(before) != _version(after):
            changed.append(what)
    deleted = _delete_unwanted(cluster, source, owner)

    topic_error = None
    topic_condition: Condition | None = None
    if strimzi:
        topic_condition = _strimzi_topic_condition(cluster, owner, strimzi)
    elif settings.topic_admin:
        topic_condition, topic_error = _admin_topic_condition(
            source, settings, create_topic, ledger, owner.namespace
        )

    fetcher, stream = _component_conditions(cluster, owner, paused=paused)
    if not allowed and not paused:
        # Zero replicas are "available" to the deployment controller; say why there are none.
        fetcher = Condition(
            conditions.FETCHER_READY,
            "False",
            credentials_condition.reason,
            "held at zero replicas: a referenced Secret is not allowed (see CredentialsAllowed)",
        )
    elif parent_refusal is not None and not paused:
        fetcher = Condition(
            conditions.FETCHER_READY,
            "False",
            parent_refusal.reason,
            "held at zero replicas: spec.parent is not resolved (see ParentResolved)",
        )
    fetcher, stream = _secrets_missing(
        objects,
        owner,
        secret_metadata,
        fetcher,
        stream,
        paused=paused,
        fetcher_held=not allowed or parent_refusal is not None,
    )
    phase, current = conditions.summarise(
        fetcher,
        stream,
        paused=paused,
        schema=schema_condition,
        topic=topic_condition,
        credentials=credentials_condition,
        parent=parent_condition,
    )
    generation = body["metadata"].get("generation")
    previous = (body.get("status") or {}).get("conditions", [])
    status = {
        "observedGeneration": generation,
        "phase": phase,
        "conditions": conditions.merge(previous, current, generation=generation, now=now),
    }
    log.info(
        "reconciled source=%s namespace=%s generation=%s phase=%s applied=%d refused=%d",
        owner.name,
        owner.namespace,
        generation,
        phase,
        len(applied),
        len(refused),
    )
    return Outcome(
        status=status,
        applied=applied,
        changed=changed,
        rotated=rotated,
        deleted=deleted,
        refused=refused,
        topic_error=topic_error,
        credentials_refused=None if allowed else credentials_condition.message,
        parent_unresolved=None if parent_refusal is None else parent_refusal.message,
    )


def _version(obj: Mapping[str, Any] | None) -> str | None:
    return ((obj or {}).get("metadata") or {}).get("resourceVersion")


def _delete_unwanted(cluster: Cluster, source: IngestionSource, owner: render.Owner) -> list[str]:
    """Delete the quality CronJob once its schedule is removed (owner references only act on deletion)."""
    if render.quality_schedule(source) is not None:
        return []
    name = render.child_name(owner.name, render.QUALITY)
    live = cluster.get("batch/v1", "CronJob", name, owner.namespace)
    if live is None:
        return []
    # Only ours: a CronJob of that name someone else made is not the operator's to remove.
    if not any(ref.get("uid") == owner.uid for ref in live["metadata"].get("ownerReferences") or []):
        return []
    cluster.delete("batch/v1", "CronJob", name, owner.namespace)
    return [f"CronJob/{name}"]


def figures(
    body: Mapping[str, Any], settings: OperatorSettings, *, scraper: Scraper = scrape.scrape
) -> dict[str, Any]:
    """Status fields from the pods' metrics: events and last fetch (fetcher), Kafka lag (driver)."""
    if not settings.metrics_url or render.is_paused(body["metadata"].get("annotations")):
        return {}
    owner = render.Owner.of(body)
    # The fetcher labels its series with the source's identity, not the object's name.
    source = render.identity(owner.namespace, owner.name, settings)
    found = scrape.Figures()
    for component, port in (
        (render.FETCHER, settings.http_port),
        (render.STREAM, settings.stream_metrics_port),
    ):
        url = settings.metrics_url.format(
            service=render.child_name(owner.name, component), namespace=owner.namespace, port=port
        )
        found = found.merged(scraper(url, source, timeout=settings.metrics_timeout))
    return found.status()


def resync(
    cluster: Cluster,
    body: Mapping[str, Any],
    settings: OperatorSettings,
    *,
    now: str,
    scraper: Scraper = scrape.scrape,
    create_topic: TopicCreator = kafka_admin.ensure_topic,
    ledger: TopicLedger | None = None,
) -> Resynced:
    """The status timer's work: reconcile again (drift correction), then read the metrics.

    Returns the status, the children that had drifted and the object read to compute them. A source
    whose latest generation has not been reconciled yet is left to the update handler (nothing is
    done: an empty status, no basis).
    """
    meta = body["metadata"]
    # The source as it is now, not the body kopf handed the timer: that one may predate an update
    # the update handler already applied (re-applying it would roll the pods back to the old spec)
    # or a deletion (re-applying would recreate the topics the deletion just released). Both
    # races were seen: the first in tests/k8s, the second on kind.
    live = cluster.get(API_VERSION, KIND, meta["name"], meta["namespace"])
    if live is None:
        return Resynced({}, [], None)
    status = live.get("status") or {}
    if status.get("observedGeneration") != live["metadata"].get("generation"):
        return Resynced({}, [], None)
    outcome = reconcile(cluster, live, settings, now=now, create_topic=create_topic, ledger=ledger)
    patch = dict(outcome.status)
    patch.update(figures(live, settings, scraper=scraper))
    return Resynced(patch, outcome.changed, live, tuple(outcome.rotated))


class Resynced(NamedTuple):
    """What one status-timer tick computed, and from which read of the source."""

    status: dict[str, Any]
    drifted: list[str]
    # The write must be guarded by this read's resourceVersion, not by the timer's ``body``: kopf
    # keeps that one current while the tick runs, so a quality report landing meanwhile would be
    # overwritten by conditions computed before it (seen in tests/k8s).
    basis: dict[str, Any] | None
    # Deployments rolled for a Secret that changed.
    rotated: tuple[str, ...] = ()

    def changes(self) -> dict[str, Any]:
        """The keys of ``status`` that differ from the basis's status."""
        before = ((self.basis or {}).get("status")) or {}
        return {k: v for k, v in self.status.items() if before.get(k) != v}
