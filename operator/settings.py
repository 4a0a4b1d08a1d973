"""What the operator needs to know about its installation, read from ``RESTLAKE_OPERATOR_*`` variables.

The Helm chart sets these on the operator Deployment; every rendered object derives from a source's
spec plus these values, so two installs in one cluster differ only here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

FIELD_MANAGER = "restlake-operator"


class OperatorSettings(BaseSettings):
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
    fetcher_image: str = Field("restlake/fetcher:0.1.0", description="Image of the fetcher container.")
    spark_image: str = Field("restlake/spark-job:0.1.0", description="Image of the Spark driver container.")
    image_pull_policy: str = Field("IfNotPresent", description="imagePullPolicy of rendered containers.")
    service_account: str | None = Field(
        None, description="ServiceAccount of the fetcher and driver pods; absent uses the namespace default."
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
    topic_admin: bool = Field(
        True,
        description="Without Strimzi, create the topic through the Kafka admin API at kafka_bootstrap "
        "(the operator must reach the brokers).",
    )

    @property
    def spark_master_url(self) -> str:
        return f"spark://{self.release}-spark-master:{self.spark_master_port}"
