"""The Spark settings a command hands to the session it builds in this process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from restlake.cli import progress

if TYPE_CHECKING:
    from restlake.jobs.spark.settings import SparkSettings


def command_spark_settings(*, quiet: bool = False) -> SparkSettings:
    """RESTLAKE_SPARK_*, with the JVM at ERROR under ``--quiet`` (or ``quiet``) unless
    RESTLAKE_SPARK_LOG_LEVEL chose a level: Spark's warnings would bury the command's own output."""
    from restlake.jobs.spark.settings import SparkSettings

    settings = SparkSettings()
    return settings.quieter() if quiet or progress.MODE.quiet else settings
