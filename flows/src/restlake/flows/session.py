"""What every flow starts from: the source out of its spec file, and a Spark session for it."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from restlake.contracts.spec import IngestionSource, load_sources
from restlake.errors import ConfigError


def load_named_source(file: str | Path, source: str) -> IngestionSource:
    """The source called ``source`` in ``file``; the error lists the names the file holds."""
    sources = load_sources(file)
    for found in sources:
        if source in (found.name, found.identity):
            return found
    names = ", ".join(s.name for s in sources)
    raise ConfigError(f"no source {source!r} in {file}; it has: {names}")


def spark_for(job: str, source: IngestionSource, *, lake_root: str, master: str) -> SparkSession:
    """A Spark session with the stack's jars (and s3a settings when the lake is on S3)."""
    from restlake.jobs.spark.session import build_spark
    from restlake.settings import S3Settings, StackSettings
    from restlake.stack.jars import spark_jars

    extra = S3Settings().spark_conf() if lake_root.startswith("s3a://") else None
    return build_spark(
        f"restlake-{job}-{source.name}",
        jars=spark_jars(StackSettings().state_dir),
        master=master,
        extra_conf=extra,
    )
