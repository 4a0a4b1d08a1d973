"""Settings of the Spark side (``RESTLAKE_SPARK_*``), read where a session or a job starts.

``restlake run`` and the other local commands build their Spark session in-process and pass a
``SparkSettings`` to ``build_spark``; a job started as its own process (the stream job's
``python -m``, a pod) reads the same variables from its environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from restlake.jobs.spark.driver_memory import local_heap
from restlake.settings import RestlakeSettings

DRIVER_MEMORY_AUTO = "auto"
# What the JVM's -Xmx accepts: a whole number of bytes, or of k, m, g or t units.
_JVM_SIZE = re.compile(r"[1-9][0-9]*[kmgt]?", re.IGNORECASE)


def classpath_jars(classpath: str) -> list[Path]:
    """The jars of an ``os.pathsep``-separated list (RESTLAKE_SPARK_JARS, ``--jars``); empty parts skipped."""
    return [Path(p) for p in classpath.split(os.pathsep) if p]


class SparkSettings(RestlakeSettings):
    """How a Spark session of restlake starts: master, classpath, memory, log level."""

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_SPARK_")

    master: str = Field(
        "local[2]", description="Spark master URL of a job run by `python -m` (RESTLAKE_SPARK_MASTER)."
    )
    jars: str = Field(
        "",
        description="Connector jars separated by os.pathsep (RESTLAKE_SPARK_JARS); empty when spark-submit "
        "or the image provides them.",
    )
    driver_memory: str = Field(
        DRIVER_MEMORY_AUTO,
        description="spark.driver.memory of a local-mode session (RESTLAKE_SPARK_DRIVER_MEMORY): driver and "
        "executors share that heap there. auto sizes it from the micro-batch cap and the machine "
        "(restlake.jobs.spark.driver_memory); a JVM size such as 1536m or 4g sets it.",
    )
    log_level: str = Field("WARN", description="Log level of the Spark JVM (RESTLAKE_SPARK_LOG_LEVEL).")
    # SecretStr: whoever holds it can run code on the cluster's workers, beside other sources' jobs.
    auth_secret: SecretStr | None = Field(
        None,
        description="Shared secret of a standalone cluster that runs with spark.authenticate "
        "(RESTLAKE_SPARK_AUTH_SECRET, or RESTLAKE_SPARK_AUTH_SECRET_FILE): set, a session against a "
        "spark:// master authenticates with it and encrypts its RPC. Ignored in local mode.",
    )
    class_archive: bool = Field(
        True,
        description="A local driver's JVM maps its classes from an archive an earlier driver wrote, and "
        "the first driver without one writes it on exit (RESTLAKE_SPARK_CLASS_ARCHIVE; "
        "restlake.jobs.spark.class_archive): about 5 s less per driver start.",
    )
    class_archive_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "restlake" / "jvm",
        description="Where those archives are kept, ~190 MB each, one per JVM and classpath "
        "(RESTLAKE_SPARK_CLASS_ARCHIVE_DIR).",
    )

    @field_validator("driver_memory")
    @classmethod
    def _jvm_size(cls, value: str) -> str:
        value = value.strip()
        if value.lower() == DRIVER_MEMORY_AUTO or _JVM_SIZE.fullmatch(value):
            return value.lower()
        raise ValueError(
            f"RESTLAKE_SPARK_DRIVER_MEMORY={value!r}: expected auto or a JVM size such as 1536m or 4g"
        )

    def local_driver_memory(self, records_per_batch: int | None, *, streams: int = 1) -> str:
        """The heap of a local-mode driver running ``streams`` queries with this batch cap."""
        if self.driver_memory != DRIVER_MEMORY_AUTO:
            return self.driver_memory
        return local_heap(records_per_batch, streams=streams)

    def quieter(self) -> SparkSettings:
        """These settings with the JVM at ERROR unless RESTLAKE_SPARK_LOG_LEVEL chose a level: for
        commands whose output would be buried by Spark's warnings (``--quiet``, ``restlake demo``)."""
        if "log_level" in self.model_fields_set:
            return self
        return self.model_copy(update={"log_level": "ERROR"})


class FaultSettings(RestlakeSettings):
    """Test-only fault injection (``RESTLAKE_FAULT_*``); see ``restlake.jobs.spark.faults``."""

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_FAULT_")

    kill_after_bronze_batch: str | None = Field(
        None,
        description="SIGKILL the driver right after the bronze write of this micro-batch id "
        "(RESTLAKE_FAULT_KILL_AFTER_BRONZE_BATCH).",
    )
    kill_before_bronze_confirm_batch: str | None = Field(
        None,
        description="SIGKILL the driver after the bronze Delta commit of this micro-batch id and before "
        "the key ledger records it (RESTLAKE_FAULT_KILL_BEFORE_BRONZE_CONFIRM_BATCH).",
    )
    kill_after_bronze_claim_batch: str | None = Field(
        None,
        description="SIGKILL the driver after this micro-batch id claimed its keys in the bronze key "
        "ledger and before its bronze append (RESTLAKE_FAULT_KILL_AFTER_BRONZE_CLAIM_BATCH).",
    )
