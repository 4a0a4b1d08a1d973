"""`restlake operator run`: the kopf operator that reconciles IngestionSources."""

from __future__ import annotations

import logging

import typer

from restlake.cli import components
from restlake.redaction import redact_log_handlers

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help="Run the Kubernetes operator.")


@app.callback()
def _group() -> None:
    """The Kubernetes operator (kopf) that reconciles IngestionSources."""
    # A callback keeps `run` a sub-command even while it is the only one: `restlake operator run`.


@app.command("run")
def run(
    namespace: list[str] = typer.Option(
        [],
        "--namespace",
        "-n",
        help="Namespace to watch (repeatable; globs allowed); default: RESTLAKE_OPERATOR_NAMESPACES, "
        "else the whole cluster.",
    ),
    liveness: str | None = typer.Option(
        None, help="Serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz."
    ),
    standalone: bool = typer.Option(
        False, help="Skip peering: only for a single replica (tests, local runs)."
    ),
) -> None:
    """Watch IngestionSources and keep their ConfigMap, Deployments, topic and monitor in shape."""
    components.require("operator run", "restlake.operator")
    import kopf

    from restlake.operator import handlers  # noqa: F401 - importing registers the handlers
    from restlake.operator.settings import OperatorSettings

    settings = OperatorSettings()
    namespaces = namespace or settings.namespaces
    log.info("starting operator namespaces=%s peering=%s", namespaces or "all", settings.peering)
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=standalone,
        peering_name=None if standalone else settings.peering,
        liveness_endpoint=liveness,
    )


if __name__ == "__main__":  # until `restlake operator` is registered in restlake.cli.main
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    redact_log_handlers()
    app()
