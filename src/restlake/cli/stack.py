"""CLI for restlake.stack (filled in by its component)."""

import typer

app = typer.Typer(no_args_is_help=True)
