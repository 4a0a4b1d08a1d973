"""The component distributions the `restlake` command reaches into, and the refusal when one is absent.

The command is the core's; each sub-command that runs a component imports it lazily, inside the
command, so that `restlake --help` works in every image and each image needs only its own
component. A sub-command whose component is not installed stops here, naming the distribution to
install, instead of failing with a ModuleNotFoundError from deep inside an import.
"""

from __future__ import annotations

import importlib.util

import typer

from restlake.errors import ConfigError

# Import package -> the distribution that ships it (fetcher/, operator/, jobs/spark/, flows/ in the repo).
DISTRIBUTIONS: dict[str, str] = {
    "restlake.fetcher": "restlake-fetcher",
    "restlake.operator": "restlake-operator",
    "restlake.jobs.spark": "restlake-jobs-spark",
    "restlake.flows": "restlake-flows",
}


class ComponentNotInstalledError(ConfigError):
    """A sub-command needs a component distribution that this environment does not have."""


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ModuleNotFoundError:  # a parent (restlake.jobs) is missing too
        return False


def missing(*packages: str) -> list[str]:
    """The distributions of ``packages`` that are not installed, in the order given."""
    return [DISTRIBUTIONS[package] for package in packages if not _installed(package)]


def check(command: str, *packages: str) -> None:
    """Raise ComponentNotInstalledError unless every package of ``packages`` is importable."""
    absent = missing(*packages)
    if absent:
        raise ComponentNotInstalledError(
            f"`restlake {command}` needs {' and '.join(absent)}, which is not installed here: "
            f"pip install {' '.join(absent)} (`make venv` installs every distribution of the repository)"
        )


def require(command: str, *packages: str) -> None:
    """``check`` for a sub-command: the refusal goes to stderr and the command exits 2."""
    try:
        check(command, *packages)
    except ComponentNotInstalledError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
