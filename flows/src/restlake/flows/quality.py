"""The ``restlake-quality`` flow: the bronze checkpoint of one source (``restlake quality run``).

Failed expectations are a verdict, not an error: the run completes with ``passed: false`` in its
result (the OpenLineage assertions carry it too), and is not retried. An error that kept the
checkpoint from validating at all fails the run and is retried.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from restlake.flows.session import load_named_source, spark_for

TIMEOUT_S = 3600


@flow(
    name="restlake-quality",
    flow_run_name="quality-{source}",
    retries=1,
    retry_delay_seconds=60,
    timeout_seconds=TIMEOUT_S,
)
def quality_flow(file: str, source: str, full: bool = False, master: str = "local[2]") -> dict[str, Any]:
    """Validate the source's bronze rows with Great Expectations; returns the checkpoint's summary."""
    from restlake.quality.checkpoint import run_checkpoint
    from restlake.quality.suite import build_suite
    from restlake.settings import LakeSettings

    logger = get_run_logger()
    spec = load_named_source(file, source)
    build_suite(spec)  # a bad expectation fails before Spark starts
    lake_root = LakeSettings().root
    spark = spark_for("quality", spec, lake_root=lake_root, master=master)
    result = run_checkpoint(spark, spec, lake_root=lake_root, full=full)
    if result.passed:
        logger.info("all %s expectations passed on %s rows", len(result.outcomes), result.rows_validated)
    else:
        logger.warning(
            "%s of %s expectations failed: %s", len(result.failed), len(result.outcomes), result.message
        )
    return result.summary()
