"""The ``restlake-maintenance`` flow: ``restlake maintenance run`` of one source, as a Prefect run.

OPTIMIZE, VACUUM and ledger pruning are idempotent, so a retry after a failure (a lost executor,
Postgres restarting) redoes only what had not committed. Lineage is the maintenance code's own
(job ``restlake.maintenance.<source>``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from restlake.flows.session import load_named_source, spark_for

TIMEOUT_S = 3 * 3600


@flow(
    name="restlake-maintenance",
    flow_run_name="maintenance-{source}",
    retries=2,
    retry_delay_seconds=60,
    timeout_seconds=TIMEOUT_S,
)
def maintenance_flow(
    file: str, source: str, master: str = "local[2]", time_queries: bool = True
) -> dict[str, Any]:
    """OPTIMIZE and VACUUM the source's tables and prune its batch ledger; returns the summary."""
    from restlake.jobs.spark.maintenance import MaintenanceTarget, run_maintenance
    from restlake.settings import LakeSettings, PostgresSettings

    logger = get_run_logger()
    spec = load_named_source(file, source)
    lake_root = LakeSettings().root
    target = MaintenanceTarget.for_source(spec, lake_root=lake_root, pg_dsn=PostgresSettings().dsn)
    spark = spark_for("maintenance", spec, lake_root=lake_root, master=master)
    summary = run_maintenance(spark, target, time_queries=time_queries).as_dict()
    for table in summary["tables"]:
        logger.info(
            "%s: files %s -> %s, bytes %s -> %s, %s files vacuumed",
            table["kind"],
            table["before"]["files"],
            table["after"]["files"],
            table["before"]["bytes"],
            table["after"]["bytes"],
            table["files_vacuumed"],
        )
    if summary["ledger"] is not None:
        logger.info(
            "ledger: %s rows deleted, %s kept", summary["ledger"]["deleted"], summary["ledger"]["kept"]
        )
    return summary
