"""Case 5, against dlt: dlt's rest_api source → Postgres versus ``restlake run --until-caught-up``.

Both land the same records of the same demo API process (link-header pages of 1,000) into the
bench stack's Postgres with one row per record (dlt ``write_disposition="merge"`` on ``id``;
restlake's upsert). Wall time is the whole command, start-up included (Python imports; for
restlake also the JVM and Spark start, Kafka, and the bronze Delta write dlt does not do). Peak
RSS is the maximum over time of the summed RSS of the command and all its descendants. CPU
seconds are counted per role, the command's own processes and the services both tools share (the
demo API, the stack's Postgres and, for restlake, Kafka), so the case says where each tool's
2-core budget goes: a wall-time ratio cannot be better than the CPU seconds allow. A service a
tool does not use (Kafka for dlt) shows what it uses idle.
dlt runs from its own venv (``bench/.venv-dlt``, pinned in ``bench/requirements-dlt.txt``),
created by this case on first use.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import BENCH_DIR, Context, class_archive_state, fmt, ratio, spread, summary
from bench.cpu_sampler import process_cpu, stack_processes
from bench.sources import demo_api, demo_document, write_source

log = logging.getLogger("bench.dlt")

DLT_VENV = BENCH_DIR / ".venv-dlt"


def ensure_dlt_venv() -> Path:
    python = DLT_VENV / "bin" / "python"
    stamp = DLT_VENV / ".installed"
    reqs = BENCH_DIR / "requirements-dlt.txt"
    if stamp.is_file() and stamp.read_text() == reqs.read_text():
        return python
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(DLT_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(reqs)], check=True)
    stamp.write_text(reqs.read_text())
    return python


def run_measured(
    cmd: list[str], env: dict[str, str], log_path: Path, services: dict[str, psutil.Process] | None = None
) -> dict[str, Any]:
    """Run ``cmd`` to completion; wall seconds, peak summed RSS of its process tree, CPU seconds per
    role (its own processes' and each of ``services``' with its children), stdout."""
    peak = 0
    peak_parts: dict[str, int] = {}
    # CPU seconds by (role, pid, start time): a process that exits keeps what it used up to its last
    # sample; a reused pid is another process.
    cpu_seen: dict[tuple[str, int, float], float] = {}
    services = services or {}
    # What the services' processes had used before the run, taken off what they used by its end.
    cpu_before = process_cpu(services)
    started = time.perf_counter()
    with log_path.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, cwd=log_path.parent)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak, peak_parts
            root = psutil.Process(proc.pid)
            while not done.is_set():
                parts: dict[str, int] = {}
                try:
                    tree = [root, *root.children(recursive=True)]
                except psutil.Error:
                    tree = []
                roles: dict[int, str] = {}
                for p in tree:
                    # One child exiting (or a zombie not yet reaped) between the listing and the read
                    # must not drop the whole sample.
                    try:
                        role = process_role(p, root)
                        roles[p.pid] = role
                        times = p.cpu_times()
                        cpu_seen[(role, p.pid, p.create_time())] = times.user + times.system
                        if role == "jvm" and roles.get(p.ppid()) == "jvm":
                            # A JVM's child that still reads as the JVM is a fork on its way to exec
                            # (a shell command): it shares the parent's pages, which would be counted twice.
                            continue
                        parts[role] = parts.get(role, 0) + p.memory_info().rss
                    except psutil.Error:
                        continue
                cpu_seen.update(process_cpu(services))
                total = sum(parts.values())
                if total > peak:
                    peak, peak_parts = total, parts
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = proc.communicate()
        done.set()
        sampler.join()
    wall = time.perf_counter() - started
    cpu_seen.update(process_cpu(services))
    cpu: dict[str, float] = {}
    for key, seconds in cpu_seen.items():
        cpu[key[0]] = cpu.get(key[0], 0.0) + seconds - cpu_before.get(key, 0.0)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} … exited {proc.returncode}; see {log_path}")
    return {
        "wall_s": wall,
        "peak_rss_mib": peak / 2**20,
        "peak_rss_parts_mib": {k: round(v / 2**20) for k, v in sorted(peak_parts.items())},
        "cpu_s": {k: round(v, 1) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])},
        "stdout": out.decode(errors="replace"),
    }


def process_role(proc: psutil.Process, root: psutil.Process) -> str:
    """Which part of a run a process is, so the peak RSS can be told apart: the command itself, a JVM,
    pyspark's Python workers, or another Python child (restlake's fetcher)."""
    if proc.pid == root.pid:
        return "command"
    cmdline = " ".join(proc.cmdline())
    if proc.name() == "java" or "/java " in f"{cmdline} ":
        return "jvm"
    if "pyspark.daemon" in cmdline or "pyspark.worker" in cmdline:
        return "python workers"
    return "other children"


def run(ctx: Context) -> dict[str, Any]:
    # The size: 1M records. One run each (a repetition costs minutes at 1M); BENCH_DLT_RECORDS
    # and BENCH_DLT_REPS change both for a longer, steadier measurement.
    n = int(os.environ.get("BENCH_DLT_RECORDS", "20000" if ctx.quick else "1000000"))
    reps = int(os.environ.get("BENCH_DLT_REPS", "1"))
    python_dlt = ensure_dlt_venv()
    samples: dict[str, list[dict[str, Any]]] = {"restlake": [], "dlt": []}
    restlake_cli = str(Path(sys.executable).parent / "restlake")
    with demo_api(
        ["--records", str(n), "--seed", "7", "--growth-per-tick", "0", "--update-fraction", "0"]
    ) as (
        api,
        base_url,
    ):
        services = {**stack_processes(), "demo API": psutil.Process(api.pid)}
        for rep in range(reps):
            order = ["restlake", "dlt"] if rep % 2 == 0 else ["dlt", "restlake"]
            for tool in order:
                tag = f"{tool}_{rep}_{int(time.time())}"
                if tool == "restlake":
                    name = f"bench-vs-dlt-{rep}-{int(time.time())}"
                    spec = write_source(ctx.work_dir / f"{name}.json", demo_document(name, base_url))
                    cmd = [restlake_cli, "run", "-f", str(spec), "--until-caught-up", "--json"]
                    result = run_measured(cmd, ctx.child_env(), ctx.work_dir / f"{tag}.log", services)
                    summary_doc = json.loads(result["stdout"].strip().splitlines()[-1])
                    result["rows"] = summary_doc.get("postgres_rows")
                    result["class_archive"] = class_archive_state(ctx.work_dir / f"{tag}.log")
                else:
                    dataset = f"bench_dlt_{rep}_{int(time.time())}"
                    cmd = [
                        str(python_dlt),
                        str(BENCH_DIR / "dlt_pipeline.py"),
                        base_url,
                        ctx.pg_dsn,
                        dataset,
                        str(ctx.work_dir / "dlt-pipelines"),
                    ]
                    result = run_measured(cmd, ctx.child_env(), ctx.work_dir / f"{tag}.log", services)
                    result["rows"] = json.loads(result["stdout"].strip().splitlines()[-1])["rows"]
                result.pop("stdout")
                if result["rows"] != n:
                    raise RuntimeError(f"{tool} landed {result['rows']} rows, expected {n}")
                log.info(
                    "  %-8s rep %d: %.1fs, peak RSS %.0f MiB",
                    tool,
                    rep + 1,
                    result["wall_s"],
                    result["peak_rss_mib"],
                )
                samples[tool].append(result)
    wall = {k: summary([r["wall_s"] for r in v]) for k, v in samples.items()}
    rss = {k: summary([r["peak_rss_mib"] for r in v]) for k, v in samples.items()}
    import importlib.metadata as md

    dlt_version = subprocess.run(
        [str(python_dlt), "-c", "import importlib.metadata as m; print(m.version('dlt'))"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "params": {
            "records": n,
            "reps": reps,
            "per_page": 1000,
            "dlt": dlt_version,
            "restlake": md.version("restlake"),
        },
        "wall_s": wall,
        "peak_rss_mib": rss,
        "peak_rss_parts_mib": {k: [r["peak_rss_parts_mib"] for r in v] for k, v in samples.items()},
        "cpu_s": {k: [r["cpu_s"] for r in v] for k, v in samples.items()},
        "records_per_s": {k: summary([n / r["wall_s"] for r in v]) for k, v in samples.items()},
        "ratios": {
            "wall_restlake_vs_dlt": ratio(wall["restlake"]["median"], wall["dlt"]["median"]),
            "rss_restlake_vs_dlt": ratio(rss["restlake"]["median"], rss["dlt"]["median"]),
        },
        "notes": [
            f"{n:,} records, {reps} run(s) of each tool (min = median = max with one run).",
            "Wall time includes start-up: interpreter, imports; restlake also starts a JVM and Spark "
            "(local[2]) and writes bronze Delta besides Postgres, which dlt does not do.",
            "dlt: rest_api source, header_link paginator, write_disposition=merge on id, default "
            "loader file format; restlake: `restlake run -f … --until-caught-up` (one fetch pass, "
            "then an availableNow stream over everything).",
            "No warm-up run (each costs minutes); with several runs they alternate restlake/dlt.",
            *_parts_note(samples["restlake"]),
            *_cpu_notes(samples, n),
            _archive_note(samples["restlake"]),
        ],
    }


def markdown(doc: dict[str, Any]) -> str:
    p, w, m, r = doc["params"], doc["wall_s"], doc["peak_rss_mib"], doc["ratios"]
    return "\n".join(
        [
            f"### 5. Against dlt {p['dlt']}: {p['records']:,} records from the demo API into Postgres",
            "",
            "| | restlake run --until-caught-up | dlt rest_api → postgres | restlake ÷ dlt |",
            "|---|---:|---:|---:|",
            f"| wall s (incl. start-up) | {spread(w['restlake'])} | {spread(w['dlt'])} "
            f"| {fmt(r['wall_restlake_vs_dlt'])} |",
            f"| peak RSS MiB (process tree) | {spread(m['restlake'])} | {spread(m['dlt'])} "
            f"| {fmt(r['rss_restlake_vs_dlt'])} |",
            *_cpu_row(doc),
        ]
    )


def _cpu_row(doc: dict[str, Any]) -> list[str]:
    """CPU seconds of the first run of each, services included (absent from results before them)."""
    cpu = doc.get("cpu_s") or {}
    if not cpu.get("restlake") or not cpu.get("dlt"):
        return []
    mine, theirs = sum(cpu["restlake"][0].values()), sum(cpu["dlt"][0].values())
    return [
        f"| CPU s, services included (first run) | {fmt(round(mine, 1))} | {fmt(round(theirs, 1))} "
        f"| {fmt(ratio(mine, theirs))} |"
    ]


def _archive_note(runs: list[dict[str, Any]]) -> str:
    states = ", ".join(str(r.get("class_archive", "unknown")) for r in runs)
    return (
        f"restlake's class archive, per run: {states} (restlake.jobs.spark.class_archive; a run that "
        "records it pays its dump, a pause of seconds and a few hundred MiB more at its peak)."
    )


def _parts_note(runs: list[dict[str, Any]]) -> list[str]:
    """restlake's peak RSS split by process role (first run), so the table says where the memory is."""
    if not runs:
        return []
    parts = runs[0]["peak_rss_parts_mib"]
    split = ", ".join(f"{role} {mib:,}" for role, mib in sorted(parts.items(), key=lambda kv: -kv[1]))
    return [f"restlake's peak RSS by process, MiB (first run): {split}."]


def _cpu_notes(samples: dict[str, list[dict[str, Any]]], records: int) -> list[str]:
    """Each tool's CPU seconds by role (first run), and the wall time those seconds allow at best."""
    notes = []
    cores = psutil.cpu_count() or 1
    for tool, runs in samples.items():
        if not runs or not runs[0].get("cpu_s"):
            continue
        cpu = runs[0]["cpu_s"]
        total = sum(cpu.values())
        split = ", ".join(f"{role} {seconds:,.1f}" for role, seconds in cpu.items())
        notes.append(
            f"{tool}'s CPU seconds (first run): {total:,.1f} in all, {total / records * 1e6:,.0f} µs a "
            f"record ({split}); on {cores} cores no faster than {total / cores:,.1f} s of wall."
        )
    return notes
