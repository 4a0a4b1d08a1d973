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
from urllib.parse import urlsplit

import yaml

from restlake.contracts import batch_pods
from restlake.contracts.api_version import API_VERSION
from restlake.contracts.backfill import Backfill
from restlake.contracts.parents import PARENT_IDENTITY_ANNOTATION, PARENT_TABLE_ANNOTATION
from restlake.contracts.source.auth import SecretRef
from restlake.contracts.source.resources import ContainerResources
from restlake.contracts.spec import IDENTITY_ANNOTATION, KIND, IngestionSource, qualified_identity
from restlake.contracts.stream_job import StreamJobConfig
from restlake.operator import credentials
from restlake.operator.settings import FIELD_MANAGER, OperatorSettings

CONFIG_DIR = "/etc/restlake"
SOURCE_FILE = "source.yaml"
STREAM_FILE = "stream.json"
CONFIG_HASH = "restlake.io/config-hash"
SOURCE_LABEL = "restlake.io/source"
PAUSE_ANNOTATION = "restlake.io/pause-reconciliation"

FETCHER = "fetcher"
STREAM = "stream"
BACKFILL = "backfill"
QUALITY = "quality"
BACKFILL_LABEL = "restlake.io/backfill"
QUALITY_DIR = "/var/lib/restlake/quality"

# Strimzi serves KafkaTopic as v1 from 0.49 (only v1 from 1.0) and as v1beta2 before; the operator
# uses the first of these the cluster serves (the topic spec it writes is the same in both).
STRIMZI_TOPIC_APIS = ("kafka.strimzi.io/v1", "kafka.strimzi.io/v1beta2")
STRIMZI_TOPIC_API = STRIMZI_TOPIC_APIS[0]
SERVICE_MONITOR_API = "monitoring.coreos.com/v1"
RUNTIME = "runtime"
METRICS_PORT_NAME = "metrics"

# Used when spec.resources leaves a container out: enough for a poller and for a one-core Spark driver.
DEFAULT_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    FETCHER: {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    STREAM: {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    # Spark in local mode inside the pod: the driver is also the executor.
    BACKFILL: {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "3Gi"}},
    QUALITY: {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
}
# Kubernetes Service and label values are DNS-1123 labels: at most 63 characters.
_MAX_NAME = 63
_UID = 10001


@dataclass(frozen=True)
class Owner:
    """The IngestionSource (or Backfill) that owns rendered objects (ownerReferences, namespaces)."""

    name: str
    namespace: str
    uid: str
    kind: str = KIND

    @classmethod
    def of(cls, body: Any) -> Owner:
        meta = body["metadata"]
        return cls(
            name=meta["name"], namespace=meta["namespace"], uid=meta["uid"], kind=body.get("kind", KIND)
        )

    def reference(self) -> dict[str, Any]:
        # controller: True makes `kubectl get deploy -o wide` and the GC treat the source as the owner;
        # blockOwnerDeletion keeps a foreground delete of the source waiting for its children.
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
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
# Identity
# ---------------------------------------------------------------------------------------------------


def identity(namespace: str, name: str, settings: OperatorSettings) -> str:
    """What a source's data is keyed by on Kubernetes (``IngestionSource.identity``).

    ``<namespace>.<name>``, so same-named sources of two namespaces never share a topic, a lake path,
    a checkpoint, fetch state or Postgres rows. Sources in the operator's own namespace keep the bare
    name: that is where every source lived before the operator watched other namespaces, and their
    topics, tables and rows stay theirs after an upgrade.
    """
    if settings.release_namespace and namespace == settings.release_namespace:
        return name
    return qualified_identity(namespace, name)


def with_identity(source: IngestionSource, settings: OperatorSettings) -> IngestionSource:
    """The source with the identity annotation the operator decides, whatever the object carried."""
    meta = source.metadata
    value = identity(meta.namespace or "", meta.name, settings)
    annotations = {**meta.annotations, IDENTITY_ANNOTATION: value}
    return source.model_copy(update={"metadata": meta.model_copy(update={"annotations": annotations})})


# ---------------------------------------------------------------------------------------------------
# ConfigMap
# ---------------------------------------------------------------------------------------------------


def source_document(source: IngestionSource) -> dict[str, Any]:
    """The source as `restlake run -f` reads it: spec with defaults, and only name and namespace.

    Labels and annotations are left out on purpose: toggling the pause annotation or a label must
    not change the config hash and roll the pods. The identity annotation is the exception: the pods
    key their data by it, and it never changes for a given object.
    """
    spec = source.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    meta: dict[str, Any] = {"name": source.metadata.name}
    if source.metadata.namespace:
        meta["namespace"] = source.metadata.namespace
    # The parent's identity and table (spec.parent), resolved by the operator: a child's fetcher
    # reads its parent's records with them. They change only if the parent is replaced.
    kept = {
        key: value
        for key, value in source.metadata.annotations.items()
        if key in (PARENT_IDENTITY_ANNOTATION, PARENT_TABLE_ANNOTATION)
    }
    if IDENTITY_ANNOTATION in source.metadata.annotations:
        kept[IDENTITY_ANNOTATION] = source.identity
    if kept:
        meta["annotations"] = dict(sorted(kept.items()))
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec}


def stream_job_config(
    source: IngestionSource, settings: OperatorSettings, uid: str | None = None
) -> dict[str, Any]:
    """The stream job's ``StreamJobConfig`` JSON; the DSN is left out and read from RESTLAKE_PG_DSN.

    The checkpoint is per source *object* (``<checkpoints>/<name>/<uid>``): a source deleted and
    created again gets new topics (the operator deletes a source's topics with it), and the old
    checkpoint's offsets would point past their end, which stops the query (failOnDataLoss). The
    new checkpoint reads the new topic from the start; bronze and Postgres stay exact because
    both sinks are idempotent. Seen on kind.
    """
    checkpoint = source.checkpoint_path(settings.lake_root) + (f"/{uid}" if uid else "")
    return StreamJobConfig.for_source(
        source,
        kafka_bootstrap=settings.kafka_bootstrap,
        topic=source.topic(settings.topic_prefix),
        lake_root=settings.lake_root,
        checkpoint_path=checkpoint,
        # Probes, the status timer's Lag figure and Prometheus all read the driver's ops port.
        metrics_port=settings.stream_metrics_port,
        metrics_address="0.0.0.0",
    ).job_file()


def executor_conf(source: IngestionSource, settings: OperatorSettings) -> dict[str, str]:
    """The stream job's share of the standalone cluster; uncapped, one job would take every core."""
    declared = source.spec.resources.executors if source.spec.resources else None
    cores = (declared.cores if declared else None) or settings.executor_cores
    per_executor = (declared.cores_per_executor if declared else None) or min(
        settings.executor_cores_per_executor, cores
    )
    memory = (declared.memory if declared else None) or settings.executor_memory
    return {
        "spark.cores.max": str(cores),
        "spark.executor.cores": str(per_executor),
        "spark.executor.memory": memory,
    }


def config_map(source: IngestionSource, owner: Owner, settings: OperatorSettings) -> dict[str, Any]:
    """ConfigMap ``<name>-config``: ``source.yaml`` for the fetcher, ``stream.json`` for the driver."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(child_name(owner.name, "config"), owner, "config"),
        "data": {
            SOURCE_FILE: yaml.safe_dump(source_document(source), sort_keys=False),
            STREAM_FILE: json.dumps(stream_job_config(source, settings, owner.uid), indent=2, sort_keys=True)
            + "\n",
        },
    }


def content_hash(text: str) -> str:
    """Short sha256 of a config file; a pod template annotation, so a change rolls the Deployment."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------
# Pods
# ---------------------------------------------------------------------------------------------------


# Secrets of the spec no operator-rendered pod uses: the Snowflake sink's credentials are for
# `restlake snowflake sync` (a Prefect flow or the CLI), and the fetcher, which sends what it holds
# to the URLs of the spec, must not carry a warehouse's key.
_NOT_FOR_PODS = ("spec.sinks.snowflake.",)


def secret_refs(source: IngestionSource) -> list[SecretRef]:
    """Every Secret key the spec refers to that a pod needs, in a stable order, without duplicates.

    The same walk as the label check (``credentials.secret_fields``): a Secret that becomes an env
    var is always one the check saw (the check also covers those under ``_NOT_FOR_PODS``).
    """
    found = [
        ref for field, ref in credentials.secret_fields(source.spec) if not field.startswith(_NOT_FOR_PODS)
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


def _declared_resources(source: IngestionSource, component: str) -> ContainerResources | None:
    declared = source.spec.resources
    if declared is None:
        return None
    return declared.fetcher if component == FETCHER else declared.driver


def _resources(chosen: ContainerResources | None, component: str) -> dict[str, Any]:
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
        *_lineage_env(settings),
    ]


def _spark_auth_env(settings: OperatorSettings) -> list[dict[str, Any]]:
    """The cluster's shared secret, for the driver only: batch pods run Spark in local mode."""
    if settings.spark_auth_secret is None:
        return []
    ref = {"name": settings.spark_auth_secret, "key": settings.spark_auth_secret_key}
    return [{"name": "RESTLAKE_SPARK_AUTH_SECRET", "valueFrom": {"secretKeyRef": ref}}]


def _lineage_env(settings: OperatorSettings) -> list[dict[str, Any]]:
    if settings.lineage_transport == "none":
        return []
    env: list[dict[str, Any]] = [
        {"name": "RESTLAKE_LINEAGE_TRANSPORT", "value": settings.lineage_transport},
        {"name": "RESTLAKE_LINEAGE_NAMESPACE", "value": settings.lineage_namespace},
    ]
    if settings.lineage_url:
        env.append({"name": "RESTLAKE_LINEAGE_URL", "value": settings.lineage_url})
    if settings.lineage_api_key_secret:
        # By reference: the token is in no rendered object, only in the Secret.
        ref = {"name": settings.lineage_api_key_secret, "key": settings.lineage_api_key_key}
        env.append({"name": "RESTLAKE_LINEAGE_API_KEY", "valueFrom": {"secretKeyRef": ref}})
    return env


def _volumes(source: str, items: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "name": "config",
            "configMap": {
                "name": child_name(source, "config"),
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


def _pod_spec(
    settings: OperatorSettings,
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
    *,
    service_account: str | None = None,
    api_access: bool = False,
) -> dict:
    """A pod spec; ``service_account`` is the per-source default when the installation names none.

    Only pods that report to the API server (``api_access``: backfill and quality) get a token.
    """
    pod: dict[str, Any] = {
        "securityContext": _pod_security(),
        "containers": [container],
        "volumes": volumes,
        "automountServiceAccountToken": api_access,
    }
    if service_account:
        pod["serviceAccountName"] = service_account
    return pod


def runtime_service_account(owner: Owner) -> dict[str, Any]:
    """ServiceAccount ``<name>-runtime`` of the driver pods: no RBAC, no token mounted.

    Not the namespace's ``default``: that one may carry rights granted for something else, and a
    per-source account is what workload identity (IRSA, GKE) binds lake credentials to.
    """
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(child_name(owner.name, RUNTIME), owner, RUNTIME),
        "automountServiceAccountToken": False,
    }


def _runtime_account(owner: Owner, settings: OperatorSettings) -> str:
    return settings.service_account or child_name(owner.name, RUNTIME)


def fetcher_service_account(owner: Owner) -> dict[str, Any]:
    """ServiceAccount ``<name>-fetcher``: the fetcher calls no Kubernetes API and writes no lake, so
    its account has no token, no RBAC and nothing a workload-identity binding could attach to."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(child_name(owner.name, FETCHER), owner, FETCHER),
        "automountServiceAccountToken": False,
    }


def _scrape_annotations(port: int) -> dict[str, str]:
    # The prometheus.io/* convention: read by Prometheus' kubernetes_sd relabelling where no
    # Prometheus Operator (ServiceMonitor) is installed.
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}


def _env_from(settings: OperatorSettings) -> list[dict[str, Any]]:
    return [{"secretRef": {"name": settings.lake_secret}}] if settings.lake_secret else []


def fetcher_deployment(
    source: IngestionSource,
    owner: Owner,
    settings: OperatorSettings,
    *,
    paused: bool,
    credentials_allowed: bool = True,
) -> dict[str, Any]:
    """Deployment ``<name>-fetcher``: one stateless poller (its state lives in Postgres).

    Without ``credentials_allowed`` (a referenced Secret is missing or not labelled for restlake)
    it has zero replicas and no reference to any Secret of the spec, so no pod can read one. It gets
    the Postgres DSN (its fetch state) but not the lake's keys: it writes only to Kafka.
    """
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
        "env": [
            *_common_env(settings),
            {"name": "HOME", "value": "/tmp"},
            # The fetcher serves its ops port on loopback by default; the kubelet probes the pod IP.
            {"name": "RESTLAKE_FETCHER_OPS_HOST", "value": "0.0.0.0"},
            *(_secret_env(source) if credentials_allowed else []),
        ],
        "livenessProbe": {**probe, "httpGet": {"path": "/healthz", "port": "http"}},
        "readinessProbe": {**probe, "httpGet": {"path": "/readyz", "port": "http"}},
        "resources": _resources(_declared_resources(source, FETCHER), FETCHER),
        "securityContext": _container_security(),
        "volumeMounts": _mounts(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(child_name(owner.name, FETCHER), owner, FETCHER),
        "spec": {
            "replicas": 0 if paused or not credentials_allowed else 1,
            "selector": {"matchLabels": selector_labels(owner.name, FETCHER)},
            "template": {
                "metadata": {
                    "labels": labels(owner.name, FETCHER),
                    "annotations": {CONFIG_HASH: content_hash(text), **_scrape_annotations(port)},
                },
                "spec": _pod_spec(
                    settings,
                    container,
                    _volumes(owner.name, [SOURCE_FILE]),
                    service_account=child_name(owner.name, FETCHER),
                ),
            },
        },
    }


def _ops_service(owner: Owner, component: str, port_name: str, port: int) -> dict[str, Any]:
    """Service ``<name>-<component>`` in front of a component's ops port (named ``port_name``)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(child_name(owner.name, component), owner, component),
        "spec": {
            "selector": selector_labels(owner.name, component),
            "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}],
        },
    }


def fetcher_service(owner: Owner, settings: OperatorSettings) -> dict[str, Any]:
    """Service ``<name>-fetcher``: what the ServiceMonitor and the operator's status timer scrape."""
    return _ops_service(owner, FETCHER, "http", settings.http_port)


def stream_service(owner: Owner, settings: OperatorSettings) -> dict[str, Any]:
    """Service ``<name>-stream``: the driver's ops port, for the Lag figure and Prometheus."""
    return _ops_service(owner, STREAM, METRICS_PORT_NAME, settings.stream_metrics_port)


def stream_deployment(
    source: IngestionSource, owner: Owner, settings: OperatorSettings, *, paused: bool
) -> dict[str, Any]:
    """Deployment ``<name>-stream``: the Spark driver, client mode against the standalone master.

    One replica and ``Recreate``: two drivers on one checkpoint would fight over it, so the old pod
    must be gone before the new one starts.
    """
    text = config_map(source, owner, settings)["data"][STREAM_FILE]
    port = settings.stream_metrics_port
    conf = [
        arg for key, value in executor_conf(source, settings).items() for arg in ("--conf", f"{key}={value}")
    ]
    probe = {"periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3}
    container: dict[str, Any] = {
        "name": "driver",
        "image": settings.spark_image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": [
            "python3",
            "-m",
            "restlake.jobs.spark.stream",
            "--config",
            f"{CONFIG_DIR}/{STREAM_FILE}",
            "--master",
            settings.spark_master_url,
            *conf,
        ],
        "ports": [
            {"name": "spark-ui", "containerPort": 4040, "protocol": "TCP"},
            {"name": METRICS_PORT_NAME, "containerPort": port, "protocol": "TCP"},
        ],
        # Ready only while the query runs with executors: a job the cluster has no cores for waits
        # forever for one, and must not look healthy. The JVM and the first batch take a while, so
        # the startup probe allows five minutes before liveness counts.
        "startupProbe": {
            **probe,
            "httpGet": {"path": "/healthz", "port": METRICS_PORT_NAME},
            "failureThreshold": 30,
        },
        "livenessProbe": {**probe, "httpGet": {"path": "/healthz", "port": METRICS_PORT_NAME}},
        "readinessProbe": {**probe, "httpGet": {"path": "/readyz", "port": METRICS_PORT_NAME}},
        "env": [
            *_common_env(settings),
            {"name": "HOME", "value": "/tmp"},
            # Executors connect back to the driver (client mode): bind to and advertise the pod IP,
            # not the pod's hostname, which nothing outside the pod resolves (spark.driver.host
            # defaults to SPARK_LOCAL_HOSTNAME, else that hostname).
            {"name": "SPARK_LOCAL_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "SPARK_LOCAL_HOSTNAME", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            *_spark_auth_env(settings),
        ],
        "envFrom": _env_from(settings),
        "resources": _resources(_declared_resources(source, STREAM), STREAM),
        "securityContext": _container_security(),
        "volumeMounts": _mounts(),
    }
    if not container["envFrom"]:
        del container["envFrom"]
    pod = _pod_spec(
        settings,
        container,
        _volumes(owner.name, [STREAM_FILE]),
        service_account=_runtime_account(owner, settings),
    )
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
                    # The executor conf is in the args, so a change to it rolls the driver too.
                    "annotations": {CONFIG_HASH: content_hash(text), **_scrape_annotations(port)},
                },
                "spec": pod,
            },
        },
    }


# ---------------------------------------------------------------------------------------------------
# Batch: the Backfill Job and the quality CronJob
# ---------------------------------------------------------------------------------------------------


def _namespace_env(variable: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}


def _batch_pod(
    settings: OperatorSettings,
    *,
    container: str,
    args: list[str],
    source: str,
    env: list[dict[str, Any]],
    resources: dict[str, Any],
    data_volume: tuple[dict[str, Any], str] | None = None,
) -> dict[str, Any]:
    """A run-to-completion pod with the driver's image, env, config mount and security contexts.

    ``data_volume`` (a volume and where to mount it) is state the job keeps between runs.

    The container's JSON summary goes to the termination log, and the log's tail stands in when
    the process dies before writing it, so the verdict is readable from the pod's status alone.
    """
    spec: dict[str, Any] = {
        "name": container,
        "image": settings.spark_image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": args,
        "env": [
            *_common_env(settings),
            {"name": "HOME", "value": "/tmp"},
            {"name": batch_pods.ENV_SOURCE_NAME, "value": source},
            _namespace_env(batch_pods.ENV_SOURCE_NAMESPACE),
            *env,
        ],
        "envFrom": _env_from(settings),
        "resources": resources,
        "securityContext": _container_security(),
        "volumeMounts": [
            *_mounts(),
            *([{"name": data_volume[0]["name"], "mountPath": data_volume[1]}] if data_volume else []),
        ],
        "terminationMessagePath": batch_pods.TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if not spec["envFrom"]:
        del spec["envFrom"]
    volumes = [*_volumes(source, [SOURCE_FILE]), *([data_volume[0]] if data_volume else [])]
    pod = _pod_spec(
        settings,
        spec,
        volumes,
        service_account=settings.job_service_account or settings.service_account,
        api_access=True,
    )
    pod["restartPolicy"] = "Never"
    return pod


def backfill_job_name(backfill: str) -> str:
    return child_name(backfill, BACKFILL)


def backfill_args(backfill: Backfill, uid: str) -> list[str]:
    """`restlake backfill` as the Job runs it; ``--run-id`` is the Backfill's uid, so a retried pod
    resumes the same ledger run instead of starting a second one."""
    return [
        "restlake",
        "backfill",
        "-f",
        f"{CONFIG_DIR}/{SOURCE_FILE}",
        "--source",
        backfill.spec.source,
        *backfill.spec.cli_args(),
        "--run-id",
        uid,
    ]


def backfill_job(backfill: Backfill, owner: Owner, settings: OperatorSettings) -> dict[str, Any]:
    """Job ``<backfill>-backfill``, owned by the Backfill, mounting its source's ConfigMap."""
    source = backfill.spec.source
    job_labels = {**labels(source, BACKFILL), BACKFILL_LABEL: owner.name}
    pod = _batch_pod(
        settings,
        container=BACKFILL,
        args=backfill_args(backfill, owner.uid),
        source=source,
        env=[
            {"name": batch_pods.ENV_BACKFILL_NAME, "value": owner.name},
            _namespace_env(batch_pods.ENV_BACKFILL_NAMESPACE),
        ],
        resources=_resources(backfill.spec.resources, BACKFILL),
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": backfill_job_name(owner.name),
            "namespace": owner.namespace,
            "labels": job_labels,
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "backoffLimit": settings.backfill_backoff_limit,
            "ttlSecondsAfterFinished": settings.backfill_ttl_seconds,
            "template": {"metadata": {"labels": job_labels}, "spec": pod},
        },
    }


def quality_schedule(source: IngestionSource) -> str | None:
    quality = source.spec.quality
    return quality.bronze.schedule if quality is not None else None


def quality_cron_job(
    source: IngestionSource, owner: Owner, settings: OperatorSettings, *, paused: bool
) -> dict[str, Any] | None:
    """CronJob ``<name>-quality`` running the bronze checkpoint, or None without a schedule.

    ``Forbid``: two checkpoints over the same rows would both move the since-last-run mark. No
    retries: a run that found failing expectations fails the same way again, and the next
    scheduled run is the retry.
    """
    schedule = quality_schedule(source)
    if schedule is None:
        return None
    # The since-last-run watermark must outlive the pod; GX keeps results as files, not in the lake.
    volume: dict[str, Any] = (
        {"name": QUALITY, "persistentVolumeClaim": {"claimName": settings.quality_claim}}
        if settings.quality_claim
        else {"name": QUALITY, "emptyDir": {}}
    )
    pod = _batch_pod(
        settings,
        container=QUALITY,
        args=["restlake", "quality", "run", "--source", owner.name, "-f", f"{CONFIG_DIR}/{SOURCE_FILE}"],
        source=owner.name,
        env=[
            {"name": "RESTLAKE_QUALITY_DIR", "value": QUALITY_DIR},
            *(
                [{"name": "RESTLAKE_QUALITY_PUSHGATEWAY_URL", "value": settings.quality_pushgateway_url}]
                if settings.quality_pushgateway_url
                else []
            ),
        ],
        resources=_resources(None, QUALITY),
        data_volume=(volume, QUALITY_DIR),
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _metadata(child_name(owner.name, QUALITY), owner, QUALITY),
        "spec": {
            "schedule": schedule,
            "suspend": paused,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": settings.quality_history_limit,
            "failedJobsHistoryLimit": settings.quality_history_limit,
            "jobTemplate": {
                "metadata": {"labels": labels(owner.name, QUALITY)},
                "spec": {
                    "backoffLimit": 0,
                    "template": {"metadata": {"labels": labels(owner.name, QUALITY)}, "spec": pod},
                },
            },
        },
    }


# ---------------------------------------------------------------------------------------------------
# Optional integrations
# ---------------------------------------------------------------------------------------------------


TOPIC = "topic"
DLQ_TOPIC = "dlq-topic"


def topics(source: IngestionSource, settings: OperatorSettings) -> dict[str, str]:
    """The source's Kafka topics by role: its records and its dead letters."""
    return {
        TOPIC: source.topic(settings.topic_prefix),
        DLQ_TOPIC: source.dead_letter_topic(settings.topic_prefix),
    }


def kafka_topics(
    source: IngestionSource, owner: Owner, settings: OperatorSettings, *, api_version: str = STRIMZI_TOPIC_API
) -> list[dict[str, Any]]:
    """Strimzi ``KafkaTopic``s named like the source (``<name>-topic``, ``<name>-dlq-topic``).

    ``topicName`` carries the real topic. The dead-letter topic gets one partition: it is read by
    people, in order, and a bad page is rare.
    """
    partitions = (source.spec.kafka.partitions if source.spec.kafka else None) or settings.default_partitions
    found = []
    for role, topic in topics(source, settings).items():
        meta = _metadata(child_name(owner.name, role), owner, role)
        meta["labels"]["strimzi.io/cluster"] = settings.kafka_cluster
        found.append(
            {
                "apiVersion": api_version,
                "kind": "KafkaTopic",
                "metadata": meta,
                "spec": {
                    "topicName": topic,
                    "partitions": partitions if role == TOPIC else 1,
                    "replicas": settings.topic_replicas,
                },
            }
        )
    return found


def service_monitors(owner: Owner, settings: OperatorSettings) -> list[dict[str, Any]]:
    """Prometheus Operator ``ServiceMonitor``s for the fetcher's and the driver's /metrics."""
    return [
        {
            "apiVersion": SERVICE_MONITOR_API,
            "kind": "ServiceMonitor",
            "metadata": _metadata(child_name(owner.name, component), owner, component),
            "spec": {
                "selector": {"matchLabels": selector_labels(owner.name, component)},
                "endpoints": [{"port": port, "path": "/metrics", "interval": "30s"}],
            },
        }
        for component, port in ((FETCHER, "http"), (STREAM, METRICS_PORT_NAME))
    ]


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _host_ports(servers: str) -> list[int]:
    """The ports of a ``host:port,host:port`` bootstrap list."""
    return sorted({int(entry.rsplit(":", 1)[1]) for entry in servers.split(",") if ":" in entry})


def _tcp(ports: list[int]) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def api_ports(source: IngestionSource) -> list[int]:
    """Ports the fetcher connects to for the API: the request URL's and the OAuth token URL's."""
    urls = [source.spec.request.url]
    token_url = getattr(source.spec.request.auth, "token_url", None)
    if token_url:
        urls.append(token_url)
    return sorted({_port(url) for url in urls})


def egress_policy(source: IngestionSource, owner: Owner, settings: OperatorSettings) -> dict[str, Any]:
    """NetworkPolicy ``<name>-fetcher``: the fetcher pods may reach DNS, Kafka and the API, nothing else.

    NetworkPolicy matches addresses, not host names: the API is ``spec.egress.cidrs`` on the API's
    ports, or, without them, those ports anywhere outside ``network_policy_except_cidrs``. DNS is
    allowed on port 53 to any address, since clusters label their resolvers differently. Postgres
    (fetch state) and an HTTP lineage receiver are reached at addresses the installation knows,
    so their ports are allowed too.
    """
    declared = source.spec.egress.cidrs if source.spec.egress else []
    api_peers: list[dict[str, Any]] = (
        [{"ipBlock": {"cidr": cidr}} for cidr in declared]
        if declared
        else [
            {
                "ipBlock": {
                    "cidr": "0.0.0.0/0",
                    **(
                        {"except": list(settings.network_policy_except_cidrs)}
                        if settings.network_policy_except_cidrs
                        else {}
                    ),
                }
            }
        ]
    )
    kafka: dict[str, Any] = {"ports": _tcp(_host_ports(settings.kafka_bootstrap))}
    if settings.network_policy_kafka_peers:
        kafka["to"] = [dict(peer) for peer in settings.network_policy_kafka_peers]
    rules: list[dict[str, Any]] = [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        kafka,
        {"to": api_peers, "ports": _tcp(api_ports(source))},
        # The fetch state store: the DSN is a Secret the operator does not read, so the port is
        # Postgres' conventional one.
        {"ports": _tcp([settings.network_policy_postgres_port])},
    ]
    if settings.lineage_transport == "http" and settings.lineage_url:
        rules.append({"ports": _tcp([_port(settings.lineage_url)])})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(child_name(owner.name, FETCHER), owner, FETCHER),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(owner.name, FETCHER)},
            "policyTypes": ["Egress"],
            "egress": rules,
        },
    }


def render_all(
    source: IngestionSource,
    owner: Owner,
    settings: OperatorSettings,
    *,
    paused: bool,
    strimzi: str | None,
    prometheus: bool,
    credentials_allowed: bool = True,
) -> list[dict[str, Any]]:
    """Every object the source needs, in apply order (config before the pods that mount it).

    ``strimzi`` is the KafkaTopic apiVersion the cluster serves, or None without Strimzi.
    """
    objects = [config_map(source, owner, settings), fetcher_service_account(owner)]
    if not settings.service_account:
        objects.append(runtime_service_account(owner))
    if settings.network_policy:
        # Before the Deployment, so no fetcher pod starts unconfined.
        objects.append(egress_policy(source, owner, settings))
    objects += [
        fetcher_service(owner, settings),
        stream_service(owner, settings),
        fetcher_deployment(source, owner, settings, paused=paused, credentials_allowed=credentials_allowed),
        stream_deployment(source, owner, settings, paused=paused),
    ]
    quality = quality_cron_job(source, owner, settings, paused=paused)
    if quality is not None:
        objects.append(quality)
    if strimzi:
        objects += kafka_topics(source, owner, settings, api_version=strimzi)
    if prometheus:
        objects += service_monitors(owner, settings)
    return objects
