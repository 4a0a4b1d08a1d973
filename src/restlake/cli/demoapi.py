"""CLI for restlake.demoapi (filled in by its component)."""

import typer

app = typer.Typer(no_args_is_help=True)
