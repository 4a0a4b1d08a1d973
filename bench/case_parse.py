"""Case 10, ``parse``: the stream job's validation of a micro-batch, three ways of reading a record.

- ``to_json`` (the baseline): ``from_json`` parses the envelope, payload as VARIANT, and the
  payload's text is the VARIANT written back, as the job did first;
- ``sliced``: the same parse, the payload's text sliced out of the Kafka value by restlake's
  ``restlake_payload_json`` (jvm/spark-udfs): what the job did until the one pass;
- ``one_pass``: ``restlake_envelope_json`` reads envelope and payload bytes in one pass, no
  VARIANT: what the job does when nothing reads the VARIANT;
- ``one_pass_variant``: the same, the VARIANT parsed from the sliced payload text: what the job
  does for a source with typed columns, expectations or a JSON Schema.

Each runs ``validation.validate`` over the same Kafka-shaped rows (the drain case's ~1 KB
envelopes, as its producer writes them) read from Parquet, into Spark's ``noop`` sink,
interleaved in one session: only the validation step, no Kafka, Delta or Postgres. Figure:
rows/s of each, and their paired ratios.
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
    if not (validation.payload_function(spark) and validation.envelope_function(spark)):
        raise RuntimeError("restlake's Spark functions are not on the classpath: run `restlake stack jars`")

    def refused_by(function: str) -> int:
        return kafka.where(F.call_function(function, F.col("value")).isNull()).count()

    refused = refused_by(validation.PAYLOAD_FUNCTION)
    refused_whole = refused_by(validation.ENVELOPE_FUNCTION)

    def variant(*, slice_payload: bool, payload_variant: bool, one_pass: bool) -> Any:
        def once() -> float:
            frame = validation.validate(
                kafka,
                source=SOURCE,
                json_schema=None,
                slice_payload=slice_payload,
                payload_variant=payload_variant,
                one_pass=one_pass,
            )
            started = time.perf_counter()
            frame.write.format("noop").mode("overwrite").save()
            return n / (time.perf_counter() - started)

        return once

    rates = interleaved(
        {
            "one_pass": variant(slice_payload=True, payload_variant=False, one_pass=True),
            "one_pass_variant": variant(slice_payload=True, payload_variant=True, one_pass=True),
            "sliced": variant(slice_payload=True, payload_variant=True, one_pass=False),
            "to_json": variant(slice_payload=False, payload_variant=True, one_pass=False),
        },
        reps=reps,
    )
    kafka.unpersist()
    return {
        "params": {"records": n, "repetitions": reps, "master": "local[2]"},
        "sliced_rows_per_s": summary(rates["sliced"]),
        "to_json_rows_per_s": summary(rates["to_json"]),
        "sliced_vs_to_json": paired_ratios(rates["sliced"], rates["to_json"]),
        "one_pass_rows_per_s": summary(rates["one_pass"]),
        "one_pass_vs_to_json": paired_ratios(rates["one_pass"], rates["to_json"]),
        "one_pass_vs_sliced": paired_ratios(rates["one_pass"], rates["sliced"]),
        "one_pass_variant_rows_per_s": summary(rates["one_pass_variant"]),
        "one_pass_variant_vs_to_json": paired_ratios(rates["one_pass_variant"], rates["to_json"]),
        "one_pass_variant_vs_sliced": paired_ratios(rates["one_pass_variant"], rates["sliced"]),
        "records_the_slice_refused": refused,
        "records_the_one_pass_refused": refused_whole,
        "notes": [
            "validation.validate (envelope from_json, payload text, quarantine reasons) into the noop "
            "sink, over cached Kafka-shaped rows; no schema, so no jsonschema fallback either way.",
            "sliced: restlake_payload_json (the producer's bytes); to_json: the VARIANT written back "
            "(keys sorted, numbers normalised), the stream job's way before.",
            "one_pass: restlake_envelope_json reads envelope and payload bytes at once and no VARIANT "
            "is built (the job's way when nothing reads the VARIANT); from_json only for what it refuses. "
            "one_pass_variant: the same, the VARIANT parsed from the sliced payload (the job's way with "
            "typed columns, expectations or a JSON Schema).",
        ],
    }


def markdown(doc: dict[str, Any]) -> str:
    p = doc["params"]
    sliced, baseline = doc["sliced_rows_per_s"], doc["to_json_rows_per_s"]
    return "\n".join(
        [
            f"### 10. Validation of a micro-batch: one pass vs from_json ({p['records']:,} "
            f"records of ~1 KB, {p['master']}, {p['repetitions']} interleaved repetitions)",
            "",
            "| | rows/s (median) | ratio |",
            "|---|---:|---:|",
            f"| to_json of the VARIANT (baseline) | {fmt(baseline['median'])} | 1 |",
            f"| from_json, payload sliced by restlake_payload_json | {fmt(sliced['median'])} "
            f"| {fmt(doc['sliced_vs_to_json']['median'])} |",
            *(
                [
                    f"| one pass by restlake_envelope_json, no VARIANT | "
                    f"{fmt(doc['one_pass_rows_per_s']['median'])} "
                    f"| {fmt(doc['one_pass_vs_to_json']['median'])} "
                    f"({fmt(doc['one_pass_vs_sliced']['median'])}x the sliced row) |",
                    f"| one pass, VARIANT parsed from the sliced text | "
                    f"{fmt(doc['one_pass_variant_rows_per_s']['median'])} "
                    f"| {fmt(doc['one_pass_variant_vs_to_json']['median'])} "
                    f"({fmt(doc['one_pass_variant_vs_sliced']['median'])}x the sliced row) |",
                ]
                if "one_pass_rows_per_s" in doc
                else []
            ),
            "",
            f"- records whose payload the slice refused (fell back to to_json): "
            f"{doc['records_the_slice_refused']:,}"
            + (
                "; records the one pass refused (went to from_json): "
                f"{doc['records_the_one_pass_refused']:,}."
                if "records_the_one_pass_refused" in doc
                else "."
            ),
        ]
    )
