"""What one reconciliation and one status refresh do, independent of kopf.

The kopf handlers (``handlers.py``) only translate between kopf and these two functions, so the
whole control loop runs in unit tests against a fake cluster and in the k8s tier against a real one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from restlake.contracts.spec import IngestionSource, parse_source
from restlake.errors import TransientError
from restlake.operator import compatibility, conditions, render, scrape, topics
from restlake.operator.conditions import Condition
from restlake.operator.settings import OperatorSettings

log = logging.getLogger(__name__)


class Cluster(Protocol):
    """The API-server calls reconciliation needs (``kube.Kube`` in production, a fake in unit tests)."""

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None: ...

    def served(self, api_version: str, kind: str) -> bool: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool: ...


TopicCreator = Callable[..., bool]
Scraper = Callable[..., scrape.Figures]


@dataclass
class Outcome:
    """What a reconciliation did: the status to write and what is worth an Event."""

    status: dict[str, Any]
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    refused: list[compatibility.Incompatibility] = field(default_factory=list)
    topic_error: str | None = None


def load(body: Mapping[str, Any]) -> IngestionSource:
    """The source model from a watched object (status is the operator's own, so it is not parsed)."""
    document = {k: v for k, v in body.items() if k != "status"}
    origin = f"{body['metadata'].get('namespace')}/{body['metadata'].get('name')}"
    return parse_source(json.loads(json.dumps(document)), origin)


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


def _strimzi_topic_condition(cluster: Cluster, owner: render.Owner) -> Condition:
    live = cluster.get(
        render.STRIMZI_TOPIC_API, "KafkaTopic", render.child_name(owner.name, "topic"), owner.namespace
    )
    found = {c.get("type"): c for c in ((live or {}).get("status") or {}).get("conditions", [])}
    ready = found.get("Ready")
    if ready is None:
        return Condition(
            conditions.TOPIC_READY,
            "Unknown",
            "WaitingForTopicOperator",
            "KafkaTopic created; the Strimzi topic operator has not reported on it yet",
        )
    status = ready.get("status", "Unknown")
    return Condition(
        conditions.TOPIC_READY,
        status if status in ("True", "False") else "Unknown",
        ready.get("reason") or ("TopicReady" if status == "True" else "TopicNotReady"),
        ready.get("message") or "",
    )


def _admin_topic_condition(
    source: IngestionSource, settings: OperatorSettings, create: TopicCreator
) -> tuple[Condition, str | None]:
    topic = source.topic(settings.topic_prefix)
    partitions = (source.spec.kafka.partitions if source.spec.kafka else None) or settings.default_partitions
    try:
        created = create(
            settings.kafka_bootstrap,
            topic,
            partitions=partitions,
            replicas=settings.topic_replicas,
            timeout=settings.metrics_timeout * 5,
        )
    except TransientError as exc:
        return Condition(conditions.TOPIC_READY, "False", "KafkaUnreachable", str(exc)), str(exc)
    reason = "TopicCreated" if created else "TopicExists"
    return Condition(conditions.TOPIC_READY, "True", reason, f"topic {topic} via the Kafka admin API"), None


def reconcile(
    cluster: Cluster,
    body: Mapping[str, Any],
    settings: OperatorSettings,
    *,
    now: str,
    create_topic: TopicCreator = topics.ensure_topic,
) -> Outcome:
    """Apply every object the source needs and compute its status.

    A schema change that breaks ``spec.schema.compatibility`` is refused: the previous schema stays
    in force (the ConfigMap keeps it), everything else in the update is applied, and the
    ``SchemaCompatible`` condition says why.
    """
    source = load(body)
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

    strimzi = cluster.served(render.STRIMZI_TOPIC_API, "KafkaTopic")
    prometheus = cluster.served(render.SERVICE_MONITOR_API, "ServiceMonitor")
    objects = render.render_all(
        source, owner, settings, paused=paused, strimzi=strimzi, prometheus=prometheus
    )
    applied = []
    for obj in objects:
        cluster.apply(obj)
        applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
    deleted = _delete_unwanted(cluster, source, owner)

    topic_error = None
    topic_condition: Condition | None = None
    if strimzi:
        topic_condition = _strimzi_topic_condition(cluster, owner)
    elif settings.topic_admin:
        topic_condition, topic_error = _admin_topic_condition(source, settings, create_topic)

    fetcher, stream = _component_conditions(cluster, owner, paused=paused)
    phase, current = conditions.summarise(
        fetcher, stream, paused=paused, schema=schema_condition, topic=topic_condition
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
    return Outcome(status=status, applied=applied, deleted=deleted, refused=refused, topic_error=topic_error)


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


def _previous(status: Mapping[str, Any], kind: str) -> Condition | None:
    for entry in status.get("conditions", []):
        if entry.get("type") == kind:
            return Condition(
                kind,
                entry.get("status", "Unknown"),
                entry.get("reason") or "Unknown",
                entry.get("message") or "",
            )
    return None


def refresh(
    cluster: Cluster,
    body: Mapping[str, Any],
    settings: OperatorSettings,
    *,
    now: str,
    scraper: Scraper = scrape.scrape,
    create_topic: TopicCreator = topics.ensure_topic,
) -> dict[str, Any]:
    """The status patch of a periodic refresh: Deployment and topic readiness, metrics figures.

    It re-reads what reconciliation leaves to others (the deployment controller, the topic operator,
    the fetcher), and never applies objects, so it cannot undo a pause or a refused change.
    """
    owner = render.Owner.of(body)
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"].get("generation"):
        return {}  # a reconcile of a newer spec is due; it writes the status
    paused = render.is_paused(body["metadata"].get("annotations"))
    fetcher, stream = _component_conditions(cluster, owner, paused=paused)
    topic_condition = _previous(status, conditions.TOPIC_READY)
    if cluster.served(render.STRIMZI_TOPIC_API, "KafkaTopic"):
        topic_condition = _strimzi_topic_condition(cluster, owner)
    elif settings.topic_admin and (topic_condition is None or topic_condition.status != "True"):
        topic_condition, _ = _admin_topic_condition(load(body), settings, create_topic)
    phase, current = conditions.summarise(
        fetcher,
        stream,
        paused=paused,
        schema=_previous(status, conditions.SCHEMA_COMPATIBLE),
        topic=topic_condition,
    )
    patch: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions.merge(
            status.get("conditions", []), current, generation=status.get("observedGeneration"), now=now
        ),
    }
    if settings.metrics_url and not paused:
        url = settings.metrics_url.format(
            service=render.child_name(owner.name, render.FETCHER),
            namespace=owner.namespace,
            port=settings.http_port,
        )
        patch.update(scraper(url, owner.name, timeout=settings.metrics_timeout).status())
    return patch
