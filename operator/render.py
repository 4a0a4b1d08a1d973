"""Pure functions from an IngestionSource to the Kubernetes objects that run it.

Nothing here talks to the API server: each function returns the full desired object (as a dict ready
for server-side apply), so the operator's behaviour is unit-tested without a cluster, and applying the
same source twice yields byte-identical requests.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import yaml

from restlake.contracts.spec import API_VERSION, KIND, IngestionSource, SecretRef
from restlake.operator.settings import FIELD_MANAGER, OperatorSettings

CONFIG_DIR = "/etc/restlake"
SOURCE_FILE = "source.yaml"
STREAM_FILE = "stream.json"
CONFIG_HASH = "restlake.io/config-hash"
SOURCE_LABEL = "restlake.io/source"
PAUSE_ANNOTATION = "restlake.io/pause-reconciliation"

FETCHER = "fetcher"
STREAM = "stream"

STRIMZI_TOPIC_API = "kafka.strimzi.io/v1"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1"

# Used when spec.resources leaves a container out: enough for a poller and for a one-core Spark driver.
DEFAULT_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    FETCHER: {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    STREAM: {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
}
# Kubernetes Service and label values are DNS-1123 labels: at most 63 characters.
_MAX_NAME = 63
_UID = 10001


@dataclass(frozen=True)
class Owner:
    """The IngestionSource that owns every rendered object (for ownerReferences and namespaces)."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, body: Any) -> Owner:
        meta = body["metadata"]
        return cls(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])

    def reference(self) -> dict[str, Any]:
        # controller: True makes `kubectl get deploy -o wide` and the GC treat the source as the owner;
        # blockOwnerDeletion keeps a foreground delete of the source waiting for its children.
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def is_paused(annotations: dict[str, str] | None) -> bool:
    """Whether the Strimzi-style pause annotation is set to "true"."""
    return (annotations or {}).get(PAUSE_ANNOTATION, "").strip().lower() == "true"


def child_name(source: str, suffix: str) -> str:
    """``<source>-<suffix>``, shortened with a stable hash when it would exceed 63 characters."""
    name = f"{source}-{suffix}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(source.encode()).hexdigest()[:8]
    keep = _MAX_NAME - len(suffix) - len(digest) - 2
    return f"{source[:keep].rstrip('-')}-{digest}-{suffix}"


def selector_labels(source: str, component: str) -> dict[str, str]:
    """Labels a Deployment selects its pods by; never change them, a selector is immutable."""
    return {
        "app.kubernetes.io/name": "restlake",
        "app.kubernetes.io/instance": source,
        "app.kubernetes.io/component": component,
    }


def labels(source: str, component: str) -> dict[str, str]:
    return {
        **selector_labels(source, component),
        "app.kubernetes.io/part-of": "restlake",
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        SOURCE_LABEL: source,
    }


def _metadata(name: str, owner: Owner, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner.name, component),
        "ownerReferences": [owner.reference()],
    }


# ---------------------------------------------------------------------------------------------------
# ConfigMap
# ---------------------------------------------------------------------------------------------------


def source_document(source: IngestionSource) -> dict[str, Any]:
    """The source as `restlake run -f` reads it: spec with defaults, and only name and namespace.

    Labels and annotations are left out on purpose: toggling the pause annotation or a label must
    not change the config hash and roll the pods.
    """
    spec = source.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    meta = {"name": source.metadata.name}
    if source.metadata.namespace:
        meta["namespace"] = source.metadata.namespace
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec}


def stream_job_config(source: IngestionSource, settings: OperatorSettings) -> dict[str, Any]:
    """The stream job's ``StreamJobConfig`` JSON; the DSN is left out and read from RESTLAKE_PG_DSN."""
    root = settings.lake_root
    config: dict[str, Any] = {
        "source": source.name,
        "topic": source.topic(settings.topic_prefix),
        "kafka_bootstrap": settings.kafka_bootstrap,
        "bronze_path": source.bronze_path(root),
        "quarantine_path": source.quarantine_path(root),
        "checkpoint_path": source.checkpoint_path(root),
        "pg_table": source.spec.sinks.postgres.table,
    }
    if source.spec.schema_ is not None:
        config["json_schema"] = source.spec.schema_.json_schema
    return config


def config_map(source: IngestionSource, owner: Owner, settings: OperatorSettings) -> dict[str, Any]:
    """ConfigMap ``<name>-config``: ``source.yaml`` for the fetcher, ``stream.json`` for the driver."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(child_name(owner.name, "config"), owner, "config"),
        "data": {
            SOURCE_FILE: yaml.safe_dump(source_document(source), sort_keys=False),
            STREAM_FILE: json.dumps(stream_job_config(source, settings), indent=2, sort_keys=True) + "\n",
        },
    }


def content_hash(text: str) -> str:
    """Short sha256 of a config file; a pod template annotation, so a change rolls the Deployment."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------
# Pods
# ---------------------------------------------------------------------------------------------------


def secret_refs(source: IngestionSource) -> list[SecretRef]:
    """Every Secret key the source's auth refers to, in a stable order, without duplicates."""
    auth = source.spec.request.auth
    if auth is None:
        return []
    found = [
        getattr(auth, attr)
        for attr in ("secret_ref", "username_secret_ref", "password_secret_ref", "client_secret_ref")
        if getattr(auth, attr, None) is not None
    ]
    unique: dict[tuple[str, str], SecretRef] = {(r.name, r.key): r for r in found}
    return [unique[k] for k in sorted(unique)]


def _secret_env(source: IngestionSource) -> list[dict[str, Any]]:
    # The fetcher resolves RESTLAKE_SECRET_<NAME>_<KEY> first (restlake.contracts.secrets), so secrets
    # arrive as env vars and never as files in the ConfigMap.
    return [
        {"name": ref.env_var(), "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
        for ref in secret_refs(source)
    ]


def _resources(source: IngestionSource, component: str) -> dict[str, Any]:
    spec = source.spec.resources
    chosen = getattr(spec, "fetcher" if component == FETCHER else "driver", None) if spec else None
    if chosen is None:
        return json.loads(json.dumps(DEFAULT_RESOURCES[component]))
    return chosen.model_dump(mode="json", exclude_none=True)


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": _UID,
        "runAsGroup": _UID,
        "fsGroup": _UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _common_env(settings: OperatorSettings) -> list[dict[str, Any]]:
    return [
        {"name": "RESTLAKE_KAFKA_BOOTSTRAP", "value": settings.kafka_bootstrap},
        {"name": "RESTLAKE_KAFKA_TOPIC_PREFIX", "value": settings.topic_prefix},
        {"name": "RESTLAKE_LAKE_ROOT", "value": settings.lake_root},
        {
            "name": "RESTLAKE_PG_DSN",
            "valueFrom": {"secretKeyRef": {"name": settings.pg_dsn_secret, "key": settings.pg_dsn_key}},
        },
    ]


def _volumes(owner: Owner, items: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "name": "config",
            "configMap": {
                "name": child_name(owner.name, "config"),
                "items": [{"key": k, "path": k} for k in items],
            },
        },
        # The root filesystem is read-only; Python, Spark and the JVM still need a scratch directory.
        {"name": "tmp", "emptyDir": {}},
    ]


def _mounts() -> list[dict[str, Any]]:
    return [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]


def _pod_spec(settings: OperatorSettings, container: dict[str, Any], volumes: list[dict[str, Any]]) -> dict:
    pod: dict[str, Any] = {
        "securityContext": _pod_security(),
        "containers": [container],
        "volumes": volumes,
    }
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account
    return pod


def _env_from(settings: OperatorSettings) -> list[dict[str, Any]]:
    return [{"secretRef": {"name": settings.lake_secret}}] if settings.lake_secret else []


def fetcher_deployment(
    source: IngestionSource, owner: Owner, settings: OperatorSettings, *, paused: bool
) -> dict[str, Any]:
    """Deployment ``<name>-fetcher``: one stateless poller (its state lives in Postgres)."""
    text = config_map(source, owner, settings)["data"][SOURCE_FILE]
    port = settings.http_port
    probe = {"httpGet": {"port": "http"}, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3}
    container: dict[str, Any] = {
        "name": FETCHER,
        "image": settings.fetcher_image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": [
            *settings.fetcher_command,
            "-f",
            f"{CONFIG_DIR}/{SOURCE_FILE}",
            "--ops-port",
            str(port),
            "--no-create-topics",
            "--json-logs",
        ],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [*_common_env(settings), {"name": "HOME", "value": "/tmp"}, *_secret_env(source)],
        "envFrom": _env_from(settings),
        "livenessProbe": {**probe, "httpGet": {"path": "/healthz", "port": "http"}},
        "readinessProbe": {**probe, "httpGet": {"path": "/readyz", "port": "http"}},
        "resources": _resources(source, FETCHER),
        "securityContext": _container_security(),
        "volumeMounts": _mounts(),
    }
    if not container["envFrom"]:
        del container["envFrom"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(child_name(owner.name, FETCHER), owner, FETCHER),
        "spec": {
            "replicas": 0 if paused else 1,
            "selector": {"matchLabels": selector_labels(owner.name, FETCHER)},
            "template": {
                "metadata": {
                    "labels": labels(owner.name, FETCHER),
                    "annotations": {CONFIG_HASH: content_hash(text)},
                },
                "spec": _pod_spec(settings, container, _volumes(owner, [SOURCE_FILE])),
            },
        },
    }


def fetcher_service(owner: Owner, settings: OperatorSettings) -> dict[str, Any]:
    """Service ``<name>-fetcher``: what the ServiceMonitor and the operator's status timer scrape."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(child_name(owner.name, FETCHER), owner, FETCHER),
        "spec": {
            "selector": selector_labels(owner.name, FETCHER),
            "ports": [{"name": "http", "port": settings.http_port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def stream_deployment(
    source: IngestionSource, owner: Owner, settings: OperatorSettings, *, paused: bool
) -> dict[str, Any]:
    """Deployment ``<name>-stream``: the Spark driver, client mode against the standalone master.

    One replica and ``Recreate``: two drivers on one checkpoint would fight over it, so the old pod
    must be gone before the new one starts.
    """
    text = config_map(source, owner, settings)["data"][STREAM_FILE]
    container: dict[str, Any] = {
        "name": "driver",
        "image": settings.spark_image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": [
            "python",
            "-m",
            "restlake.jobs.spark.stream",
            "--config",
            f"{CONFIG_DIR}/{STREAM_FILE}",
            "--master",
            settings.spark_master_url,
        ],
        "ports": [{"name": "spark-ui", "containerPort": 4040, "protocol": "TCP"}],
        "env": [
            *_common_env(settings),
            {"name": "HOME", "value": "/tmp"},
            # Executors connect back to the driver (client mode): advertise the pod IP, not a hostname
            # only the pod itself can resolve.
            {"name": "SPARK_LOCAL_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "envFrom": _env_from(settings),
        "resources": _resources(source, STREAM),
        "securityContext": _container_security(),
        "volumeMounts": _mounts(),
    }
    if not container["envFrom"]:
        del container["envFrom"]
    pod = _pod_spec(settings, container, _volumes(owner, [STREAM_FILE]))
    # The job stops its query on SIGTERM and commits the batch in flight; give it time to.
    pod["terminationGracePeriodSeconds"] = 120
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(child_name(owner.name, STREAM), owner, STREAM),
        "spec": {
            "replicas": 0 if paused else 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_labels(owner.name, STREAM)},
            "template": {
                "metadata": {
                    "labels": labels(owner.name, STREAM),
                    "annotations": {CONFIG_HASH: content_hash(text)},
                },
                "spec": pod,
            },
        },
    }


# ---------------------------------------------------------------------------------------------------
# Optional integrations
# ---------------------------------------------------------------------------------------------------


def kafka_topic(source: IngestionSource, owner: Owner, settings: OperatorSettings) -> dict[str, Any]:
    """Strimzi ``KafkaTopic`` named like the source; ``topicName`` carries the real topic."""
    partitions = (source.spec.kafka.partitions if source.spec.kafka else None) or settings.default_partitions
    meta = _metadata(child_name(owner.name, "topic"), owner, "topic")
    meta["labels"]["strimzi.io/cluster"] = settings.kafka_cluster
    return {
        "apiVersion": STRIMZI_TOPIC_API,
        "kind": "KafkaTopic",
        "metadata": meta,
        "spec": {
            "topicName": source.topic(settings.topic_prefix),
            "partitions": partitions,
            "replicas": settings.topic_replicas,
        },
    }


def service_monitor(owner: Owner, settings: OperatorSettings) -> dict[str, Any]:
    """Prometheus Operator ``ServiceMonitor`` scraping the fetcher Service's /metrics."""
    return {
        "apiVersion": SERVICE_MONITOR_API,
        "kind": "ServiceMonitor",
        "metadata": _metadata(child_name(owner.name, FETCHER), owner, FETCHER),
        "spec": {
            "selector": {"matchLabels": selector_labels(owner.name, FETCHER)},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
    }


def render_all(
    source: IngestionSource,
    owner: Owner,
    settings: OperatorSettings,
    *,
    paused: bool,
    strimzi: bool,
    prometheus: bool,
) -> list[dict[str, Any]]:
    """Every object the source needs, in apply order (config before the pods that mount it)."""
    objects = [
        config_map(source, owner, settings),
        fetcher_service(owner, settings),
        fetcher_deployment(source, owner, settings, paused=paused),
        stream_deployment(source, owner, settings, paused=paused),
    ]
    if strimzi:
        objects.append(kafka_topic(source, owner, settings))
    if prometheus:
        objects.append(service_monitor(owner, settings))
    return objects
