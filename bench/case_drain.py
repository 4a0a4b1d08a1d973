"""Case 7, ``drain``: the stream job draining a preloaded topic, against the Postgres merge alone.

Two questions the stream job has to answer with ratios measured in one run:

- How close does draining Kafka into bronze *and* Postgres come to the Postgres merge of the same
  rows on its own (``merge_batch`` from rows in memory, the sink's own limit)? Both move the same
  ~1 KB records; the drain also reads Kafka, validates and writes Delta.
- Does a batch cost more when bronze already holds a long history? The same drain runs into a
  bronze table that holds ``history`` rows of the same source (written directly, as years of
  ingestion would leave them), then into an empty one.

Rates are rows/s after the first micro-batch (its one-off costs: JVM warm-up, the key ledger's
seeding from an existing table) from the Postgres ledger's commit times, as in case 6.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
import psycopg
from confluent_kafka import Producer

from bench.common import Context, class_archive_state, fmt, timed
from bench.cpu_sampler import CpuSampler, stack_processes
from bench.harness import StreamProcess, stream_config
from restlake.contracts.envelope import content_hash, idempotency_key
from restlake.jobs.spark.batch_log import step_medians
from restlake.kafka_admin import ensure_topic
from restlake.postgres import migrations
from restlake.postgres.merge import MergeRow, merge_batch

log = logging.getLogger("bench")

_BATCH = 100_000
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def payload(i: int) -> dict[str, Any]:
    """A ~1 KB record with the fields real APIs have: ids, timestamps, numbers, nested values, text."""
    return {
        "id": i,
        "updated_at": (_EPOCH + timedelta(seconds=i)).isoformat(),
        "name": f"item {i}",
        "status": ("open", "closed", "pending")[i % 3],
        "amount": round(i * 1.37, 2),
        "tags": ["alpha", "beta"] if i % 2 else ["gamma"],
        "owner": {"id": i % 977, "login": f"user{i % 977}"},
        "description": f"record {i} " + "lorem ipsum dolor sit amet " * 30,
    }


def envelopes(source: str, n: int) -> list[dict[str, Any]]:
    out = []
    fetched = datetime.now(UTC).isoformat()
    for i in range(n):
        body = payload(i)
        digest = content_hash(body)
        out.append(
            {
                "envelope_version": 1,
                "source": source,
                "external_id": str(i),
                "idempotency_key": idempotency_key(source, str(i), digest),
                "content_hash": digest,
                "version": body["updated_at"],
                "fetched_at": fetched,
                "request": {"url": f"https://api.example/items?page={i // 1000}", "status": 200},
                "payload": body,
            }
        )
    return out


def preload(ctx: Context, topic: str, records: list[dict[str, Any]]) -> None:
    ensure_topic(ctx.kafka_bootstrap, topic, 2)
    producer = Producer(
        {
            "bootstrap.servers": ctx.kafka_bootstrap,
            "linger.ms": 50,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    for i, env in enumerate(records):
        while True:
            try:
                producer.produce(topic, key=env["idempotency_key"], value=json.dumps(env), partition=i % 2)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(120)


def write_history(ctx: Context, bronze_path: str, source: str, rows: int) -> float:
    """``rows`` bronze rows of ``source`` with distinct keys, as earlier batches would have left them."""
    from pyspark.sql import functions as F

    from restlake.jobs.spark import bronze

    spark = ctx.spark
    bronze.ensure_table(spark, bronze_path, bronze.BRONZE_SCHEMA)
    ids = spark.range(rows, numPartitions=8)
    key = F.concat(F.lit(f"{source}/h"), F.col("id").cast("string"))
    frame = ids.select(
        F.lit(source).alias("source"),
        F.concat(F.lit("h"), F.col("id").cast("string")).alias("external_id"),
        F.concat(key, F.lit("/"), F.sha2(key, 256)).alias("idempotency_key"),
        F.sha2(key, 256).alias("content_hash"),
        F.lit(None).cast("string").alias("version"),
        F.current_timestamp().alias("fetched_at"),
        F.to_json(F.struct(F.col("id"), F.lit("history").alias("kind"))).alias("payload"),
        F.lit(1).alias("envelope_version"),
        F.lit(None).cast(bronze.BRONZE_SCHEMA["request"].dataType).alias("request"),
        F.lit(None).cast(bronze.BRONZE_SCHEMA["parent"].dataType).alias("parent"),
        F.lit(f"restlake.{source}").alias("kafka_topic"),
        F.lit(0).alias("kafka_partition"),
        F.col("id").alias("kafka_offset"),
        F.current_timestamp().alias("kafka_timestamp"),
        F.current_timestamp().alias("ingested_at"),
        F.lit(-1).cast("long").alias("batch_id"),
        # Spread over a year of days, as a long-running source's partitions are.
        F.date_sub(F.current_date(), (F.col("id") % 365).cast("int")).alias("ingest_date"),
    )
    with timed() as t:
        frame.write.format("delta").mode("append").save(bronze_path)
    return t["wall"]


def drain(ctx: Context, name: str, records: list[dict[str, Any]], history: int) -> dict[str, Any]:
    topic = f"restlake.{name}"
    preload(ctx, topic, records)
    config = stream_config(ctx, name, available_now=True, max_offsets_per_trigger=_BATCH)
    history_s = write_history(ctx, config["bronze_path"], name, history) if history else 0.0
    job = StreamProcess(ctx, config, ctx.work_dir / f"stream-{name}.log")
    roots = stack_processes()

    def trees() -> dict[str, psutil.Process]:
        found = dict(roots)
        if job.proc is not None:
            with contextlib.suppress(psutil.Error):
                found["stream job"] = psutil.Process(job.proc.pid)
        return found

    sampler = CpuSampler(trees, split_jvm=frozenset({"stream job"}))
    sampler.start()
    try:
        with timed() as t:
            job.start()
            code = job.wait(1800)
    finally:
        sampler.stop()
    if code != 0:
        job.kill()
        raise RuntimeError(f"stream job {name} exited {code}; see {job.log_path}")
    with psycopg.connect(ctx.pg_dsn, autocommit=True) as conn:
        ledger = conn.execute(
            "SELECT committed_at, rows_in FROM raw.ingest_batches WHERE source = %s ORDER BY batch_id",
            (name,),
        ).fetchall()
        row = conn.execute("SELECT count(*) FROM raw.api_events WHERE source = %s", (name,)).fetchone()
    landed = int(row[0]) if row else 0
    if landed != len(records):
        raise RuntimeError(f"{name}: {landed} rows in Postgres, {len(records)} produced")
    steady = None
    cpu: dict[str, Any] = {}
    if len(ledger) >= 2:
        span = (ledger[-1][0] - ledger[0][0]).total_seconds()
        steady_rows = sum(r[1] for r in ledger[1:])
        steady = steady_rows / span if span > 0 else None
        used = sampler.between(ledger[0][0].timestamp(), ledger[-1][0].timestamp())
        if used and span > 0 and steady_rows:
            per = 100_000 / steady_rows
            cpu = {
                "seconds_per_100k_rows": {k: round(v * per, 1) for k, v in used.items()},
                "cores_busy": round(sum(used.values()) / span, 2),
                # What these processes' own work would allow if it used all the machine's cores.
                "rows_per_s_if_cpu_bound": round(steady_rows * psutil.cpu_count() / sum(used.values())),
            }
    return {
        "history_rows": history,
        "history_write_s": round(history_s, 1),
        "records": len(records),
        "batches": len(ledger),
        "rows_per_s_steady": round(steady) if steady else None,
        "job_wall_s_incl_startup": round(t["wall"], 1),
        "step_median_s": step_medians(job.log_path.read_text(errors="replace")),
        "class_archive": class_archive_state(job.log_path),
        "cpu": cpu,
    }


def merge_alone(ctx: Context, name: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The same records through ``merge_batch`` in batches of the stream's size, rows already in memory."""
    rows = [
        MergeRow(
            source=name,
            external_id=env["external_id"],
            idempotency_key=env["idempotency_key"],
            content_hash=env["content_hash"],
            version=env["version"],
            fetched_at=datetime.fromisoformat(env["fetched_at"]),
            payload=json.dumps(env["payload"]),
            kafka_topic=f"restlake.{name}",
            kafka_partition=i % 2,
            kafka_offset=i // 2,
        )
        for i, env in enumerate(records)
    ]
    roots = {"merge (Python)": psutil.Process(), **stack_processes()}
    sampler = CpuSampler(lambda: roots)
    sampler.start()
    try:
        time.sleep(sampler.interval_s * 2)  # a first sample before the start
        started = time.time()
        with timed() as t:
            for batch_id, start in enumerate(range(0, len(rows), _BATCH)):
                merge_batch(
                    ctx.pg_dsn,
                    table="raw.api_events",
                    source=name,
                    query_id="bench-merge",
                    batch_id=batch_id,
                    rows=rows[start : start + _BATCH],
                )
        ended = time.time()
        time.sleep(sampler.interval_s * 2)  # and one after the end
    finally:
        sampler.stop()
    used = sampler.between(started, ended + sampler.interval_s * 2)
    per = 100_000 / len(rows)
    return {
        "records": len(rows),
        "rows_per_s": round(len(rows) / t["wall"]),
        "wall_s": round(t["wall"], 2),
        # Kafka is idle here; what it uses idle is counted as it is in the drain.
        "cpu_seconds_per_100k_rows": {k: round(v * per, 1) for k, v in used.items()},
    }


def run(ctx: Context) -> dict[str, Any]:
    records = 200_000 if ctx.quick else 500_000
    history = 500_000 if ctx.quick else 5_000_000
    migrations.apply(ctx.pg_dsn)
    stamp = int(time.time())
    # The baseline on the quiet stack first, as it always was, then again after the drains: one pass
    # of 500k rows takes 8-16 s and once ran at 31,827 rows/s right after another job where the
    # run before had 59,200; the ratio is taken against the faster of the two.
    first = merge_alone(ctx, f"bench-drain-merge-{stamp}", envelopes(f"bench-drain-merge-{stamp}", records))
    log.info("  merge alone: %s", first)
    # A first driver on a new classpath or JDK stops ~10 s after its first batch to write the class
    # archive (restlake.jobs.spark.class_archive): a small drain first, so that neither measured one
    # pays it (one did once, and read 0.6x its true rate).
    prime_name = f"bench-drain-prime-{stamp}"
    primed = drain(ctx, prime_name, envelopes(prime_name, 2_000), history=0)
    log.info("  priming drain: class archive %s", primed["class_archive"])
    empty_name = f"bench-drain-empty-{stamp}"
    empty = drain(ctx, empty_name, envelopes(empty_name, records), history=0)
    log.info("  drain, empty bronze: %s", empty)
    deep_name = f"bench-drain-history-{stamp}"
    deep = drain(ctx, deep_name, envelopes(deep_name, records), history=history)
    log.info("  drain, %s rows of history: %s", history, deep)
    again = merge_alone(ctx, f"bench-drain-merge2-{stamp}", envelopes(f"bench-drain-merge2-{stamp}", records))
    log.info("  merge alone, after the drains: %s", again)
    merged = max(first, again, key=lambda m: m["rows_per_s"])
    drain_rate, merge_rate = empty["rows_per_s_steady"], merged["rows_per_s"]
    return {
        "params": {"records": records, "history_rows": history, "batch": _BATCH, "master": "local[2]"},
        "merge_alone": merged,
        "merge_alone_runs": [first["rows_per_s"], again["rows_per_s"]],
        "drain_empty": empty,
        "drain_history": deep,
        "drain_vs_merge": round(drain_rate / merge_rate, 3) if drain_rate and merge_rate else None,
        # The most the ratio could be on this machine: the drain's CPU per row spread over every core
        # without a gap, against the baseline as measured.
        "drain_vs_merge_if_cpu_bound": (
            round(empty["cpu"]["rows_per_s_if_cpu_bound"] / merge_rate, 3)
            if empty.get("cpu") and merge_rate
            else None
        ),
        "history_vs_empty": (
            round(deep["rows_per_s_steady"] / drain_rate, 3)
            if deep["rows_per_s_steady"] and drain_rate
            else None
        ),
        "notes": [
            "drain: the stream job (subprocess, local[2], availableNow, 100,000 records per micro-batch) "
            "over a preloaded 2-partition topic of ~1 KB records into bronze and Postgres; rows/s after "
            "the first batch, from the Postgres ledger's commit times.",
            "merge alone: merge_batch of the same records in batches of 100,000, rows already in memory "
            "(no Kafka, no Spark, no Delta): the sink's own limit; run before and after the drains "
            f"({first['rows_per_s']:,} and {again['rows_per_s']:,} rows/s), the faster is the baseline.",
            "history: the drain again into a bronze table already holding that many rows of the same "
            "source, spread over 365 daily partitions, written directly before the job starts.",
            f"class archive of the measured drivers: {empty['class_archive']} / {deep['class_archive']} "
            f"(a priming drain of 2,000 records ran first: {primed['class_archive']}).",
        ],
    }


def markdown(doc: dict[str, Any]) -> str:
    p = doc["params"]
    m, e, h = doc["merge_alone"], doc["drain_empty"], doc["drain_history"]
    lines = [
        f"### 7. Stream drain: {p['records']:,} preloaded records of ~1 KB, {p['master']}",
        "",
        "| | rows/s | ratio | target |",
        "|---|---:|---:|---:|",
        f"| Postgres merge alone (baseline) | {fmt(m['rows_per_s'])} | 1 | |",
        f"| stream drain, empty bronze | {fmt(e['rows_per_s_steady'])} "
        f"| {fmt(doc['drain_vs_merge'])} | ≥ 0.5 |",
        *(
            [
                f"| the same with every core busy all the time (its CPU per row; a ceiling) "
                f"| {fmt(e['cpu']['rows_per_s_if_cpu_bound'])} "
                f"| {fmt(doc['drain_vs_merge_if_cpu_bound'])} | |"
            ]
            if doc.get("drain_vs_merge_if_cpu_bound")
            else []
        ),
        f"| stream drain, {h['history_rows']:,} rows already in bronze | {fmt(h['rows_per_s_steady'])} "
        f"| {fmt(doc['history_vs_empty'])} of empty | ≥ 0.9 |",
        "",
        f"- job wall incl. start-up: empty {fmt(e['job_wall_s_incl_startup'])} s, with history "
        f"{fmt(h['job_wall_s_incl_startup'])} s ({h['batches']} batches); writing the history took "
        f"{fmt(h['history_write_s'])} s (not in the job's time).",
    ]
    merge_cpu = m.get("cpu_seconds_per_100k_rows") or {}
    if merge_cpu:
        split = ", ".join(f"{k} {v}" for k, v in merge_cpu.items())
        lines.append(f"- CPU of the merge alone (baseline): {split} core-seconds per 100k rows.")
    for label, run in (("empty", e), ("history", h)):
        steps = run.get("step_median_s") or {}
        if steps:
            listed = ", ".join(f"{k} {v:.2f}" for k, v in steps.items())
            lines.append(f"- median seconds per batch after the first ({label}): {listed}.")
        cpu = run.get("cpu") or {}
        if cpu:
            split = ", ".join(f"{k} {v}" for k, v in cpu["seconds_per_100k_rows"].items())
            lines.append(
                f"- CPU after the first batch ({label}): {split} core-seconds per 100k rows; "
                f"{cpu['cores_busy']} cores busy on average; all cores on this work alone would "
                f"drain {fmt(cpu['rows_per_s_if_cpu_bound'])} rows/s."
            )
    return "\n".join(lines)
