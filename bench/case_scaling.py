"""Case 6, scaling: the fetcher from 1 to 50 sources in one process; the stream job over partitions/cores.

Sources: k sources (k = 1, 10, 50) in one fetcher process, each paging the whole dataset of one
shared demo API process into its own topic, concurrently on one event loop, one producer and one
HTTP session. Total records grow with k; ideal scaling keeps CPU per 1,000 records flat.

Partitions and cores: a topic with p partitions is preloaded with the same records, then the
stream job (subprocess, ``availableNow``, ``local[c]``, p = c = 1, 2, 4) drains it in several
micro-batches. Throughput = rows merged after the first batch ÷ time between the first and last
ledger commits, so JVM start-up and the first batch's one-off costs are left out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import psycopg

from bench.common import Context, fmt, timed
from bench.harness import StreamProcess, stream_config
from bench.sources import demo_api, demo_source
from restlake.fetcher.poller import SourceFetcher
from restlake.fetcher.producer import EnvelopeProducer
from restlake.kafka_admin import ensure_topic
from restlake.postgres import migrations
from restlake.stack.spark_cluster import SparkCluster

log = logging.getLogger("bench.scaling")


async def _fetch_all(fetchers: list[SourceFetcher]) -> list[Any]:
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(f.fetch_pass(session) for f in fetchers))


def sources_scaling(
    ctx: Context, base_url: str, records: int, counts: tuple[int, ...]
) -> list[dict[str, Any]]:
    out = []
    for k in counts:
        stamp = int(time.time())
        producer = EnvelopeProducer(ctx.kafka_bootstrap, client_id="bench-scaling")
        fetchers = []
        for i in range(k):
            topic = f"bench.scale.{stamp}.{i}"
            ensure_topic(ctx.kafka_bootstrap, topic, 1)
            fetchers.append(SourceFetcher(demo_source(f"bench-scale-{i}", base_url), producer, topic))
        with timed() as t:
            stats = asyncio.run(_fetch_all(fetchers))
        produced = sum(s.produced for s in stats)
        if produced != k * records:
            raise RuntimeError(f"{k} sources produced {produced}, expected {k * records}")
        out.append(
            {
                "sources": k,
                "records": produced,
                "wall_s": round(t["wall"], 2),
                "records_per_s": round(produced / t["wall"]),
                "cpu_s_per_1000": round(1000 * t["cpu"] / produced, 4),
            }
        )
        log.info("  %2d sources: %s", k, out[-1])
    return out


def preload(ctx: Context, base_url: str, topic: str, partitions: int, name: str) -> int:
    ensure_topic(ctx.kafka_bootstrap, topic, partitions)
    producer = EnvelopeProducer(ctx.kafka_bootstrap, client_id="bench-preload")
    stats = asyncio.run(_fetch_all([SourceFetcher(demo_source(name, base_url), producer, topic)]))
    return stats[0].produced


@dataclass(frozen=True)
class Layout:
    """Where the stream job runs: ``partitions`` Kafka partitions, and local cores or a standalone cluster."""

    label: str
    partitions: int
    cores: int
    standalone_workers: int = 0


def stream_scaling(
    ctx: Context, base_url: str, records: int, layouts: tuple[Layout, ...]
) -> list[dict[str, Any]]:
    migrations.apply(ctx.pg_dsn)
    out = []
    for layout in layouts:
        name = f"bench-scale-{layout.label}-{int(time.time())}"
        topic = f"restlake.{name}"
        produced = preload(ctx, base_url, topic, layout.partitions, name)
        config = stream_config(
            ctx,
            name,
            available_now=True,
            # Several batches, so the first (and its one-off costs) can be left out of the rate.
            max_offsets_per_trigger=max(1000, records // 5),
        )
        cluster: SparkCluster | None = None
        master, extra = f"local[{layout.cores}]", ()
        if layout.standalone_workers:
            cluster = SparkCluster(
                ctx.work_dir / f"spark-{name}",
                worker_cores=layout.cores // layout.standalone_workers,
                worker_memory="1g",
                workers=layout.standalone_workers,
            )
            cluster.start()
            master = cluster.master_url
            extra = (
                "--conf",
                f"spark.cores.max={layout.cores}",
                "--conf",
                "spark.executor.memory=768m",
            )
        job = StreamProcess(ctx, config, ctx.work_dir / f"stream-{name}.log", master=master, extra_args=extra)
        try:
            with timed() as t:
                job.start()
                code = job.wait(900)
        finally:
            if cluster is not None:
                cluster.stop()
        if code != 0:
            job.kill()
            raise RuntimeError(f"stream job for {layout.label} exited {code}; see {job.log_path}")
        with psycopg.connect(ctx.pg_dsn, autocommit=True) as conn:
            ledger = conn.execute(
                "SELECT batch_id, committed_at, rows_in FROM raw.ingest_batches"
                " WHERE source = %s ORDER BY batch_id",
                (name,),
            ).fetchall()
            row = conn.execute("SELECT count(*) FROM raw.api_events WHERE source = %s", (name,)).fetchone()
        landed = int(row[0]) if row else 0
        if landed != produced:
            raise RuntimeError(f"{layout.label}: {landed} rows in Postgres, {produced} produced")
        steady = None
        if len(ledger) >= 2:
            span = (ledger[-1][1] - ledger[0][1]).total_seconds()
            rows_after_first = sum(r[2] for r in ledger[1:])
            steady = round(rows_after_first / span) if span > 0 else None
        out.append(
            {
                "layout": layout.label,
                "partitions": layout.partitions,
                "spark_cores": layout.cores,
                "standalone_workers": layout.standalone_workers,
                "records": produced,
                "landed": landed,
                "batches": len(ledger),
                "rows_per_s_steady": steady,
                "job_wall_s_incl_startup": round(t["wall"], 1),
            }
        )
        log.info("  %s: %s", layout.label, out[-1])
    return out


def run(ctx: Context) -> dict[str, Any]:
    records = 2_000 if ctx.quick else 10_000
    stream_records = 20_000 if ctx.quick else 50_000
    counts = (1, 10, 50)
    layouts = (
        Layout("local-1", 1, 1),
        Layout("local-2", 2, 2),
        Layout("local-4", 4, 4),
        # What the chart deploys, in miniature: a master and two one-core workers, driver in client mode.
        Layout("standalone-2x1", 2, 2, standalone_workers=2),
    )
    with demo_api(["--records", str(records), "--growth-per-tick", "0", "--update-fraction", "0"]) as (
        _,
        url,
    ):
        sources = sources_scaling(ctx, url, records, counts)
    with demo_api(["--records", str(stream_records), "--growth-per-tick", "0", "--update-fraction", "0"]) as (
        _,
        url,
    ):
        stream = stream_scaling(ctx, url, stream_records, layouts)
    return {
        "params": {
            "records_per_source": records,
            "source_counts": list(counts),
            "stream_records": stream_records,
            "layouts": [layout.label for layout in layouts],
        },
        "sources": sources,
        "stream": stream,
        "notes": [
            "Sources share one demo API process (one core's worth of page rendering), which caps the "
            "aggregate rate; CPU per 1,000 records is the fetcher's own cost.",
            "Stream: p partitions with local[p]; the machine has 2 cores, so 4 oversubscribes. "
            "standalone-2x1: a local standalone master with two one-core workers (executors in their "
            "own JVMs, the driver in client mode), as on Kubernetes.",
        ],
    }


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "### 6. Scaling",
        "",
        f"Fetcher, one process, each source pages {doc['params']['records_per_source']:,} records:",
        "",
        "| sources | records | wall s | records/s | CPU s per 1,000 records |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in doc["sources"]:
        lines.append(
            f"| {r['sources']} | {fmt(r['records'])} | {fmt(r['wall_s'])} | {fmt(r['records_per_s'])} "
            f"| {fmt(r['cpu_s_per_1000'])} |"
        )
    lines += [
        "",
        f"Stream job draining {doc['params']['stream_records']:,} preloaded records (availableNow):",
        "",
        "| layout | Kafka partitions | Spark cores | batches | rows/s after the first batch "
        "| job wall s incl. start-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in doc["stream"]:
        lines.append(
            f"| {r.get('layout', 'local')} | {r['partitions']} | {r['spark_cores']} | {r['batches']} "
            f"| {fmt(r['rows_per_s_steady'])} | {fmt(r['job_wall_s_incl_startup'])} |"
        )
    return "\n".join(lines)
