"""Python dependencies of one image: the requirements of restlake's extras, pinned by requirements.lock.

Standard library only, because it runs on the bare base image before any venv exists, and on
the host (tests/e2e/images.py downloads the same set into a wheelhouse). Two commands:

    python3 deps.py requirements EXTRA...  the requirement lines: base dependencies + the extras
    python3 deps.py venv DIR [--extra EXTRA]... [REQUIREMENT]...
                                            a fresh venv at DIR holding them

``venv`` reads ``pyproject.toml`` and ``requirements.lock`` from this script's folder (the
Dockerfile copies all three together) and installs with the lock as constraints, so an image
gets exactly the versions `make venv` does. ``DEPS_FROM`` picks where wheels come from:
``internet`` (default) is the package index; ``context`` is the wheels copied beside this
script (a host-prepared wheelhouse), with the index switched off so a missing wheel fails the
build instead of reaching for the network.
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
PROJECT = "restlake"
DEPS_FROM_VALUES = ("internet", "context")
# `name[extra,...]` referring to this project itself (e.g. all = ["restlake[operator,spark]"]).
_SELF_REFERENCE = re.compile(rf"^{PROJECT}\[([^\]]+)\]\s*$", re.IGNORECASE)


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """Base dependencies plus those of ``extras``, self-references (``restlake[x]``) expanded."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    found: list[str] = list(project.get("dependencies", []))
    seen: set[str] = set()
    pending = list(extras)
    while pending:
        extra = pending.pop(0)
        if extra in seen:
            continue
        if extra not in optional:
            known = ", ".join(sorted(optional))
            raise SystemExit(f"deps.py: {pyproject} has no extra {extra!r} (known: {known})")
        seen.add(extra)
        for requirement in optional[extra]:
            nested = _SELF_REFERENCE.match(requirement)
            if nested:
                pending.extend(part.strip() for part in nested.group(1).split(","))
            elif requirement not in found:
                found.append(requirement)
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


def make_venv(target: Path, extras: list[str], extra_requirements: list[str]) -> None:
    deps_from = os.environ.get("DEPS_FROM") or "internet"
    # The Dockerfile copies the wheels of the stage beside this script.
    source = pip_source_args(deps_from, [HERE])
    wanted = (requirements(HERE / "pyproject.toml", extras) if extras else []) + extra_requirements
    if not wanted:
        raise SystemExit("deps.py venv: nothing to install (no --extra, no requirement)")
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
        *wanted,
    ]
    print("deps.py:", " ".join(argv), flush=True)
    subprocess.run(argv, check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="deps.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("requirements", help="print the requirements of the extras")
    listing.add_argument("extras", nargs="*")
    listing.add_argument("--pyproject", type=Path, default=HERE / "pyproject.toml")
    venv = commands.add_parser("venv", help="create a venv holding the extras' requirements")
    venv.add_argument("dir", type=Path)
    venv.add_argument("--extra", action="append", default=[], dest="extras")
    venv.add_argument("requirement", nargs="*")
    args = parser.parse_args(argv)
    if args.command == "requirements":
        print("\n".join(requirements(args.pyproject, args.extras)))
    else:
        make_venv(args.dir, args.extras, args.requirement)


if __name__ == "__main__":
    main()
