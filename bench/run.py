"""restlake's benchmark suite: ``python -m bench.run [--quick] [--only CASE …] [--keep-stack]``.

Starts its own local stack (Kafka, Postgres) under ``bench/.state/``, reusing the project's jar
cache, runs the cases in order, writes ``bench/results/<case>.json`` and regenerates
``bench/results/RESULTS.md`` from every result file present (so ``--only`` refreshes one case
and keeps the others). Not part of ``make test``: it measures, it does not assert speed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # `python bench/run.py`: make the repository root importable so `bench.*` resolves.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO_DIR, RESULTS_DIR, STATE_DIR, Context, machine_info, write_result

log = logging.getLogger("bench")

# name -> module; the order is the priority order of the suite.
CASES: dict[str, str] = {
    "sink": "bench.case_sink",
    "fetcher": "bench.case_fetcher",
    "e2e": "bench.case_e2e",
    "recovery": "bench.case_recovery",
    "dlt": "bench.case_dlt",
    "scaling": "bench.case_scaling",
    "drain": "bench.case_drain",
    "snowflake": "bench.case_snowflake",
    "maintenance": "bench.case_maintenance",
    "parse": "bench.case_parse",
}


def jars_dir() -> Path:
    """The project's jar cache: RESTLAKE_JARS_DIR, else the checkout's .restlake/jars."""
    env = os.environ.get("RESTLAKE_JARS_DIR")
    return Path(env) if env else REPO_DIR / ".restlake" / "jars"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Small sizes, few repetitions (~3 min).")
    parser.add_argument("--only", nargs="+", choices=list(CASES), help="Run only these cases.")
    parser.add_argument("--keep-stack", action="store_true", help="Leave the bench stack running after.")
    parser.add_argument("--report-only", action="store_true", help="Only regenerate RESULTS.md.")
    parser.add_argument(
        "--check",
        action="store_true",
        help="Import every case and validate the specs and stream configs they build; start nothing.",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("py4j", "restlake", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    if args.report_only:
        write_markdown()
        return 0
    if args.check:
        return check()

    from restlake.stack.jars import spark_jars
    from restlake.stack.manager import LocalStack

    os.environ.setdefault("RESTLAKE_SPARK_LOG_LEVEL", "ERROR")
    state = STATE_DIR / "stack"
    stack = LocalStack(state, jars_dir=jars_dir())
    started = time.monotonic()
    endpoints = stack.up()
    # One scratch folder per run (a second `--only` run alongside must not wipe this one's).
    shutil.rmtree(STATE_DIR / "work", ignore_errors=True) if not args.keep_stack else None
    work = STATE_DIR / "work" / str(os.getpid())
    work.mkdir(parents=True)
    ctx = Context(
        quick=args.quick,
        kafka_bootstrap=endpoints.kafka_bootstrap,
        pg_dsn=endpoints.pg_dsn,
        lake_root=endpoints.lake_root,
        jars=spark_jars(jars_dir=jars_dir()),
        work_dir=work,
        jars_dir=jars_dir().absolute(),
    )
    log.info("bench stack up in %.1fs; machine %s", time.monotonic() - started, machine_info(None)["cpu"])
    failed: list[str] = []
    try:
        for name in args.only or list(CASES):
            case_started = time.monotonic()
            log.info("=== case %s (%s) ===", name, "quick" if args.quick else "full")
            try:
                module = importlib.import_module(CASES[name])
                payload: dict[str, Any] = module.run(ctx)
            except Exception:
                log.exception("case %s failed", name)
                failed.append(name)
                continue
            payload["case_seconds"] = round(time.monotonic() - case_started, 1)
            write_result(name, ctx, payload)
            log.info("=== case %s done in %.0fs ===", name, payload["case_seconds"])
    finally:
        ctx.close()
        if not args.keep_stack:
            # Its data is scratch (the figures are in bench/results): every case writes new sources,
            # and kept from run to run the stack grew to 30 GB and filled the disk mid-run.
            stack.down(purge=True)
    write_markdown()
    log.info("suite finished in %.0fs%s", time.monotonic() - started, f"; FAILED: {failed}" if failed else "")
    return 1 if failed else 0


def check() -> int:
    """What `make test` runs of the suite: every case imports, and every spec and stream-job config
    the cases build passes the same validation a run would apply (tests cannot import ``bench``, and
    a spec rule tightened since the last benchmark broke every case once without a test noticing).
    """
    from pydantic import ValidationError

    from bench.case_fetcher import PER_PAGE
    from bench.harness import stream_config
    from bench.sources import demo_source
    from restlake.contracts.stream_job import StreamJobConfig
    from restlake.errors import RestlakeError

    problems: list[str] = []
    for module_name in CASES.values():
        try:
            importlib.import_module(module_name)
        except Exception as exc:
            problems.append(f"{module_name}: import failed: {type(exc).__name__}: {exc}")
    base_url = "http://127.0.0.1:1"
    variants: dict[str, dict[str, Any]] = {
        "defaults": {},
        "fetcher case": {"per_page": PER_PAGE},
        "incremental": {"incremental": True},
        "partitions": {"partitions": 4},
    }
    for label, kwargs in variants.items():
        try:
            demo_source(f"bench-check-{label.replace(' ', '-')}", base_url, **kwargs)
        except (RestlakeError, ValidationError) as exc:
            problems.append(f"demo source ({label}): {exc}")
    ctx = Context(
        quick=True,
        kafka_bootstrap="127.0.0.1:1",
        pg_dsn="postgresql://bench@127.0.0.1:1/bench",
        lake_root=str(STATE_DIR / "check-lake"),
        jars=[],
        work_dir=STATE_DIR / "check",
    )
    try:
        StreamJobConfig.model_validate(stream_config(ctx, "bench-check"))
    except ValidationError as exc:
        problems.append(f"stream config: {exc}")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(
        f"bench check: {len(CASES)} cases, {len(variants)} specs, 1 stream config: "
        + ("ok" if not problems else f"{len(problems)} problem(s)")
    )
    return 1 if problems else 0


def write_markdown() -> Path:
    """RESULTS.md from every results/<case>.json present, in suite order."""
    sections: list[str] = []
    machine: dict[str, Any] | None = None
    for name, module_name in CASES.items():
        path = RESULTS_DIR / f"{name}.json"
        if not path.is_file():
            sections.append(f"### {name}\n\nnot measured in this results set.")
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        machine = machine or doc.get("machine")
        module = importlib.import_module(module_name)
        mode = " — `--quick` run (small sizes, not representative)" if doc.get("quick") else ""
        section = module.markdown(doc) + "\n"
        if mode:
            section = section.replace("\n", f"{mode}\n", 1)
        notes = doc.get("notes") or []
        if notes:
            section += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
        section += f"\n_measured {doc.get('finished_at')}, case took {doc.get('case_seconds')} s_\n"
        sections.append(section)
    head = ["# restlake benchmark results", ""]
    if machine:
        head.append(
            f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('memory_gib')} GiB; "
            f"Python {machine.get('python')}, {machine.get('java')}, Spark {machine.get('spark')}, "
            f"Kafka {machine.get('kafka')}, PostgreSQL {machine.get('postgres')}, "
            f"librdkafka {machine.get('librdkafka')}. Shared machine: other jobs ran alongside, so "
            "compare ratios (measured interleaved in the same run), not absolute numbers."
        )
        head.append("")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "RESULTS.md"
    out.write_text("\n".join(head) + "\n" + "\n\n".join(sections) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
