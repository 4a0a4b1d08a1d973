"""`restlake fetcher`: run the fetcher service for one or more IngestionSource files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from restlake.cli import components, progress
from restlake.errors import RestlakeError
from restlake.redaction import redact_log_handlers

if TYPE_CHECKING:
    from restlake.fetcher.poller import PassStats
    from restlake.fetcher.service import FetcherService

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Poll REST APIs into Kafka, with fetch state in Postgres."""
    # A callback keeps `run` a sub-command: a Typer with one command would run it directly.


@app.command()
def run(
    files: list[Path] = typer.Option(
        ...,
        "--file",
        "-f",
        exists=True,
        dir_okay=False,
        help="IngestionSource YAML; repeat for more sources.",
    ),
    once: bool = typer.Option(False, "--once", help="One pass per source, then exit (1 if any failed)."),
    ops_port: int | None = typer.Option(
        None, help="Port of /metrics, /healthz, /readyz (default RESTLAKE_FETCHER_OPS_PORT or 9108)."
    ),
    no_ops: bool = typer.Option(False, "--no-ops", help="Do not serve the ops endpoints."),
    create_topics: bool = typer.Option(
        True, help="Create missing topics (<topic> and <topic>.dlq); local runs only, off on Kubernetes."
    ),
    migrate: bool = typer.Option(True, help="Apply the SQL migrations before starting."),
    json_logs: bool = typer.Option(False, "--json-logs", help="One JSON object per log line."),
) -> None:
    """Run the fetcher until SIGTERM/SIGINT: finish current pages, flush Kafka, save state, exit 0."""
    components.require("fetcher run", "restlake.fetcher")
    from restlake.contracts.spec import load_sources
    from restlake.fetcher.logformat import use_json_logs
    from restlake.fetcher.producer import EnvelopeProducer
    from restlake.fetcher.service import FetcherService
    from restlake.fetcher.settings import FetcherSettings
    from restlake.fetcher.state import PostgresStateStore
    from restlake.postgres import migrations
    from restlake.settings import KafkaSettings, PostgresSettings

    if json_logs:
        use_json_logs(logging.getLogger().level or logging.INFO)
    elif not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    redact_log_handlers()
    try:
        sources = [source for file in files for source in load_sources(file)]
        kafka, pg = KafkaSettings(), PostgresSettings()
        settings = FetcherSettings()
        if no_ops:
            settings = settings.model_copy(update={"ops_port": None})
        elif ops_port is not None:
            settings = settings.model_copy(update={"ops_port": ops_port})
        if migrate:
            migrations.apply(pg.dsn)
        producer = EnvelopeProducer(kafka.bootstrap, client_id="restlake-fetcher")
        service = FetcherService(
            sources,
            producer=producer,
            state_store=PostgresStateStore(pg.dsn),
            settings=settings,
            topic_prefix=kafka.topic_prefix,
            kafka_bootstrap=kafka.bootstrap,
            create_topics=create_topics,
            topic_partitions=kafka.partitions,
        )
        # Live progress for one pass at a terminal; a long-running service has /metrics instead.
        with progress.live(lambda: _counters(service), "restlake fetcher run --once", enabled=once):
            results = asyncio.run(_serve(service, once=once))
    except RestlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if once:
        summary = {name: [s.as_dict() for s in passes] for name, passes in results.items()}
        typer.echo(json.dumps(summary, sort_keys=True, default=str))
        if not all(p.complete for passes in results.values() for p in passes):
            raise typer.Exit(1)


def _counters(service: FetcherService) -> list[progress.Counters]:
    return [
        progress.fetcher_counters(service.metrics, service.producer, f.name, f.topic)
        for f in service.fetchers
    ]


async def _serve(service: FetcherService, *, once: bool) -> dict[str, list[PassStats]]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, service.request_stop)
    return await service.run(once=once)
