"""Case 1, Postgres sink: restlake's merge against raw COPY (the limit) and Spark's JDBC writer (the seed).

All three write the same rows (~1 KB jsonb payloads) into the same table, reset to the same
state before every run:

- ``merge``: ``restlake.postgres.merge.merge_batch`` from a DSN, as the stream job calls it
  (connect, COPY into a temp staging table, one INSERT … ON CONFLICT, ledger row, commit).
- ``copy``: one COPY of the target's columns straight into the (emptied) target: no staging,
  no conflict handling, versions parsed up front. Nothing that lands these bytes can be faster.
- ``jdbc``: a cached Spark DataFrame of the same staging columns, ``df.write.jdbc(mode=append)``
  into a regular staging table (the driver option set, Spark's default batch size), then the very
  same INSERT … ON CONFLICT from that table and a TRUNCATE of it. No ledger row, which flatters it.

Scenarios: ``insert`` (empty target) and ``update`` (target holds v1 of every key; the batch holds
every key, half of them a newer version and half unchanged). In ``update`` the COPY limit is the
same rows copied into the emptied table: the cost of moving the bytes in, which any upsert adds to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.common import Context, fmt, interleaved, paired_ratios, ratio, spread, summary, timed
from restlake.postgres import merge as merge_mod
from restlake.postgres import migrations
from restlake.postgres.arrow_stage import arrow_stager, rows_table
from restlake.postgres.identifiers import TableName
from restlake.postgres.merge import MergeRow, merge_batch, merge_staged, parse_version

log = logging.getLogger("bench.sink")

SOURCE = "bench-sink"
TARGET = TableName("bench", "sink_target")
JDBC_STAGE = TableName("bench", "sink_jdbc_stage")
_T0 = datetime(2024, 1, 1, tzinfo=UTC)
_WORDS = (
    *("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda"),
    *("mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega"),
    *("anchor", "beacon", "canyon", "ember", "falcon", "glacier", "harbor", "island", "jungle"),
)

# The columns merge_batch fills in the target; COPY writes exactly these.
_TARGET_COLUMNS = (
    "source",
    "external_id",
    "payload",
    "pulled_at",
    "content_hash",
    "version",
    "version_ts",
    "version_num",
    "fetched_at",
    "updated_at",
    "idempotency_key",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "ingest_query_id",
    "ingest_batch_id",
)


def payload_json(i: int, revision: int, rng: random.Random) -> str:
    """A ~1 KB record: a few typed fields and a text body, like an issue or an order from an API."""
    body = " ".join(rng.choice(_WORDS) for _ in range(120))[:780]
    record = {
        "id": i,
        "revision": revision,
        "updated_at": (_T0 + timedelta(seconds=i, days=revision)).isoformat().replace("+00:00", "Z"),
        "title": f"record {i} rev {revision}",
        "status": ("open", "closed", "pending")[(i + revision) % 3],
        "amount": round(rng.random() * 10_000, 2),
        "tags": [rng.choice(_WORDS) for _ in range(3)],
        "owner": {"login": f"user-{i % 997}", "id": i % 997},
        "body": body,
    }
    return json.dumps(record, separators=(",", ":"))


def make_rows(n: int, revision: int, seed: int, only: Iterator[int] | None = None) -> list[MergeRow]:
    rng = random.Random(seed * 1_000_003 + revision)
    fetched = _T0 + timedelta(days=revision, hours=1)
    rows = []
    for i in only if only is not None else range(n):
        text = payload_json(i, revision, rng)
        digest = hashlib.sha256(text.encode()).hexdigest()
        rows.append(
            MergeRow(
                source=SOURCE,
                external_id=str(i),
                idempotency_key=f"{SOURCE}/{i}/{digest}",
                content_hash=digest,
                version=json.loads(text)["updated_at"],
                fetched_at=fetched,
                payload=text,
                kafka_topic="bench",
                kafka_partition=0,
                kafka_offset=i,
            )
        )
    return rows


def update_batch(v1: list[MergeRow], seed: int) -> list[MergeRow]:
    """Every key once: even ids as revision 2 (newer, different content), odd ids unchanged."""
    v2 = {r.external_id: r for r in make_rows(len(v1), 2, seed, only=iter(range(0, len(v1), 2)))}
    return [v2.get(r.external_id, r) for r in v1]


def _target_tuple(row: MergeRow, batch: int) -> tuple[Any, ...]:
    parsed = parse_version(row.version)
    return (
        row.source,
        row.external_id,
        row.payload,
        row.fetched_at,
        row.content_hash,
        row.version,
        parsed.ts,
        parsed.num,
        row.fetched_at,
        row.fetched_at,
        row.idempotency_key,
        row.kafka_topic,
        row.kafka_partition,
        row.kafka_offset,
        "bench-copy",
        batch,
    )


@dataclass
class SinkBench:
    ctx: Context
    n: int
    seed: int = 7
    _batch: int = 0

    def setup(self) -> None:
        migrations.apply(self.ctx.pg_dsn)
        with psycopg.connect(self.ctx.pg_dsn, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(TARGET.identifier()))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(JDBC_STAGE.identifier()))
        migrations.ensure_table(self.ctx.pg_dsn, TARGET)
        with psycopg.connect(self.ctx.pg_dsn, autocommit=True) as conn:
            # The staging table the seed's JDBC path appends to: merge's temp staging columns.
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (source text NOT NULL, external_id text NOT NULL,"
                    " idempotency_key text NOT NULL, content_hash text NOT NULL, version text,"
                    " version_ts timestamptz, version_num numeric, fetched_at timestamptz NOT NULL,"
                    " payload jsonb NOT NULL, kafka_topic text, kafka_partition integer, kafka_offset bigint)"
                ).format(JDBC_STAGE.identifier())
            )

    # -- state resets (untimed) ------------------------------------------------------------------
    def reset(self, preload: list[MergeRow] | None) -> None:
        with psycopg.connect(self.ctx.pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("TRUNCATE {}, {}").format(TARGET.identifier(), JDBC_STAGE.identifier()))
            conn.execute("DELETE FROM raw.ingest_batches WHERE source = %s", (SOURCE,))
            if preload:
                self._copy(conn, preload)
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(TARGET.identifier()))
            # Flush dirty pages now so no variant pays for a checkpoint the previous one caused.
            conn.execute("CHECKPOINT")

    def _copy(self, conn: psycopg.Connection, rows: list[MergeRow]) -> None:
        self._batch += 1
        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            TARGET.identifier(), sql.SQL(", ").join(sql.Identifier(c) for c in _TARGET_COLUMNS)
        )
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            for row in rows:
                copy.write_row(_target_tuple(row, self._batch))

    # -- variants (timed) --------------------------------------------------------------------------
    def run_merge(self, rows: list[MergeRow], preload: list[MergeRow] | None) -> float:
        self.reset(preload)
        self._batch += 1
        with timed() as t:
            result = merge_batch(
                self.ctx.pg_dsn,
                table=TARGET,
                source=SOURCE,
                query_id=f"bench-{self._batch}",
                batch_id=self._batch,
                rows=iter(rows),
            )
        expected = len(rows) if preload is None else len(rows) // 2 + len(rows) % 2
        if result.merged != expected:
            raise AssertionError(f"merge wrote {result.merged} rows, expected {expected}")
        return len(rows) / t["wall"]

    def run_arrow(self, table: Any, n: int, preload: list[MergeRow] | None) -> float:
        self.reset(preload)
        self._batch += 1
        with timed() as t:
            result = merge_staged(
                self.ctx.pg_dsn,
                table=TARGET,
                source=SOURCE,
                query_id=f"bench-{self._batch}",
                batch_id=self._batch,
                stage=arrow_stager(table, source=SOURCE, batch_id=self._batch),
            )
        expected = n if preload is None else n // 2 + n % 2
        if result.merged != expected:
            raise AssertionError(f"arrow merge wrote {result.merged} rows, expected {expected}")
        return n / t["wall"]

    def prepare_copy(self, rows: list[MergeRow]) -> list[tuple[Any, ...]]:
        return [_target_tuple(r, 0) for r in rows]

    def run_copy(self, tuples: list[tuple[Any, ...]]) -> float:
        self.reset(None)
        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            TARGET.identifier(), sql.SQL(", ").join(sql.Identifier(c) for c in _TARGET_COLUMNS)
        )
        with timed() as t, psycopg.connect(self.ctx.pg_dsn) as conn:
            with conn.cursor() as cur, cur.copy(stmt) as copy:
                for tup in tuples:
                    copy.write_row(tup)
            conn.commit()
        return len(tuples) / t["wall"]

    def prepare_jdbc(self, rows: list[MergeRow], name: str) -> Any:
        """The batch as a cached Spark DataFrame with the staging columns (built via Parquet, untimed)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: dict[str, list[Any]] = {c: [] for c in merge_mod.STAGE_COLUMNS}
        for r in rows:
            parsed = parse_version(r.version)
            for key, value in (
                ("source", r.source),
                ("external_id", r.external_id),
                ("idempotency_key", r.idempotency_key),
                ("content_hash", r.content_hash),
                ("version", r.version),
                ("version_ts", parsed.ts),
                ("version_num", None),
                ("fetched_at", r.fetched_at),
                ("payload", r.payload),
                ("kafka_topic", r.kafka_topic),
                ("kafka_partition", r.kafka_partition),
                ("kafka_offset", r.kafka_offset),
            ):
                cols[key].append(value)
        schema = pa.schema(
            [
                ("source", pa.string()),
                ("external_id", pa.string()),
                ("idempotency_key", pa.string()),
                ("content_hash", pa.string()),
                ("version", pa.string()),
                ("version_ts", pa.timestamp("us", tz="UTC")),
                ("version_num", pa.float64()),
                ("fetched_at", pa.timestamp("us", tz="UTC")),
                ("payload", pa.string()),
                ("kafka_topic", pa.string()),
                ("kafka_partition", pa.int32()),
                ("kafka_offset", pa.int64()),
            ]
        )
        path: Path = self.ctx.work_dir / f"sink-{name}.parquet"
        pq.write_table(pa.table(cols, schema=schema), path)
        spark = self.ctx.spark
        # Two partitions: one JDBC connection per core, the most local[2] can use.
        df = spark.read.parquet(str(path)).repartition(2).cache()
        df.count()
        return df

    def run_jdbc(self, df: Any, n: int, preload: list[MergeRow] | None) -> float:
        self.reset(preload)
        url, props = jdbc_url(self.ctx.pg_dsn)
        with psycopg.connect(self.ctx.pg_dsn) as conn:
            # Every staged row: the batch holds each key once, as the merge's own choice would see.
            upsert = merge_mod._UPSERT.format(
                target=TARGET.identifier(), newest=merge_mod._EVERY_ROW.format(staged=JDBC_STAGE.identifier())
            ).as_string(conn)
        self._batch += 1
        with timed() as t:
            df.write.mode("append").jdbc(url, str(JDBC_STAGE), properties=props)
            with psycopg.connect(self.ctx.pg_dsn) as conn:
                conn.execute(upsert.encode(), {"query_id": "bench-jdbc", "batch_id": self._batch})
                conn.execute(sql.SQL("TRUNCATE {}").format(JDBC_STAGE.identifier()))
                conn.commit()
        return n / t["wall"]


def jdbc_url(dsn: str) -> tuple[str, dict[str, str]]:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    host = str(info.get("host") or "127.0.0.1")
    # stringtype=unspecified lets a Spark string land in a jsonb column (else: "column is of type jsonb").
    url = f"jdbc:postgresql://{host}:{info.get('port') or 5432}/{info.get('dbname')}?stringtype=unspecified"
    props = {"driver": "org.postgresql.Driver", "user": str(info.get("user") or "")}
    if info.get("password"):
        props["password"] = str(info["password"])
    return url, props


def run(ctx: Context) -> dict[str, Any]:
    n = 10_000 if ctx.quick else 100_000
    reps = 2 if ctx.quick else 3
    results = _run_size(ctx, n, reps=reps, with_jdbc=True)
    # 1M rows once per variant, no warm-up (the 100k rounds warmed everything): three repetitions
    # of the three variants at 1M would take most of the suite's 40-minute budget on 2 cores.
    big = os.environ.get("BENCH_SINK_1M", "1") == "1" and not ctx.quick
    if big:
        results += _run_size(ctx, 1_000_000, reps=1, with_jdbc=True, warmup=0)
    return {
        "params": {
            "payload_bytes_approx": 1000,
            "sizes": sorted({r["rows"] for r in results}),
            "reps": {str(n): reps, **({"1000000": 1} if big else {})},
        },
        "results": results,
        "notes": [
            "rows/s = batch rows / wall seconds of the whole call (connect, stage, upsert, commit).",
            "update: target preloaded with v1 of every key; the batch has every key, half newer.",
            "update COPY = the same batch rows copied into the emptied target (the transport limit).",
            "merge from Arrow: the same merge with the rows staged from an Arrow table by one "
            "text-format COPY (restlake.postgres.arrow_stage), as the stream job does after toArrow(); "
            "the table is built untimed, as merge's row objects are.",
            "jdbc: Spark df.write.jdbc (driver org.postgresql.Driver, default batchsize 1000, 2 "
            "partitions) into a staging table, then the same INSERT ... ON CONFLICT; no ledger row.",
            *(
                ["1M rows: one repetition per variant (min = median = max), after the 100k rounds."]
                if big
                else ["1M rows not measured (BENCH_SINK_1M=0 or --quick)."]
            ),
        ],
    }


def _run_size(ctx: Context, n: int, *, reps: int, with_jdbc: bool, warmup: int = 1) -> list[dict[str, Any]]:
    bench = SinkBench(ctx, n)
    bench.setup()
    log.info("sink: generating %s rows of ~1 KB", n)
    v1 = make_rows(n, 1, bench.seed)
    upd = update_batch(v1, bench.seed)
    avg_bytes = sum(len(r.payload) for r in v1[:1000]) / min(1000, n)
    out = []
    for scenario, rows, preload in (("insert", v1, None), ("update", upd, v1)):
        tuples = bench.prepare_copy(rows)
        table = rows_table(rows)  # untimed, as merge's row objects are
        variants = {
            "merge": lambda rows=rows, preload=preload: bench.run_merge(rows, preload),
            "arrow": lambda table=table, preload=preload: bench.run_arrow(table, n, preload),
            "copy": lambda tuples=tuples: bench.run_copy(tuples),
        }
        df = None
        if with_jdbc:
            df = bench.prepare_jdbc(rows, f"{n}-{scenario}")
            variants["jdbc"] = lambda df=df, preload=preload: bench.run_jdbc(df, n, preload)
        log.info("sink: %s rows, %s, variants %s", n, scenario, ", ".join(variants))
        measured = interleaved(variants, reps=reps, warmup=warmup)
        if df is not None:
            df.unpersist()
        stats = {k: summary(v) for k, v in measured.items()}
        entry: dict[str, Any] = {
            "rows": n,
            "scenario": scenario,
            "payload_bytes_avg": round(avg_bytes),
            "rows_per_s": stats,
            "ratios": {
                "merge_vs_copy": ratio(stats["merge"]["median"], stats["copy"]["median"]),
                "merge_vs_copy_paired": paired_ratios(measured["merge"], measured["copy"]),
                "arrow_vs_copy": ratio(stats["arrow"]["median"], stats["copy"]["median"]),
                "arrow_vs_copy_paired": paired_ratios(measured["arrow"], measured["copy"]),
            },
        }
        if with_jdbc:
            entry["ratios"]["merge_vs_jdbc"] = ratio(stats["merge"]["median"], stats["jdbc"]["median"])
            entry["ratios"]["merge_vs_jdbc_paired"] = paired_ratios(measured["merge"], measured["jdbc"])
        out.append(entry)
    return out


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "### 1. Postgres sink (rows/s, median (min..max); ratio = merge ÷ baseline)",
        "",
        "| rows | scenario | restlake merge (rows) | merge from Arrow (stream job) | raw COPY (limit) "
        "| Spark JDBC + upsert (seed) | merge ÷ COPY | Arrow merge ÷ COPY (target ≥ 0.6) | merge ÷ JDBC |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["results"]:
        s = r["rows_per_s"]
        lines.append(
            f"| {r['rows']:,} | {r['scenario']} | {spread(s['merge'])} | {spread(s.get('arrow', {}))} "
            f"| {spread(s['copy'])} | {spread(s.get('jdbc', {}))} | {fmt(r['ratios']['merge_vs_copy'])} | "
            f"{fmt(r['ratios'].get('arrow_vs_copy'))} | {fmt(r['ratios'].get('merge_vs_jdbc'))} |"
        )
    return "\n".join(lines)
