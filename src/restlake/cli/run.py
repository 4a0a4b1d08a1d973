"""`restlake run` (one source, locally) and `restlake demo` (the bundled demo, end to end)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import typer

from restlake.cli import components, progress
from restlake.errors import RestlakeError

log = logging.getLogger(__name__)


def run(
    file: Path = typer.Option(..., "--file", "-f", exists=True, dir_okay=False, help="IngestionSource YAML."),
    until_caught_up: bool = typer.Option(
        False,
        "--until-caught-up",
        help="Fetch until the API has nothing new, stream until everything is committed, then exit 0.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as one JSON object."),
    master: str = typer.Option("local[2]", help="Spark master: local[N] or spark://host:port."),
    refetch: bool = typer.Option(
        False,
        "--refetch",
        help="Ignore stored ETags and watermarks and fetch everything again (same keys: nothing is doubled).",
    ),
) -> None:
    """Run one source on this machine, starting the local stack if it is not up.

    A file of several documents (a parent and its children, spec.parent) runs them together, parents
    first; the summary is then one line (one JSON object with --json) per source, in that order.
    """
    components.require("run", "restlake.fetcher", "restlake.jobs.spark")
    from restlake.cli.spark_settings import command_spark_settings
    from restlake.contracts.spec import load_sources
    from restlake.runtime.local import LocalRunner, resolve_endpoints
    from restlake.settings import StackSettings
    from restlake.stack.jars import spark_jars

    try:
        sources = load_sources(file)
        if len(sources) != 1 or sources[0].spec.parent is not None:
            _run_group(file, sources, until_caught_up, as_json, master, refetch)
            return
        source = sources[0]
        endpoints = resolve_endpoints()
        runner = LocalRunner(
            source,
            endpoints,
            jars=spark_jars(StackSettings().state_dir),
            master=master,
            spark_settings=command_spark_settings(),
            remember_fetch_state=not refetch,
        )
        title = f"restlake run {source.name}" + (" (until caught up)" if until_caught_up else "")
        try:
            with progress.live(lambda: [run_counters(runner)], title, as_json=as_json):
                if not until_caught_up:
                    runner.run_forever()
                    return
                summary = runner.run_until_caught_up().as_dict()
        finally:
            runner.close()
    except RestlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True))
    else:
        typer.echo(_human_summary(summary))
    if not summary["fetch_complete"]:
        raise typer.Exit(1)


def run_counters(runner: Any) -> progress.Counters:
    """Fetch and stream counters of one ``LocalRunner``, as the live display shows them."""
    layout = runner.layout
    counters = progress.fetcher_counters(runner.fetcher_metrics, runner.producer, layout.name, layout.topic)
    return progress.add_stream_counters(counters)


def _run_group(
    file: Path, sources: list, until_caught_up: bool, as_json: bool, master: str, refetch: bool
) -> None:
    """Several sources of one file (``runtime.local_group``); errors propagate to ``run``'s handler.

    One live display for the whole group, a row per source in run order (parents first): a child's
    row starts moving once its parent has landed.
    """
    from restlake.cli.spark_settings import command_spark_settings
    from restlake.contracts.parents import resolve_parents
    from restlake.runtime.local import resolve_endpoints
    from restlake.runtime.local_group import LocalGroup
    from restlake.settings import StackSettings
    from restlake.stack.jars import spark_jars

    resolve_parents(sources)  # a missing parent is refused before the local stack starts
    group = LocalGroup(
        sources,
        resolve_endpoints(),
        jars=spark_jars(StackSettings().state_dir),
        master=master,
        spark_settings=command_spark_settings(),
        remember_fetch_state=not refetch,
    )
    title = f"restlake run {file.name} ({len(group.runners)} sources)" + (
        " (until caught up)" if until_caught_up else ""
    )
    try:
        with progress.live(lambda: [run_counters(r) for r in group.runners], title, as_json=as_json):
            if not until_caught_up:
                group.run_forever()
                return
            summaries = [s.as_dict() for s in group.run_until_caught_up()]
    finally:
        group.close()
    for summary in summaries:
        typer.echo(json.dumps(summary, sort_keys=True) if as_json else _human_summary(summary))
    if not all(s["fetch_complete"] for s in summaries):
        raise typer.Exit(1)


def _human_summary(summary: dict) -> str:
    s = summary
    return (
        f"source {s['source']}: fetched {s['records_fetched']} records in {s['pages']} pages "
        f"({s['not_modified']} not modified, {s['bad_pages']} bad), produced {s['records_produced']}; "
        f"bronze {s['bronze_rows']} rows, postgres {s['postgres_rows']} rows, "
        f"quarantined {s['quarantined']} ({s['seconds']:.1f}s)"
    )


def demo() -> None:
    """Run the demo source against the bundled demo API, end to end, and check the counts match."""
    components.require("demo", "restlake.fetcher", "restlake.jobs.spark")
    from restlake.cli.spark_settings import command_spark_settings
    from restlake.runtime.demo import run_demo

    narrative = logging.getLogger().level > logging.DEBUG
    if narrative:
        # The demo prints its own narrative; per-batch INFO lines would bury it (use -v to see them).
        logging.getLogger().setLevel(logging.WARNING)
    try:
        ok = run_demo(
            echo=typer.echo,
            watch=lambda runner, title: progress.live(lambda: [run_counters(runner)], f"demo: {title}"),
            spark_settings=command_spark_settings(quiet=narrative),
        )
    except RestlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not ok:
        raise typer.Exit(1)
