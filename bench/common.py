"""What every benchmark case shares: the run context, timing statistics, interleaving, results files.

Every figure the suite reports is a ratio against a baseline measured in the same run on the
same data, with the variants interleaved (ABAB, rotated per repetition) so that a neighbour's
build on this shared machine slows every variant alike instead of faking a winner.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
STATE_DIR = BENCH_DIR / ".state"


@dataclass
class Context:
    """The stack and settings one suite run shares between its cases."""

    quick: bool
    kafka_bootstrap: str
    pg_dsn: str
    lake_root: str
    jars: list[Path]
    work_dir: Path
    jars_dir: Path | None = None
    _spark: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def spark(self) -> Any:
        """One local[2] session for the cases that run Spark in-process (built on first use)."""
        if self._spark is None:
            from restlake.jobs.spark.session import build_spark

            # The sink case caches 1M rows of ~1 KB for the JDBC writer: the default 1 GiB heap is not enough.
            self._spark = build_spark(
                "restlake-bench", jars=self.jars, master="local[2]", extra_conf={"spark.driver.memory": "6g"}
            )
        return self._spark

    def close(self) -> None:
        if self._spark is not None:
            try:
                self._spark.stop()
            except Exception as exc:  # a case that killed the JVM must not cost the suite its report
                logging.getLogger("bench").warning("in-process Spark did not stop cleanly: %s", exc)
            self._spark = None

    def child_env(self) -> dict[str, str]:
        """Environment for subprocesses (stream job, `restlake run`): the bench stack, not the dev one."""
        return {
            **os.environ,
            "RESTLAKE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "RESTLAKE_PG_DSN": self.pg_dsn,
            "RESTLAKE_LAKE_ROOT": self.lake_root,
            "RESTLAKE_SPARK_JARS": os.pathsep.join(str(j) for j in self.jars),
            "RESTLAKE_SPARK_LOG_LEVEL": "ERROR",
            **({"RESTLAKE_JARS_DIR": str(self.jars_dir)} if self.jars_dir is not None else {}),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
        }


# -- statistics -----------------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and the raw values (rounded) of one variant's repetitions."""
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "values": []}
    return {
        "n": len(values),
        "median": _round(statistics.median(values)),
        "min": _round(min(values)),
        "max": _round(max(values)),
        "values": [_round(v) for v in values],
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Per-repetition ratios a[i]/b[i] (measured back to back, so neighbours' noise mostly cancels)."""
    values = [x / y for x, y in zip(a, b, strict=False) if y]
    return summary(values)


def _round(value: float) -> float:
    return float(f"{value:.4g}") if abs(value) < 1e6 else round(value)


def interleaved(
    variants: dict[str, Callable[[], float]], *, reps: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run each variant ``warmup + reps`` times, rotating the order every round; drop the warm-ups.

    A variant returns its measurement (e.g. rows/s). Rotating (ABC, BCA, CAB, …) keeps a
    systematic "the first one pays for a cold cache" effect out of the medians.
    """
    names = list(variants)
    out: dict[str, list[float]] = {n: [] for n in names}
    for round_no in range(warmup + reps):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            value = variants[name]()
            label = "warm-up" if round_no < warmup else f"rep {round_no - warmup + 1}/{reps}"
            log.info("  %-28s %s: %.4g", name, label, value)
            if round_no >= warmup:
                out[name].append(value)
    return out


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """``with timed() as t: …`` then ``t["wall"]`` and ``t["cpu"]`` (this process, all threads)."""
    out: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield out
    finally:
        out["wall"] = time.perf_counter() - wall
        out["cpu"] = time.process_time() - cpu


# -- machine --------------------------------------------------------------------------------------


def _first_line(cmd: list[str]) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None


def machine_info(ctx: Context | None) -> dict[str, Any]:
    """The machine and the versions of everything measured, written into every result file."""
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        mem_gib = round(kib / 1024 / 1024, 1)
    except (OSError, AttributeError):
        pass
    info: dict[str, Any] = {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": _first_line(["java", "-version"]),
    }
    try:
        import pyspark

        info["spark"] = pyspark.__version__
    except ImportError:
        info["spark"] = None
    info["kafka"] = _kafka_version(ctx)
    if ctx is not None:
        try:
            import psycopg

            with psycopg.connect(ctx.pg_dsn) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                info["postgres"] = row[0] if row else None
        except Exception as exc:  # the version is informative only; never fail a run over it
            info["postgres"] = f"unknown ({type(exc).__name__})"
    try:
        import confluent_kafka

        info["confluent_kafka"] = confluent_kafka.version()[0]
        info["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    return info


def _kafka_version(ctx: Context | None) -> str | None:
    if ctx is None or not ctx.jars:
        return None
    # The broker's jars live beside the Spark bundle in the same cache: <jars>/kafka/classpath.txt.
    manifest = ctx.jars[0]
    for parent in manifest.parents:
        candidate = parent / "kafka" / "classpath.txt"
        if candidate.is_file():
            found = re.search(r"kafka_2\.\d+/([0-9][^/]*)/", candidate.read_text())
            return found.group(1) if found else None
    return None


# -- results --------------------------------------------------------------------------------------


def write_result(case: str, ctx: Context, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "case": case,
        "quick": ctx.quick,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(ctx),
        **payload,
        "notes": payload.get("notes", []),
    }
    path = RESULTS_DIR / f"{case}.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    log.info("wrote %s", path.relative_to(REPO_DIR))
    return path


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def spread(stat: dict[str, Any]) -> str:
    """``median (min..max)`` of a summary, the way every table cell shows a measurement."""
    if not stat or stat.get("median") is None:
        return "-"
    if stat.get("n", 0) <= 1:
        return fmt(stat["median"])
    return f"{fmt(stat['median'])} ({fmt(stat['min'])}..{fmt(stat['max'])})"


@dataclass
class BackgroundPoller:
    """A daemon thread running ``_run`` from ``start`` until ``stop``; ``_run`` loops on
    ``self._stop``, waiting with ``self._stop.wait(interval)`` so that ``stop`` ends it at once."""

    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        raise NotImplementedError


def class_archive_state(log_path: Path) -> str:
    """How the run's JVM started (``spark session ready … class_archive=``): ``mapped`` an archive an
    earlier run wrote, or ``writing`` one, which costs this run the dump (a pause of seconds and
    the archive's size in memory): the first run on a machine, or after a jar or JDK changed."""
    return class_archive_in(log_path.read_text(errors="replace"))


def class_archive_in(log_text: str) -> str:
    """``class_archive_state`` of a driver's log text (the first session it logs)."""
    found = re.search(r"spark session ready .*class_archive=(\w+)", log_text)
    return found.group(1) if found else "unknown"
