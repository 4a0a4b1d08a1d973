"""`restlake validate`: check IngestionSource files offline, with the same model the operator uses."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from restlake.contracts.documents import read_documents
from restlake.contracts.spec import IngestionSource, parse_source
from restlake.errors import SpecError

_YAML_SUFFIXES = (".yaml", ".yml")


def _expand(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Files as given; a directory stands for its *.yaml / *.yml files, like `kubectl apply -f DIR`.

    Also returns the directories that held none: validating nothing must not look like success.
    """
    files: list[Path] = []
    empty: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in _YAML_SUFFIXES and p.is_file())
            files.extend(found)
            if not found:
                empty.append(path)
        else:
            files.append(path)
    return files, empty


def _read_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            "<stdin>",
            [("<file>", f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})")],
        ) from None


def _summary(source: IngestionSource) -> str:
    spec = source.spec
    return f"{spec.pagination.type} pagination, every {spec.poll.interval}, topic {source.topic()}"


def validate(
    files: Annotated[
        list[Path],
        typer.Option(
            "--file",
            "-f",
            help="IngestionSource YAML file (several documents allowed), a directory of them, "
            "or - for stdin. Repeatable.",
        ),
    ],
) -> None:
    """Check IngestionSource files; print one OK line per valid source, every problem with its field path."""
    failed = 0
    seen: dict[tuple[str | None, str], str] = {}
    paths, empty = _expand(files)
    for directory in empty:
        typer.echo(f"no IngestionSource in {directory}: it holds no .yaml or .yml file", err=True)
        failed += 1
    for path in paths:
        try:
            text = _read_stdin() if str(path) == "-" else None
            documents = read_documents("<stdin>" if text is not None else path, text)
        except OSError as exc:
            typer.echo(f"cannot read {path}: {exc.strerror or exc}", err=True)
            failed += 1
            continue
        except SpecError as exc:
            typer.echo(str(exc), err=True)
            failed += 1
            continue
        if not documents:
            typer.echo(f"invalid IngestionSource {path}: no document in the file", err=True)
            failed += 1
        for origin, document in documents:
            try:
                source = parse_source(document, origin)
            except SpecError as exc:
                typer.echo(str(exc), err=True)
                failed += 1
                continue
            key = (source.metadata.namespace, source.name)
            if key in seen:
                # Same name, same namespace: one would overwrite the other's topic, tables and objects.
                problem = ("metadata.name", f"{source.name!r} is already used by {seen[key]}")
                typer.echo(str(SpecError(f"{source.name} ({origin})", [problem])), err=True)
                failed += 1
                continue
            seen[key] = origin
            typer.echo(f"OK {source.name} ({origin}): {_summary(source)}")
    if failed:
        raise typer.Exit(code=1)
