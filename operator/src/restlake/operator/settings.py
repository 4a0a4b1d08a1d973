"""What the operator needs to know about its installation, read from ``RESTLAKE_OPERATOR_*`` variables.

The Helm chart sets these on the operator Deployment; every rendered object derives from a source's
spec plus these values, so two installs in one cluster differ only here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from restlake import __version__
from restlake.settings import RestlakeSettings

FIELD_MANAGER = "restlake-operator"
# The images docker/Dockerfile builds (targets fetcher and spark), tagged with the package version
# so an operator never runs pods of another release by default.
DEFAULT_FETCHER_IMAGE = f"restlake/fetcher:{__version__}"
DEFAULT_SPARK_IMAGE = f"restlake/spark:{__version__}"


class OperatorSettings(RestlakeSettings):
    """Installation-wide settings of the operator and of the pods it renders."""

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_OPERATOR_", frozen=True)

    release: str = Field(
        "restlake",
        description="Helm release name; the Spark master Service is <release>-spark-master.",
    )
    namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces to watch (JSON list in the env var); empty watches the whole cluster.",
    )
    peering: str = Field(
        "restlake",
        description="kopf peering object shared by the operator's replicas, so only one reconciles.",
    )
    peering_mandatory: bool = Field(
        False,
        description="Refuse to start without the kopf peering CRDs; the chart sets it when it ships them, "
        "so a second replica can never run unpaired.",
    )
    priority: int | None = Field(
        None,
        ge=0,
        description="kopf peering priority; the highest live replica reconciles, the others wait. "
        "Absent draws a random one at start: equal priorities make kopf freeze every replica.",
    )
    release_namespace: str | None = Field(
        None,
        description="Namespace of the Helm release (the chart sets it from the downward API): the Spark "
        "master Service lives there, so drivers in other namespaces get its qualified name.",
    )
    fetcher_image: str = Field(DEFAULT_FETCHER_IMAGE, description="Image of the fetcher container.")
    spark_image: str = Field(
        DEFAULT_SPARK_IMAGE, description="Image of the Spark driver, Backfill and quality containers."
    )
    image_pull_policy: str = Field("IfNotPresent", description="imagePullPolicy of rendered containers.")
    service_account: str | None = Field(
        None,
        description="ServiceAccount of the Spark driver pods (the ones that write the lake); absent renders "
        "<source>-runtime per source. Fetchers always run as their own <source>-fetcher account.",
    )
    job_service_account: str | None = Field(
        None,
        description="ServiceAccount of the Backfill Job and quality CronJob pods: allowed to patch "
        "backfills/status and ingestionsources/status (their progress and QualityPassing reporters); "
        "absent uses service_account.",
    )
    backfill_backoff_limit: int = Field(
        2,
        ge=0,
        description="Retries of a failed backfill pod; a retry resumes the same ledger run (--run-id), "
        "so few are needed and more would only repeat a deterministic failure.",
    )
    backfill_ttl_seconds: int = Field(
        86400,
        ge=0,
        description="Seconds a finished backfill Job (and its pod's logs) is kept; the Backfill keeps "
        "the summary after the Job is gone.",
    )
    quality_claim: str | None = Field(
        None,
        description="PersistentVolumeClaim holding the quality runs' watermarks, results and Data Docs "
        "(RESTLAKE_QUALITY_DIR in the CronJob pods); absent uses an emptyDir, so every run forgets "
        "the last one and validates the source's whole bronze partition.",
    )
    quality_pushgateway_url: str | None = Field(
        None,
        description="Prometheus Pushgateway the quality CronJob pods push their results to "
        "(RESTLAKE_QUALITY_PUSHGATEWAY_URL); absent means the results reach only status and files.",
    )
    quality_history_limit: int = Field(
        3, ge=0, description="Finished quality Jobs kept per source, successful and failed each."
    )
    fetcher_command: list[str] = Field(
        default_factory=lambda: ["restlake", "fetcher", "run"],
        description="Fetcher entry point; `-f <source file> --ops-port <port> --no-create-topics "
        "--json-logs` are appended (the operator owns topics).",
    )
    http_port: int = Field(
        9108, ge=1, le=65535, description="Fetcher port serving /healthz, /readyz and /metrics."
    )
    spark_master_port: int = Field(7077, ge=1, le=65535, description="Port of the standalone master.")
    spark_auth_secret: str | None = Field(
        None,
        description="Secret holding the standalone cluster's shared spark.authenticate secret (the chart "
        "generates <release>-spark-auth); drivers get it by reference as RESTLAKE_SPARK_AUTH_SECRET. "
        "It must exist in every namespace whose sources run drivers. Absent: the cluster is open.",
    )
    spark_auth_secret_key: str = Field("secret", description="Key of the secret in spark_auth_secret.")
    stream_metrics_port: int = Field(
        9109,
        ge=1,
        le=65535,
        description="Driver port serving /metrics, /healthz and /readyz (probes, Prometheus, Lag column).",
    )
    executor_cores: int = Field(
        1, ge=1, description="spark.cores.max of a stream job when spec.resources.executors.cores is absent."
    )
    executor_cores_per_executor: int = Field(
        1, ge=1, description="spark.executor.cores when spec.resources.executors.coresPerExecutor is absent."
    )
    executor_memory: str = Field(
        "512m", description="spark.executor.memory when spec.resources.executors.memory is absent."
    )
    kafka_bootstrap: str = Field(
        "restlake-kafka-kafka-bootstrap:9092", description="Bootstrap servers as seen from the pods."
    )
    kafka_cluster: str = Field(
        "restlake-kafka", description="Strimzi Kafka cluster name (the strimzi.io/cluster label)."
    )
    topic_prefix: str = Field("restlake.", description="Topic of a source is <prefix><name>.")
    topic_replicas: int = Field(
        1, ge=1, description="Replication factor of created topics; 1 suits a one-broker kind cluster."
    )
    default_partitions: int = Field(3, ge=1, description="Partitions when spec.kafka.partitions is absent.")
    lake_root: str = Field("s3a://restlake/lake", description="Lake root URI as seen from the pods.")
    lake_secret: str | None = Field(
        None,
        description="Secret loaded with envFrom into fetcher and driver (e.g. AWS_ACCESS_KEY_ID for s3a).",
    )
    pg_dsn_secret: str = Field(
        "restlake-postgres", description="Secret holding the Postgres DSN the stream job writes with."
    )
    pg_dsn_key: str = Field("dsn", description="Key of the DSN in pg_dsn_secret.")
    lineage_transport: Literal["none", "console", "http"] = Field(
        "none", description="OpenLineage transport of fetchers, drivers, jobs (RESTLAKE_LINEAGE_TRANSPORT)."
    )
    lineage_url: str | None = Field(None, description="OpenLineage HTTP receiver (Marquez) base URL.")
    lineage_namespace: str = Field("restlake", min_length=1, description="OpenLineage job namespace.")
    lineage_api_key_secret: str | None = Field(
        None, description="Secret holding the receiver's bearer token; the pods get it by reference only."
    )
    lineage_api_key_key: str = Field("api-key", description="Key of the token in lineage_api_key_secret.")
    status_interval: float = Field(
        30.0, gt=0, description="Seconds between status refreshes (Deployment status, metrics)."
    )
    metrics_timeout: float = Field(
        2.0, gt=0, description="Seconds to wait for a fetcher's /metrics; a slow pod must not stall status."
    )
    metrics_url: str = Field(
        "http://{service}.{namespace}.svc:{port}/metrics",
        description="Where the status timer reads a fetcher's metrics; {service}, {namespace} and {port} "
        "are filled in. Empty disables scraping.",
    )
    network_policy: bool = Field(
        False,
        description="Render an egress NetworkPolicy per source for its fetcher pods: DNS, Kafka and the "
        "API's ports (to spec.egress.cidrs) only.",
    )
    network_policy_kafka_peers: list[dict[str, Any]] = Field(
        default_factory=list,
        description="NetworkPolicy peers (`to` entries) of the Kafka brokers, JSON in the env var; empty "
        "allows the bootstrap servers' ports on any address.",
    )
    network_policy_except_cidrs: list[str] = Field(
        default_factory=lambda: ["169.254.0.0/16"],
        description="IPv4 ranges the fetcher may never reach when a source gives no spec.egress.cidrs "
        "(default: link-local, where cloud metadata endpoints hand out node credentials).",
    )
    network_policy_postgres_port: int = Field(
        5432, ge=1, le=65535, description="Port of Postgres (the fetch state) in the egress NetworkPolicy."
    )
    topic_admin: bool = Field(
        True,
        description="Without Strimzi, create the topic through the Kafka admin API at kafka_bootstrap "
        "(the operator must reach the brokers).",
    )

    @property
    def topic_ledger(self) -> str:
        """ConfigMap (in release_namespace) listing the topics the operator created per source."""
        return f"{self.release}-topics"

    @property
    def spark_master_url(self) -> str:
        """The master as drivers see it: qualified with the release namespace when that is known, since
        a driver in another namespace (watchAllNamespaces) cannot resolve the bare Service name."""
        host = f"{self.release}-spark-master"
        if self.release_namespace:
            host += f".{self.release_namespace}.svc"
        return f"spark://{host}:{self.spark_master_port}"
