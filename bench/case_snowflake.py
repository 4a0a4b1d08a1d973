"""Case 8, Snowflake sink: one ledgered load into fakesnow against the Postgres merge, same rows.

fakesnow is a DuckDB-backed EMULATOR of Snowflake (no account is reachable here), so the figure is
the sync's own cost (text staging, ``write_pandas``, the MERGE translated to DuckDB, the ledger
row) on this machine, not Snowflake's: a real warehouse adds a PUT to a stage, COPY INTO and
network round trips, and runs the MERGE on its own compute.

- ``snowflake``: ``restlake.jobs.spark.snowflake.load.load`` of an Arrow table (the columns the sync collects
  from bronze with ``toArrow()``) into the emulator: stage, MERGE, ledger row.
- ``postgres`` (the baseline): ``merge_staged`` with ``arrow_stager`` of the same Arrow table, as
  the stream job merges a micro-batch into Postgres.

Scenarios as in case 1: ``insert`` (empty target) and ``update`` (target holds v1 of every key, the
batch every key, half of them newer). Reading bronze with Spark is not part of either figure.
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any

from bench.case_sink import SOURCE, SinkBench, make_rows, update_batch
from bench.common import Context, fmt, interleaved, paired_ratios, ratio, summary, timed
from restlake.postgres.arrow_stage import rows_table

log = logging.getLogger("bench.snowflake")

DATABASE, SCHEMA = "BENCH", "RAW"
TABLE, LEDGER = f"{DATABASE}.{SCHEMA}.API_EVENTS", f"{DATABASE}.{SCHEMA}.RESTLAKE_LOADS"


class SnowflakeBench:
    """The emulator's target and ledger, emptied (and preloaded) before every timed load."""

    def __init__(self) -> None:
        import snowflake.connector

        from restlake.jobs.spark.snowflake import load as loads

        with snowflake.connector.connect() as conn:
            conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
            conn.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA}")
        self.conn = snowflake.connector.connect(database=DATABASE, schema=SCHEMA)
        self.target = loads.Target(TABLE, LEDGER, SOURCE, "bench/bronze", "bench-table")
        loads.ensure_tables(self.conn, self.target)
        self.version = 0

    def reset(self, preload: Any | None) -> None:
        from restlake.jobs.spark.snowflake import load as loads

        cur = self.conn.cursor()
        cur.execute(f"DELETE FROM {TABLE}")
        cur.execute(f"DELETE FROM {LEDGER}")
        if preload is not None:
            loads.load(self.conn, self.target, preload, from_version=0, to_version=0)

    def run(self, table: Any, n: int, preload: Any | None) -> float:
        from restlake.jobs.spark.snowflake import load as loads

        self.reset(preload)
        self.version += 1
        with timed() as t:
            result = loads.load(
                self.conn, self.target, table, from_version=self.version, to_version=self.version
            )
        expected = n if preload is None else n // 2 + n % 2
        if result.inserted + result.updated != expected:
            raise AssertionError(
                f"snowflake load wrote {result.inserted + result.updated}, expected {expected}"
            )
        return n / t["wall"]


def run(ctx: Context) -> dict[str, Any]:
    import fakesnow

    n = 10_000 if ctx.quick else 100_000
    reps = 2 if ctx.quick else 3
    postgres = SinkBench(ctx, n)
    postgres.setup()
    log.info("snowflake: generating %s rows of ~1 KB", n)
    v1 = make_rows(n, 1, postgres.seed)
    upd = update_batch(v1, postgres.seed)
    results = []
    with fakesnow.patch():
        snow = SnowflakeBench()
        for scenario, rows, preload in (("insert", v1, None), ("update", upd, v1)):
            table = rows_table(rows)
            preload_table = rows_table(preload) if preload is not None else None
            measured = interleaved(
                {
                    "postgres": lambda t=table, p=preload: postgres.run_arrow(t, n, p),
                    "snowflake": lambda t=table, p=preload_table: snow.run(t, n, p),
                },
                reps=reps,
            )
            results.append(
                {
                    "scenario": scenario,
                    "rows": n,
                    "rows_per_s": {k: summary(v) for k, v in measured.items()},
                    "snowflake_vs_postgres": paired_ratios(measured["snowflake"], measured["postgres"]),
                }
            )
        snow.conn.close()
    return {
        "params": {
            "rows": n,
            "reps": reps,
            "payload_bytes_approx": 1000,
            "emulator": f"fakesnow {importlib.metadata.version('fakesnow')} "
            f"(duckdb {importlib.metadata.version('duckdb')})",
            "connector": "snowflake-connector-python "
            + importlib.metadata.version("snowflake-connector-python"),
        },
        "results": results,
        "notes": [
            "rows/s = batch rows / wall seconds of one load (stage, MERGE or upsert, ledger row).",
            "snowflake runs against fakesnow, a DuckDB-backed emulator: not a Snowflake figure.",
            "postgres = merge_staged + arrow_stager of the same Arrow table (the stream job's merge).",
        ],
    }


def markdown(doc: dict[str, Any]) -> str:
    params = doc.get("params", {})
    lines = [
        "### snowflake: one ledgered load into the emulator vs the Postgres merge",
        "",
        f"{params.get('rows')} rows of ~1 KB, {params.get('reps')} repetitions; "
        f"{params.get('emulator')}, {params.get('connector')}.",
        "",
        "| scenario | postgres rows/s | snowflake (emulator) rows/s | snowflake ÷ postgres |",
        "|---|---|---|---|",
    ]
    for r in doc.get("results", []):
        pg, sf = r["rows_per_s"]["postgres"], r["rows_per_s"]["snowflake"]
        lines.append(
            f"| {r['scenario']} | {fmt(pg['median'])} ({fmt(pg['min'])}..{fmt(pg['max'])}) "
            f"| {fmt(sf['median'])} ({fmt(sf['min'])}..{fmt(sf['max'])}) "
            f"| {fmt(ratio(sf['median'], pg['median']))} |"
        )
    return "\n".join(lines)
