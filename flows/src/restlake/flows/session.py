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
    """A Spark session with the jars of RESTLAKE_SPARK_JARS (and s3a settings when the lake is on S3).

    A flow run is a process of its own (Prefect starts it), so its jars come from its environment:
    ``restlake flows serve`` sets the local stack's there, an image bakes them in and sets none.
    """
    from restlake.jobs.spark.session import build_spark
    from restlake.jobs.spark.settings import SparkSettings, classpath_jars
    from restlake.settings import S3Settings

    settings = SparkSettings()
    extra = S3Settings().spark_conf() if lake_root.startswith("s3a://") else None
    return build_spark(
        f"restlake-{job}-{source.name}",
        jars=classpath_jars(settings.jars),
        master=master,
        extra_conf=extra,
        settings=settings,
    )
