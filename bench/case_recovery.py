"""Case 4, recovery: SIGKILL the stream driver under load, restart it, time the way back, count duplicates.

The pipeline runs at ~1,000 events/s. After a warm-up, the lag (records the fetcher published
that are not yet visible in Postgres) is sampled to learn its steady-state envelope; then the
driver's whole process group (Python and JVM) gets SIGKILL and a new driver is started at once on
the same checkpoint. Recovery time = from the kill until the lag is back within the steady-state
envelope (its maximum before the kill), with the load still on. After the load stops, the
pipeline must drain to zero lag, with zero duplicates and zero missing records in Postgres and
zero duplicate keys in bronze.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime
from typing import Any

import psycopg

from bench.common import Context, class_archive_in, fmt
from bench.harness import Pipeline

log = logging.getLogger("bench.recovery")


def run(ctx: Context) -> dict[str, Any]:
    rate = 1000.0
    warmup, baseline_s = (10.0, 10.0) if ctx.quick else (20.0, 20.0)
    name = f"bench-recovery-{int(time.time())}"
    pipe = Pipeline(ctx, name, rate)
    try:
        pipe.start_stream()
        pipe.wait_stream_ready()
        pipe.start_source()
        time.sleep(warmup)
        before: list[int] = []
        t_end = time.monotonic() + baseline_s
        while time.monotonic() < t_end:
            time.sleep(0.5)
            before.append(pipe.lag())
        envelope = max(before)
        assert pipe.stream is not None
        log_offset = pipe.stream.log_path.stat().st_size
        killed_wall = time.time()
        killed_at = time.monotonic()
        pipe.stream.kill()
        log.info("recovery: SIGKILLed the driver (lag envelope before: %s records)", envelope)
        pipe.stream.start()
        peak, recovered_s, first_batch_s = 0, None, None
        after: list[tuple[float, int]] = []
        with psycopg.connect(ctx.pg_dsn, autocommit=True) as conn:
            while time.monotonic() - killed_at < 240:
                time.sleep(0.5)
                lag = pipe.lag()
                since = time.monotonic() - killed_at
                after.append((round(since, 1), lag))
                peak = max(peak, lag)
                if first_batch_s is None:
                    # Committed after the kill, by the new driver: the killed one may have committed
                    # a batch between the count above and the kill (a batch every ~0.5 s at this
                    # rate), which once read as a recovery in 0.5 s. No driver commits within a
                    # second of its start (its JVM alone takes longer), so the margin is safe.
                    row = conn.execute(
                        "SELECT count(*) FROM raw.ingest_batches"
                        " WHERE source = %s AND committed_at > to_timestamp(%s)",
                        (name, killed_wall + 1.0),
                    ).fetchone()
                    if row and int(row[0]) > 0:
                        first_batch_s = since
                if first_batch_s is not None and lag <= envelope:
                    recovered_s = since
                    break
        restart = restart_laps(
            pipe.stream.log_path.read_bytes()[log_offset:].decode(errors="replace"), killed_wall
        )
        pipe.stop_source()
        drained = pipe.drain(180.0)
        counts = pipe.postgres_counts()
        bronze = pipe.bronze_duplicates()
        return {
            "params": {"rate_per_s": rate, "warmup_s": warmup, "baseline_s": baseline_s},
            "lag_envelope_before_kill": envelope,
            "lag_peak_after_kill": peak,
            "first_batch_after_kill_s": round(first_batch_s, 1) if first_batch_s is not None else None,
            "recovered_s": round(recovered_s, 1) if recovered_s is not None else None,
            "drained_to_zero_lag": drained,
            "restart": restart,
            "postgres": counts,
            "bronze": bronze,
            "lag_trace": after[:: max(1, len(after) // 60)],
            "notes": [
                "recovered_s = SIGKILL until lag is back within its pre-kill maximum, load still on; "
                "it includes the new driver's JVM and Spark start-up (first_batch_after_kill_s).",
                "PG duplicates cannot exist by the unique key; the meaningful counts are missing "
                "records and bronze duplicate idempotency keys (replayed batch written twice).",
                "restart: seconds from the kill to each step of the new driver, from its log; "
                "class_archive = mapped when its JVM started from an archive an earlier driver wrote "
                "(restlake.jobs.spark.class_archive), which a driver writes after its first batch "
                "with records (or as it exits, without jcmd).",
            ],
        }
    finally:
        pipe.close()


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", re.MULTILINE)


def restart_laps(log_text: str, killed_wall: float) -> dict[str, Any]:
    """Seconds from the kill to the restarted driver's session, query and first batch, from its log."""

    def seconds_to(marker: str) -> float | None:
        for line in log_text.splitlines():
            stamp = _LOG_TIME.match(line)
            if stamp and marker in line:
                at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                return round(at - killed_wall, 1)
        return None

    return {
        "session_ready_s": seconds_to("spark session ready"),
        "query_started_s": seconds_to("stream started"),
        "first_batch_done_s": seconds_to("batch done"),
        "class_archive": class_archive_in(log_text),
    }


def markdown(doc: dict[str, Any]) -> str:
    pg, br = doc["postgres"], doc["bronze"]
    return "\n".join(
        [
            f"### 4. Recovery: SIGKILL of the stream driver at {fmt(doc['params']['rate_per_s'])} events/s",
            "",
            "| lag before kill (max) | peak lag | first batch after kill s | back to steady lag s "
            "| drained to 0 lag | PG rows / expected | PG duplicates | PG missing | bronze duplicate keys |",
            "|---:|---:|---:|---:|---|---:|---:|---:|---:|",
            f"| {fmt(doc['lag_envelope_before_kill'])} | {fmt(doc['lag_peak_after_kill'])} "
            f"| {fmt(doc['first_batch_after_kill_s'])} | {fmt(doc['recovered_s'])} "
            f"| {'yes' if doc['drained_to_zero_lag'] else 'no'} | {fmt(pg['rows'])} / {fmt(pg['expected'])} "
            f"| {pg['duplicates']} | {pg['missing']} | {br['duplicates']} |",
            *_restart_note(doc.get("restart")),
        ]
    )


def _restart_note(restart: dict[str, Any] | None) -> list[str]:
    if not restart:
        return []
    return [
        "",
        f"- the new driver, seconds after the kill: session {fmt(restart['session_ready_s'])}, query started "
        f"{fmt(restart['query_started_s'])}, first batch done {fmt(restart['first_batch_done_s'])}; "
        f"class archive: {restart['class_archive']}.",
    ]
