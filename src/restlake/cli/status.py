"""`restlake status`: one row per source, from Postgres, Kafka, the stream checkpoint and the lake.

stdout carries the table (or JSON); the exit code says whether a source is stale, for scripts and
cron: 0 fine, 1 a source had no complete fetch pass within ``--max-staleness`` (or that could not
be read), 2 nothing could be looked at.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from restlake.errors import RestlakeError

UNAVAILABLE = "unavailable"
_COLUMNS = (
    "SOURCE",
    "LAST FETCH",
    "OUTCOME",
    "REQUESTS",
    "304",
    "WATERMARK",
    "KAFKA END",
    "COMMITTED",
    "LAG",
    "LAST BATCH",
    "POSTGRES",
    "BRONZE",
    "BRONZE ROWS",
    "QUARANTINED",
    "DLQ",
)


def status(
    names: list[str] | None = typer.Argument(
        None, help="Source names (default: every source Postgres knows). Layout as a spec without overrides."
    ),
    files: list[Path] | None = typer.Option(
        None, "--file", "-f", exists=True, dir_okay=False, help="IngestionSource YAML; repeat for more."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: services and sources."),
    max_staleness: str | None = typer.Option(
        None,
        "--max-staleness",
        help="Exit 1 when a source had no complete fetch pass within this long, e.g. 15m, 2h, 1d.",
    ),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="Local stack state folder (default: RESTLAKE_STATE_DIR or ./.restlake)."
    ),
) -> None:
    """Where each source stands: last fetch, watermark, Kafka lag, last batch, rows, quarantine, DLQ."""
    from restlake.contracts.spec import load_sources
    from restlake.contracts.values import Duration
    from restlake.runtime.status import StatusError, Target, collect, known_sources, resolve_endpoints
    from restlake.settings import KafkaSettings

    try:
        limit = Duration(max_staleness).timedelta if max_staleness is not None else None
    except ValueError as exc:
        typer.echo(f"error: --max-staleness {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        endpoints = resolve_endpoints(state_dir)
        prefix = KafkaSettings().topic_prefix
        targets = [
            Target.of_source(source, endpoints.lake_root, prefix)
            for file in files or []
            for source in load_sources(file)
        ]
        targets += [Target.of_name(name, endpoints.lake_root, prefix) for name in names or []]
        if not targets:
            if not endpoints.pg_dsn:
                raise StatusError(
                    f"no source named and no Postgres to list them from (services: {endpoints.origin}); "
                    "pass -f FILE or NAME, or start the stack"
                )
            targets = [
                Target.of_name(name, endpoints.lake_root, prefix) for name in known_sources(endpoints.pg_dsn)
            ]
        now = datetime.now(UTC)
        rows = collect(targets, endpoints, now=now, max_staleness=limit)
    except RestlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        document = {
            "services": endpoints.origin,
            "at": now.isoformat(),
            "sources": [r.as_dict() for r in rows],
        }
        typer.echo(json.dumps(document, sort_keys=True, default=str))
    else:
        typer.echo(f"services: {endpoints.origin}")
        typer.echo(render_table([r.as_dict() for r in rows], now) if rows else "no sources yet")
        for line in unavailable_notes([r.as_dict() for r in rows]):
            typer.echo(line)
    stale = [r.source for r in rows if r.stale]
    unknown = [r.source for r in rows if limit is not None and r.stale is None]
    if stale:
        typer.echo(f"stale (no complete fetch within {max_staleness}): {', '.join(stale)}", err=True)
    if unknown:
        typer.echo(f"staleness unknown (fetch state unavailable): {', '.join(unknown)}", err=True)
    if stale or unknown:
        raise typer.Exit(1)


def render_table(rows: list[dict[str, Any]], now: datetime) -> str:
    """A plain aligned table (stable in pipes and logs); times as ages relative to ``now``."""
    lines = [_COLUMNS]
    for row in rows:
        lines.append(
            (
                row["source"],
                _cell(row, "last_fetch_at", lambda v: _age(v, now)),
                _cell(row, "last_fetch_outcome"),
                _cell(row, "requests"),
                _cell(row, "not_modified_share", lambda v: f"{v:.0%}"),
                _watermark(row),
                _cell(row, "kafka_end_offset"),
                _cell(row, "kafka_committed_offset"),
                _cell(row, "kafka_lag"),
                _batch(row, now),
                _cell(row, "postgres_rows"),
                _cell(row, "bronze_version", lambda v: f"v{v}"),
                _cell(row, "bronze_rows"),
                _cell(row, "quarantined"),
                _cell(row, "dead_letters"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def unavailable_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per distinct reason: which fields of which sources it blanked."""
    by_reason: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        for name, reason in row["unavailable"].items():
            by_reason.setdefault(reason, {}).setdefault(row["source"], []).append(name)
    notes = []
    for reason, sources in by_reason.items():
        where = "; ".join(f"{source}: {', '.join(names)}" for source, names in sources.items())
        notes.append(f"unavailable: {where}: {reason}")
    return notes


def _cell(row: dict[str, Any], name: str, fmt: Any = str) -> str:
    if name in row["unavailable"]:
        return UNAVAILABLE
    value = row[name]
    return "-" if value is None else fmt(value)


def _watermark(row: dict[str, Any]) -> str:
    text = _cell(row, "watermark")
    age = row.get("watermark_age_seconds")
    return f"{text} ({_duration(timedelta(seconds=age))} ago)" if age is not None else text


def _batch(row: dict[str, Any], now: datetime) -> str:
    if "last_batch_id" in row["unavailable"]:
        return UNAVAILABLE
    if row["last_batch_id"] is None:
        return "-"
    return f"#{row['last_batch_id']} {_age(row['last_batch_at'], now)}"


def _age(value: str | datetime, now: datetime) -> str:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{_duration(now - when)} ago"


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return f"-{_duration(-delta)}"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
