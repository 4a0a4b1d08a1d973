"""Case 9, ``maintenance``: Z-order by ``external_id`` against bin-packing, for a point query.

The figure behind ``spec.maintenance.zorder`` defaulting to off. One bronze table of many small
files whose ids arrive in no order (every file spans the whole id range, as uuids from an API
would), copied twice; ``restlake maintenance`` compacts one copy by bin-packing and the other with
Z-order. Baseline: the bin-packed copy, in the same run. Figures per copy: files and bytes before
and after, and the median time of a point query by ``external_id`` (maintenance's own timing).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from datetime import UTC, date, datetime
from typing import Any

from bench.common import Context, fmt, ratio
from restlake.contracts.maintenance import Maintenance
from restlake.jobs.spark import bronze
from restlake.jobs.spark.maintenance import MaintenanceTarget, run_maintenance

log = logging.getLogger("bench")

SOURCE = "bench-maintenance"


def _spread_table(spark: Any, path: str, appends: int, rows: int) -> str:
    """``appends`` one-file commits of ``rows`` uuid-keyed rows; returns one id to probe."""
    bronze.ensure_table(spark, path, bronze.BRONZE_SCHEMA)
    now = datetime.now(UTC).replace(tzinfo=None)
    probe = ""
    for batch in range(appends):
        ids = [uuid.uuid4().hex for _ in range(rows)]
        probe = probe or ids[rows // 2]
        data = [
            (
                SOURCE,
                i,
                f"{SOURCE}:{i}",
                i,
                "1",
                now,
                '{"n": 1}',
                1,
                None,
                None,
                "t",
                0,
                n,
                now,
                now,
                batch,
                date(2024, 5, 1),
            )
            for n, i in enumerate(ids)
        ]
        df = spark.createDataFrame(data, bronze.BRONZE_SCHEMA).coalesce(1)
        bronze.append(df, path=path, app_id="bench-spread", batch_id=batch)
    return probe


def run(ctx: Context) -> dict[str, Any]:
    spark = ctx.spark
    appends, rows = (6, 500) if ctx.quick else (30, 2000)
    root = ctx.work_dir / "maintenance"
    binpacked, zordered = str(root / "binpack"), str(root / "zorder")
    probe = _spread_table(spark, binpacked, appends, rows)
    shutil.copytree(binpacked, zordered)
    # Small target files, so that compaction leaves several and data skipping has something to skip.
    spark.conf.set("spark.databricks.delta.optimize.maxFileSize", str(512 * 1024))
    results: dict[str, dict[str, Any]] = {}
    try:
        for name, path, zorder in (("binpack", binpacked, False), ("zorder", zordered, True)):
            settings = Maintenance(as_of_window="1h", vacuum_retention="1h", zorder=zorder)
            target = MaintenanceTarget(SOURCE, path, None, None, settings)
            (table,) = run_maintenance(spark, target).tables
            found = spark.read.format("delta").load(path).where(f"external_id = '{probe}'").count()
            if found != 1:
                raise RuntimeError(f"{name}: the probe id is there {found} times after maintenance")
            # The table's path is this machine's scratch folder: not a figure.
            results[name] = {k: v for k, v in table.as_dict().items() if k != "path"}
            log.info("  %s: %s", name, results[name])
    finally:
        spark.conf.unset("spark.databricks.delta.optimize.maxFileSize")
    after = {name: r["after"]["point_query_s"] for name, r in results.items()}
    return {
        "params": {"appends": appends, "rows_per_append": rows},
        "tables": results,
        "ratios": {"zorder_point_query_vs_binpack": ratio(after["zorder"], after["binpack"])},
        "notes": [
            "point query = maintenance's own median time of a filter on external_id, after compaction.",
            "both copies start identical; OPTIMIZE's target file size is 512 KiB for both.",
        ],
    }


def markdown(doc: dict[str, Any]) -> str:
    p, t, r = doc["params"], doc["tables"], doc["ratios"]
    lines = [
        f"### 9. Maintenance: Z-order by external_id vs bin-packing ({p['appends']} appends of "
        f"{p['rows_per_append']:,} rows, uuid ids)",
        "",
        "| | files before | files after | bytes after | point query after, s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("binpack", "zorder"):
        table = t[name]
        lines.append(
            f"| {name} | {table['before']['files']} | {table['after']['files']} | "
            f"{table['after']['bytes']:,} | {fmt(table['after']['point_query_s'])} |"
        )
    lines += ["", f"- Z-order ÷ bin-packing, point query: {fmt(r['zorder_point_query_vs_binpack'])}"]
    return "\n".join(lines) + "\n"
