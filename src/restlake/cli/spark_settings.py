"""The Spark settings a command hands to the session it builds in this process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from restlake.cli import progress

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from restlake.jobs.spark.settings import SparkSettings


def command_spark_settings(*, quiet: bool = False) -> SparkSettings:
    """RESTLAKE_SPARK_*, with the JVM at ERROR under ``--quiet`` (or ``quiet``) unless
    RESTLAKE_SPARK_LOG_LEVEL chose a level: Spark's warnings would bury the command's own output."""
    from restlake.jobs.spark.settings import SparkSettings

    settings = SparkSettings()
    return settings.quieter() if quiet or progress.MODE.quiet else settings


def lake_spark(job: str, source_name: str, *, storage: str, master: str) -> SparkSession:
    """The session a one-shot lake command (maintenance, quality, snowflake sync) runs on: the local
    stack's jars, s3a settings when ``storage`` (the lake root or table it reads) is on S3, and the
    command's Spark settings."""
    from restlake.jobs.spark.session import build_spark
    from restlake.settings import S3Settings, StackSettings
    from restlake.stack.jars import spark_jars

    extra = S3Settings().spark_conf() if storage.startswith("s3a://") else None
    return build_spark(
        f"restlake-{job}-{source_name}",
        jars=spark_jars(StackSettings().state_dir),
        master=master,
        extra_conf=extra,
        settings=command_spark_settings(),
    )
