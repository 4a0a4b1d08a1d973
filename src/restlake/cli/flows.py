"""`restlake flows serve|deploy`: the sources' maintenance, quality and backfill flows as deployments.

``serve`` runs them here: with ``PREFECT_API_URL`` unset a local Prefect server is started first
(SQLite under the state folder, ``.restlake/prefect``) and stopped on exit; with it set, the flows
report to that server. ``deploy`` registers them on a Kubernetes work pool of a running server.
Schedules come from each source's spec (``spec.maintenance.schedule``, ``spec.quality.bronze.schedule``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from uuid import UUID

import typer

from restlake.cli import components, progress
from restlake.errors import RestlakeError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
log = logging.getLogger(__name__)


@app.command("serve")
def serve(
    files: list[Path] = typer.Option(
        ..., "--file", "-f", exists=True, dir_okay=False, help="IngestionSource YAML (repeat for several)."
    ),
    port: int = typer.Option(4200, help="Port of the local Prefect server, when one is started."),
) -> None:
    """Serve the sources' flows (starting a local Prefect server when PREFECT_API_URL is unset)."""
    components.require("flows serve", "restlake.flows")
    from restlake.flows.deployments import plans_from_files
    from restlake.flows.server import LocalPrefectServer
    from restlake.flows.settings import PrefectSettings
    from restlake.settings import StackSettings

    try:
        plans = plans_from_files(files)
        _export_spark_settings()
    except RestlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    server: LocalPrefectServer | None = None
    if not PrefectSettings().api_url:
        server = LocalPrefectServer(StackSettings().state_dir, port)
        try:
            # Set in the environment, not passed: Prefect's client reads it there, in this process
            # and in every flow-run process `prefect serve` starts.
            os.environ["PREFECT_API_URL"] = server.start()
            # The client side (this process and the flow runs it starts) keeps its files beside the
            # server's, not in the user's ~/.prefect.
            os.environ.setdefault("PREFECT_HOME", str(server.home))
        except RestlakeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"prefect server: {server.url} (UI at http://127.0.0.1:{port}), data in {server.home}")
    try:
        from prefect import serve as prefect_serve

        from restlake.flows.deployments import runner_deployments

        for plan in plans:
            typer.echo(f"serving {plan.full_name}" + (f" on {plan.cron!r}" if plan.cron else " (on demand)"))
        prefect_serve(*runner_deployments(plans), print_starting_message=False)
    finally:
        if server is not None:
            server.stop()


def _export_spark_settings() -> None:
    """Hand the flow runs the local stack's Spark jars and the CLI's Spark log level.

    Through the environment because `prefect serve` runs each flow in a process of its own, which
    reads RESTLAKE_SPARK_* (``restlake.flows.session``); a variable already set is kept.
    """
    from restlake.jobs.spark.settings import SparkSettings
    from restlake.stack.jars import spark_jars

    settings = SparkSettings()
    if not settings.jars:
        os.environ["RESTLAKE_SPARK_JARS"] = os.pathsep.join(str(jar) for jar in spark_jars())
    if progress.MODE.quiet:
        os.environ.setdefault("RESTLAKE_SPARK_LOG_LEVEL", settings.quieter().log_level)


@app.command("deploy")
def deploy(
    files: list[Path] = typer.Option(
        ..., "--file", "-f", exists=True, dir_okay=False, help="IngestionSource YAML (repeat for several)."
    ),
    pool: str = typer.Option("restlake", help="Kubernetes work pool the deployments run on."),
    image: str = typer.Option(
        ..., help="Image of the flow-run Jobs: with restlake-flows and the spec files at the same paths."
    ),
) -> None:
    """Register the sources' flows as deployments on a Kubernetes work pool (PREFECT_API_URL must be set)."""
    components.require("flows deploy", "restlake.flows")
    from restlake.flows.deployments import plans_from_files
    from restlake.flows.settings import PrefectSettings

    if not PrefectSettings().api_url:
        typer.echo(
            "error: PREFECT_API_URL is not set; point it at the Prefect server the work pool belongs to "
            "(on kind: kubectl -n prefect port-forward svc/prefect-server 4200, then http://127.0.0.1:4200/api)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        plans = plans_from_files(files)
    except RestlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    from prefect import deploy as prefect_deploy

    from restlake.flows.deployments import runner_deployments

    # deploy is sync_compatible: called outside an event loop, as here, it returns its result.
    ids: list[UUID] = prefect_deploy(  # type: ignore[assignment]
        *runner_deployments(plans),
        work_pool_name=pool,
        image=image,
        build=False,
        push=False,
        print_next_steps_message=False,
    )
    for plan, deployment_id in zip(plans, ids, strict=True):
        cron = f", {plan.cron!r}" if plan.cron else ""
        typer.echo(f"deployed {plan.full_name} ({deployment_id}) on pool {pool}{cron}")
