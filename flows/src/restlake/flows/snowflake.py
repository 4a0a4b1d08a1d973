"""The ``restlake-snowflake-sync`` flow: ``restlake snowflake sync`` of one source, as a Prefect run.

A retry is safe at any point: the ledger only moves past committed MERGEs, and re-merging a range
changes no row (``restlake.jobs.spark.snowflake.load`` states the rule).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from restlake.flows.session import load_named_source, spark_for

TIMEOUT_S = 2 * 3600


@flow(
    name="restlake-snowflake-sync",
    flow_run_name="snowflake-sync-{source}",
    retries=3,
    retry_delay_seconds=120,
    timeout_seconds=TIMEOUT_S,
)
def snowflake_sync_flow(file: str, source: str, master: str = "local[2]") -> dict[str, Any]:
    """Merge the source's bronze versions its Snowflake ledger lacks; returns the summary."""
    from restlake.contracts.snowflake_sync import SnowflakeSyncConfig
    from restlake.jobs.spark.snowflake_sync import sync
    from restlake.settings import LakeSettings

    logger = get_run_logger()
    spec = load_named_source(file, source)
    lake_root = LakeSettings().root
    cfg = SnowflakeSyncConfig.for_source(spec, lake_root=lake_root)
    spark = spark_for("snowflake-sync", spec, lake_root=lake_root, master=master)
    summary = sync(spark, cfg)
    logger.info(
        "snowflake sync %s: bronze versions %s..%s, %s rows in, %s inserted, %s updated in %s in %ss",
        spec.name,
        summary.from_version,
        summary.to_version,
        summary.rows_in,
        summary.inserted,
        summary.updated,
        summary.target,
        summary.duration_s,
    )
    return summary.as_dict()
