"""`restlake demo-api`: run the bundled demo REST API."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import typer

from restlake.demoapi.auth import AuthConfig
from restlake.demoapi.config import DemoApiConfig, realtime_growth
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.faults import FaultConfig
from restlake.demoapi.process import READY_PREFIX
from restlake.demoapi.ratelimit import RateLimitConfig
from restlake.demoapi.server import serve as serve_app
from restlake.demoapi.timestamps import parse_iso

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Run the bundled demo REST API."""
    # A callback keeps `serve` a sub-command: a Typer with one command and none would run it directly.


def _pair(value: str | None, sep: str, flag: str) -> tuple[str, str] | tuple[None, None]:
    if value is None:
        return None, None
    left, found, right = value.partition(sep)
    if not found or not left or not right:
        raise typer.BadParameter(f"expected LEFT{sep}RIGHT", param_hint=flag)
    return left, right


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8085, help="Port to bind; 0 picks a free one (printed on stdout)."),
    records: int = typer.Option(1000, min=0, help="Records at tick 0."),
    seed: int = typer.Option(0, help="Seed of all generated data."),
    growth_per_tick: int = typer.Option(10, min=0, help="New records per tick (manual clock)."),
    growth_per_minute: float = typer.Option(
        0.0, min=0.0, help="New records per wall-clock minute; > 0 selects the real-time clock."
    ),
    realtime: bool = typer.Option(False, help="Real-time clock: one tick every --tick-seconds."),
    tick_seconds: float = typer.Option(60.0, min=1.0, help="Virtual (real-time: wall) seconds a tick."),
    update_fraction: float = typer.Option(0.01, min=0.0, max=1.0, help="Share of records revised per tick."),
    epoch: str | None = typer.Option(
        None, help="Virtual time at the end of tick 0 (ISO-8601). Default: 2024-01-01Z, or now if real-time."
    ),
    max_page_size: int = typer.Option(1000, min=1, help="Page sizes above this are clamped."),
    rate_limit: float | None = typer.Option(None, min=0.001, help="Requests/s per client (off if unset)."),
    burst: int | None = typer.Option(None, min=1, help="Token bucket size (default: ceil(rate))."),
    ietf_ratelimit_headers: bool = typer.Option(False, help="Also send RateLimit-* (IETF draft) headers."),
    error_rate: float = typer.Option(0.0, min=0.0, max=1.0),
    error_status: int = typer.Option(503, min=400, max=599),
    slow_rate: float = typer.Option(0.0, min=0.0, max=1.0),
    slow_seconds: float = typer.Option(1.0, min=0.0),
    truncate_rate: float = typer.Option(0.0, min=0.0, max=1.0),
    wrong_content_type_rate: float = typer.Option(0.0, min=0.0, max=1.0),
    bad_utf8_rate: float = typer.Option(0.0, min=0.0, max=1.0),
    fail_next: int = typer.Option(0, min=0, help="Fail exactly the first N listing requests."),
    fault_seed: int = typer.Option(0, help="Seed of the per-request fault draws."),
    require_bearer: str | None = typer.Option(None, help="Require 'Authorization: Bearer TOKEN'."),
    require_api_key: str | None = typer.Option(None, help="NAME=VALUE: require header/query NAME."),
    oauth_client: str | None = typer.Option(None, help="ID:SECRET: enable POST /oauth/token."),
    oauth_token_ttl: int = typer.Option(3600, min=1, help="expires_in of issued OAuth2 tokens (seconds)."),
    access_log: bool = typer.Option(False, help="Log every request."),
) -> None:
    """Serve the demo API until SIGINT/SIGTERM."""
    growth = growth_per_tick
    if growth_per_minute > 0:
        growth, tick_seconds = realtime_growth(growth_per_minute)
        realtime = True
    if epoch is not None:
        try:
            epoch_at = datetime.fromtimestamp(parse_iso(epoch) // 1000, UTC)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--epoch") from exc
    elif realtime:
        epoch_at = datetime.fromtimestamp(int(time.time()), UTC)  # timestamps then track the wall clock
    else:
        epoch_at = DatasetConfig().epoch
    key_name, key_value = _pair(require_api_key, "=", "--require-api-key")
    client_id, client_secret = _pair(oauth_client, ":", "--oauth-client")
    config = DemoApiConfig(
        dataset=DatasetConfig(
            seed=seed,
            initial_records=records,
            growth_per_tick=growth,
            update_fraction=update_fraction,
            tick_seconds=tick_seconds,
            epoch=epoch_at,
        ),
        faults=FaultConfig(
            error_rate=error_rate,
            error_status=error_status,
            slow_rate=slow_rate,
            slow_seconds=slow_seconds,
            truncate_rate=truncate_rate,
            wrong_content_type_rate=wrong_content_type_rate,
            bad_utf8_rate=bad_utf8_rate,
            fail_next=fail_next,
            seed=fault_seed,
        ),
        rate_limit=RateLimitConfig(
            requests_per_second=rate_limit, burst=burst, ietf_headers=ietf_ratelimit_headers
        ),
        auth=AuthConfig(
            bearer_token=require_bearer,
            api_key_name=key_name,
            api_key_value=key_value,
            oauth_client_id=client_id,
            oauth_client_secret=client_secret,
            token_ttl_seconds=oauth_token_ttl,
        ),
        realtime=realtime,
        max_page_size=max_page_size,
        access_log=access_log,
    )

    def ready(base_url: str) -> None:
        # The one line on stdout: start_demo_api_process waits for it to learn the bound port.
        typer.echo(f"{READY_PREFIX}{base_url}")

    asyncio.run(serve_app(config, host, port, ready))
