"""Typed settings, one model per concern, read from ``RESTLAKE_*`` environment variables.

``restlake stack env`` prints exactly the variables these models read, so
``eval "$(restlake stack env)"`` points every process at the local stack.

Credentials (the Postgres DSN, S3 keys, the lineage API key, the Pushgateway password) can also come
from files: ``<VARIABLE>_FILE=/path`` reads the value from that file, the convention of Docker and
Kubernetes secret mounts. A variable set directly wins over its ``_FILE``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from restlake.errors import ConfigError

# The broker of a local run (the local stack listens on loopback); every fallback uses this one.
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"


class _FileVariables(PydanticBaseSettingsSource):
    """Field values read from the file named by ``<env prefix><FIELD>_FILE`` (a mounted secret)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        prefix = str(self.config.get("env_prefix", ""))
        variable = f"{prefix}{field_name}_FILE".upper()
        path = os.environ.get(variable)
        if not path:
            return None, field_name, False
        try:
            # `kubectl create secret --from-file` and `echo x > file` both tend to leave a newline.
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n"), field_name, False
        except OSError as exc:
            # The path, never the content: the error names what to fix.
            raise ConfigError(f"{variable}={path}: cannot read the file ({exc.strerror})") from None

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is None:
                continue
            try:
                # A list or dict field holds JSON, as its environment variable does.
                found[key] = self.prepare_field_value(name, field, value, False)
            except ValueError as exc:
                variable = f"{self.config.get('env_prefix', '')}{name}_FILE".upper()
                raise ConfigError(f"{variable}: the file does not hold valid JSON ({exc})") from None
        return found


class RestlakeSettings(BaseSettings):
    """Base of every settings model: environment variables, then ``<VARIABLE>_FILE`` files."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = _FileVariables(settings_cls)
        return (init_settings, env_settings, files, dotenv_settings, file_secret_settings)


class LogSettings(RestlakeSettings):
    """How much a restlake command logs when neither --verbose nor --quiet is given."""

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_")

    log_level: str = Field("INFO", description="Python logging level name (RESTLAKE_LOG_LEVEL).")


class KafkaSettings(RestlakeSettings):
    """Where the broker is and how producers talk to it."""

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_KAFKA_")

    bootstrap: str = Field(
        DEFAULT_KAFKA_BOOTSTRAP,
        description="Comma-separated host:port list of brokers (RESTLAKE_KAFKA_BOOTSTRAP).",
    )
    topic_prefix: str = Field(
        "restlake.", description="Topic for a source is <prefix><source name>; one namespace per install."
    )
    partitions: int = Field(
        3,
        ge=1,
        description="Partitions for auto-provisioned topics (local runs only); 3 lets 1-3 cores share.",
    )


class PostgresSettings(RestlakeSettings):
    """The Postgres that holds raw.api_events, the batch ledger and fetch state."""

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_PG_")

    # SecretStr: a DSN may carry a password, and must never reach a log line or a repr.
    dsn: SecretStr = Field(
        SecretStr("postgresql://postgres@127.0.0.1:5432/postgres"),
        description="libpq connection URI (RESTLAKE_PG_DSN).",
    )


class LakeSettings(RestlakeSettings):
    """Where bronze, quarantine and checkpoints live."""

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_LAKE_")

    root: str = Field(
        ".restlake/lake",
        description="Local path or s3a:// URI under which every table lives (RESTLAKE_LAKE_ROOT).",
    )

    def table_uri(self, *parts: str) -> str:
        root = self.root.rstrip("/")
        if "://" in root:
            return "/".join([root, *parts])
        return str(Path(root).absolute().joinpath(*parts))


class ExternalEndpoints(RestlakeSettings):
    """Services named in the environment instead of the local stack's; each None when unset.

    The same variables as ``KafkaSettings.bootstrap``, ``PostgresSettings.dsn`` and
    ``LakeSettings.root``, without their loopback defaults: whether one is set decides whether a
    local run uses it or starts the local stack.
    """

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_")

    kafka_bootstrap: str | None = Field(None, description="RESTLAKE_KAFKA_BOOTSTRAP.")
    # SecretStr: a DSN may carry a password.
    pg_dsn: SecretStr | None = Field(None, description="RESTLAKE_PG_DSN (or RESTLAKE_PG_DSN_FILE).")
    lake_root: str | None = Field(None, description="RESTLAKE_LAKE_ROOT.")

    def given(self) -> dict[str, str]:
        """Variable name -> value, for the endpoints set to a non-empty value."""
        values = {
            "RESTLAKE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "RESTLAKE_PG_DSN": self.pg_dsn.get_secret_value() if self.pg_dsn else None,
            "RESTLAKE_LAKE_ROOT": self.lake_root,
        }
        return {name: value for name, value in values.items() if value}


class PodIdentity(RestlakeSettings):
    """Which Backfill and source a batch pod works for: the operator sets these on the pods it
    renders (``restlake.contracts.batch_pods``); outside such a pod they are unset."""

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_")

    backfill_name: str | None = Field(None, description="RESTLAKE_BACKFILL_NAME.")
    backfill_namespace: str | None = Field(None, description="RESTLAKE_BACKFILL_NAMESPACE.")
    source_name: str | None = Field(None, description="RESTLAKE_SOURCE_NAME.")
    source_namespace: str | None = Field(None, description="RESTLAKE_SOURCE_NAMESPACE.")


class StackSettings(RestlakeSettings):
    """The local stack that `restlake stack up` and `restlake run` manage."""

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_")

    state_dir: Path = Field(
        Path(".restlake"),
        description="Project-local folder: service data, logs, pid files, cached jars (RESTLAKE_STATE_DIR).",
    )
    cache_home: Path | None = Field(
        None,
        validation_alias="XDG_CACHE_HOME",
        description="The user's cache folder (XDG_CACHE_HOME); unset or empty means ~/.cache.",
    )
    # Outside the checkout, like ~/.m2 and Go's build cache: binaries built from the Go module
    # proxy (kube-apiserver alone takes 6-20 min cold) are reused by every clone on the machine.
    tools_dir: Path = Field(
        default_factory=lambda data: (data["cache_home"] or Path.home() / ".cache") / "restlake" / "tools",
        description="Cache of tools built from source: k8s control plane, helm, tofu (RESTLAKE_TOOLS_DIR).",
    )
    java_home: Path | None = Field(
        None,
        validation_alias="JAVA_HOME",
        description="The Java installation the local Kafka runs on (JAVA_HOME, as pyspark reads it); "
        "unset means `java` on PATH.",
    )

    @field_validator("cache_home", "java_home", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `XDG_CACHE_HOME=` is unset by the XDG spec's reading, and was treated so before.
        return value or None


class S3Settings(RestlakeSettings):
    """The S3-compatible store (MinIO locally) that an ``s3a://`` lake root and checkpoints live on.

    Each setting also reads the AWS SDK's own variable when the ``RESTLAKE_S3_*`` one is unset, so a
    Secret written for any S3 tool (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``...) configures the lake
    too, instead of silently sending the local default key to AWS.
    """

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_S3_", populate_by_name=True)

    endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices("RESTLAKE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        description="http(s)://host:port of the S3 API (RESTLAKE_S3_ENDPOINT, else AWS_ENDPOINT_URL_S3 or "
        "AWS_ENDPOINT_URL); None means AWS itself, found from the region.",
    )
    # SecretStr: both are credentials; the local MinIO uses them as its root user and password.
    access_key: SecretStr = Field(
        SecretStr("restlake"),
        validation_alias=AliasChoices("RESTLAKE_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
        description="Access key id (RESTLAKE_S3_ACCESS_KEY, else AWS_ACCESS_KEY_ID); MinIO's root user.",
    )
    secret_key: SecretStr = Field(
        SecretStr("restlake-local-only"),
        validation_alias=AliasChoices("RESTLAKE_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
        description="Secret key (RESTLAKE_S3_SECRET_KEY, else AWS_SECRET_ACCESS_KEY); MinIO's root "
        "password (8+ characters).",
    )
    region: str = Field(
        "us-east-1",
        validation_alias=AliasChoices("RESTLAKE_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
        description="Signing region (RESTLAKE_S3_REGION, else AWS_REGION or AWS_DEFAULT_REGION); MinIO "
        "accepts its default, us-east-1.",
    )
    path_style_access: bool = Field(
        True,
        description="Address buckets as host/bucket rather than bucket.host: MinIO on loopback has no "
        "wildcard DNS for virtual-host style.",
    )

    def hadoop_conf(self) -> dict[str, str]:
        """``fs.s3a.*`` settings for a Hadoop configuration; values hold the credentials, never log them."""
        conf = {
            "fs.s3a.access.key": self.access_key.get_secret_value(),
            "fs.s3a.secret.key": self.secret_key.get_secret_value(),
            "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "fs.s3a.path.style.access": str(self.path_style_access).lower(),
            "fs.s3a.endpoint.region": self.region,
        }
        if self.endpoint:
            conf["fs.s3a.endpoint"] = self.endpoint
            conf["fs.s3a.connection.ssl.enabled"] = str(self.endpoint.startswith("https://")).lower()
        return conf

    def spark_conf(self) -> dict[str, str]:
        """The same as ``spark.hadoop.*`` SparkConf entries, for ``build_spark(extra_conf=...)``."""
        return {f"spark.hadoop.{key}": value for key, value in self.hadoop_conf().items()}
