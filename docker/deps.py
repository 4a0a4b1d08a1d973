"""Python dependencies of one image: the third-party requirements of restlake's distributions, locked.

Standard library only, because it runs on the bare base image before any venv exists, and on
the host (tests/e2e/images.py downloads the same set into a wheelhouse). Two commands:

    python3 deps.py requirements [--root DIR] REQUIREMENT...
                        the third-party requirement lines that installing REQUIREMENT... brings
    python3 deps.py venv DIR [--root DIR] REQUIREMENT...
                        a fresh venv at DIR holding them

A REQUIREMENT naming one of the repository's own distributions (``restlake``,
``restlake-operator``, ``restlake[stack]``...) stands for its dependencies, followed through the
other local distributions it names (every component depends on the core ``restlake``); any other
requirement (``setuptools``) is taken as it is. The local distributions are the
``pyproject.toml`` files under ``--root`` (default: this script's folder, where the Dockerfile
copies the ones an image needs, in the repository's layout): ``pyproject.toml`` and
``*/pyproject.toml``, ``*/*/pyproject.toml``.

``venv`` installs with ``requirements.lock`` (beside this script) as constraints, so an image gets
exactly the versions `make venv` does. ``DEPS_FROM`` picks where wheels come from: ``internet``
(default) is the package index; ``context`` is the wheels copied beside this script (a
host-prepared wheelhouse), with the index switched off so a missing wheel fails the build
instead of reaching for the network.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEPS_FROM_VALUES = ("internet", "context")
# `name[extra,...]` and whatever follows (a version, a marker): enough of PEP 508 to tell which
# distribution a requirement names.
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def local_projects(root: Path) -> dict[str, dict]:
    """Canonical distribution name -> its ``[project]`` table, for every pyproject.toml under ``root``."""
    found: dict[str, dict] = {}
    for pattern in ("pyproject.toml", "*/pyproject.toml", "*/*/pyproject.toml"):
        for path in sorted(root.glob(pattern)):
            if any(part.startswith(".") for part in path.relative_to(root).parts):
                continue  # .venv, .restlake: never the repository's own
            project = tomllib.loads(path.read_text(encoding="utf-8")).get("project")
            if project and "name" in project:
                found[canonical(project["name"])] = project
    return found


def requirements(root: Path, wanted: list[str]) -> list[str]:
    """Third-party requirement lines of ``wanted``, local distributions expanded, in first-seen order."""
    projects = local_projects(root)
    found: list[str] = []
    seen: set[tuple[str, str]] = set()
    pending = list(wanted)
    while pending:
        line = pending.pop(0)
        match = _REQUIREMENT.match(line)
        if not match:
            raise SystemExit(f"deps.py: cannot read the requirement {line!r}")
        name = canonical(match.group(1))
        if name not in projects:
            if line not in found:
                found.append(line)
            continue
        project = projects[name]
        extras = [extra.strip() for extra in (match.group(2) or "").split(",") if extra.strip()]
        optional: dict[str, list[str]] = project.get("optional-dependencies", {})
        for extra in ["", *extras]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            if extra and extra not in optional:
                known = ", ".join(sorted(optional)) or "none"
                raise SystemExit(f"deps.py: {project['name']} has no extra {extra!r} (known: {known})")
            pending.extend(optional[extra] if extra else project.get("dependencies", []))
    return found


def pip_source_args(deps_from: str, wheel_dirs: list[Path]) -> list[str]:
    """pip options for ``DEPS_FROM``: nothing for the index, ``--no-index --find-links`` for a wheelhouse."""
    if deps_from == "internet":
        return []
    if deps_from == "context":
        existing = [d for d in wheel_dirs if d.is_dir() and any(d.glob("*.whl"))]
        if not existing:
            raise SystemExit(
                "deps.py: DEPS_FROM=context but no wheels were copied into the build; "
                "prepare the wheelhouse first (python tests/e2e/images.py build does)"
            )
        links = [arg for d in existing for arg in ("--find-links", str(d))]
        return ["--no-index", *links]
    raise SystemExit(f"deps.py: DEPS_FROM={deps_from!r}, expected one of {', '.join(DEPS_FROM_VALUES)}")


def make_venv(target: Path, root: Path, wanted: list[str]) -> None:
    deps_from = os.environ.get("DEPS_FROM") or "internet"
    # The Dockerfile copies the wheels of the stage beside this script.
    source = pip_source_args(deps_from, [HERE])
    lines = requirements(root, wanted)
    if not lines:
        raise SystemExit("deps.py venv: nothing to install")
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    pip = [str(target / "bin" / "python"), "-m", "pip"]
    argv = [
        *pip,
        "install",
        "--no-cache-dir",
        "--disable-pip-version-check",
        *source,
        "--constraint",
        str(HERE / "requirements.lock"),
        *lines,
    ]
    print("deps.py:", " ".join(argv), flush=True)
    subprocess.run(argv, check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="deps.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("requirements", help="print the third-party requirements")
    venv = commands.add_parser("venv", help="create a venv holding the third-party requirements")
    venv.add_argument("dir", type=Path)
    for command in (listing, venv):
        command.add_argument("--root", type=Path, default=HERE, help="where the pyproject.toml files are")
        command.add_argument("requirement", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "requirements":
        print("\n".join(requirements(args.root, args.requirement)))
    else:
        make_venv(args.dir, args.root, args.requirement)


if __name__ == "__main__":
    main()
