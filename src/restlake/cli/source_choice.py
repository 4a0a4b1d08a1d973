"""Pick the one source a per-source command (backfill, quality run) works on from a spec file."""

from __future__ import annotations

from pathlib import Path

import typer

from restlake.contracts.spec import IngestionSource, load_sources


def one_source(file: Path, name: str | None) -> IngestionSource:
    """The source called ``name`` in ``file``, or its only one; a ``BadParameter`` naming the choices."""
    sources = load_sources(file)
    if name is None and len(sources) != 1:
        raise typer.BadParameter(f"{file} holds {len(sources)} sources; pick one with --source")
    matching = [s for s in sources if name in (None, s.name)]
    if not matching:
        names = ", ".join(s.name for s in sources)
        raise typer.BadParameter(f"no source {name!r} in {file}; it has: {names}")
    return matching[0]
