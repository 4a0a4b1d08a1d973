"""The bronze checkpoint: Great Expectations over the bronze Delta table (``restlake quality run``).

Distinct from the inline gate in ``restlake.jobs.spark.quality``, which checks each micro-batch
before it is written: this package validates what bronze already holds, table-wide, on a schedule,
with a suite defaulted from the spec (``suite``), persists GX results and Data Docs (``results``),
and reports through Prometheus (``metrics``) and OpenLineage (``restlake.lineage.quality``).
"""

from restlake.quality.checkpoint import QualityRun, run_checkpoint
from restlake.quality.settings import QualitySettings
from restlake.quality.suite import BronzeSuite, SuiteError, build_suite

__all__ = ["BronzeSuite", "QualityRun", "QualitySettings", "SuiteError", "build_suite", "run_checkpoint"]
