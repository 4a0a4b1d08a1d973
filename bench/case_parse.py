"""Case 10, ``parse``: the stream job's validation of a micro-batch, payload text sliced vs re-written.

The payload's text reaches bronze and Postgres either sliced out of the Kafka value by restlake's
Spark function (``restlake_payload_json``, jvm/spark-udfs) or, the baseline, written back from the
VARIANT with ``to_json``, as the job did before. Both run ``validation.validate`` over the same
Kafka-shaped rows (the drain case's ~1 KB envelopes, as its producer writes them) read from
Parquet, into Spark's ``noop`` sink, interleaved in one session: only the validation step, no
Kafka, Delta or Postgres. Figure: rows/s of each, and their paired ratio.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import functions as F

from bench.case_drain import envelopes
from bench.common import Context, fmt, interleaved, paired_ratios, summary
from restlake.jobs.spark import validation

log = logging.getLogger("bench")

SOURCE = "bench-parse"


def _kafka_parquet(ctx: Context, n: int) -> str:
    records = envelopes(SOURCE, n)
    at = pa.array([int(time.time() * 1e6)] * n, pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {
            "key": pa.array([r["idempotency_key"].encode() for r in records], pa.binary()),
            "value": pa.array([json.dumps(r).encode() for r in records], pa.binary()),
            "topic": pa.array([f"restlake.{SOURCE}"] * n),
            "partition": pa.array([i % 2 for i in range(n)], pa.int32()),
            "offset": pa.array(range(n), pa.int64()),
            "timestamp": at,
        }
    )
    path = ctx.work_dir / "parse" / "kafka.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return str(path)


def run(ctx: Context) -> dict[str, Any]:
    n = 20_000 if ctx.quick else 100_000
    reps = 2 if ctx.quick else 5
    spark = ctx.spark
    kafka = spark.read.parquet(_kafka_parquet(ctx, n)).repartition(2).cache()
    kafka.count()
    if not validation.payload_function(spark):
        raise RuntimeError("restlake_payload_json is not on the classpath: run `restlake stack jars`")
    refused = kafka.where(F.call_function(validation.PAYLOAD_FUNCTION, F.col("value")).isNull()).count()

    def variant(slice_payload: bool) -> Any:
        def once() -> float:
            frame = validation.validate(kafka, source=SOURCE, json_schema=None, slice_payload=slice_payload)
            started = time.perf_counter()
            frame.write.format("noop").mode("overwrite").save()
            return n / (time.perf_counter() - started)

        return once

    rates = interleaved({"sliced": variant(True), "to_json": variant(False)}, reps=reps)
    kafka.unpersist()
    return {
        "params": {"records": n, "repetitions": reps, "master": "local[2]"},
        "sliced_rows_per_s": summary(rates["sliced"]),
        "to_json_rows_per_s": summary(rates["to_json"]),
        "sliced_vs_to_json": paired_ratios(rates["sliced"], rates["to_json"]),
        "records_the_slice_refused": refused,
        "notes": [
            "validation.validate (envelope from_json, payload text, quarantine reasons) into the noop "
            "sink, over cached Kafka-shaped rows; no schema, so no jsonschema fallback either way.",
            "sliced: restlake_payload_json (the producer's bytes); to_json: the VARIANT written back "
            "(keys sorted, numbers normalised), the stream job's way before.",
        ],
    }


def markdown(doc: dict[str, Any]) -> str:
    p = doc["params"]
    sliced, baseline = doc["sliced_rows_per_s"], doc["to_json_rows_per_s"]
    return "\n".join(
        [
            f"### 10. Validation of a micro-batch: payload text sliced vs to_json ({p['records']:,} "
            f"records of ~1 KB, {p['master']}, {p['repetitions']} interleaved repetitions)",
            "",
            "| | rows/s (median) | ratio |",
            "|---|---:|---:|",
            f"| to_json of the VARIANT (baseline) | {fmt(baseline['median'])} | 1 |",
            f"| sliced by restlake_payload_json | {fmt(sliced['median'])} "
            f"| {fmt(doc['sliced_vs_to_json']['median'])} |",
            "",
            f"- records whose payload the slice refused (fell back to to_json): "
            f"{doc['records_the_slice_refused']:,}.",
        ]
    )
