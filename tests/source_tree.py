"""The production modules of every distribution, parsed, for the tests that check how code is laid out.

One walk for the tests of one tier (tests/unit/test_layering.py, tests/unit/test_environment_reads.py):
each parses the same files and names a module by its import path, whatever folder it lives in.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The src/ folders of the core and of each component distribution.
CODE_ROOTS = (
    REPO / "src",
    REPO / "fetcher" / "src",
    REPO / "operator" / "src",
    REPO / "jobs" / "spark" / "src",
    REPO / "flows" / "src",
)


@dataclass(frozen=True)
class Module:
    name: str  # the import path: restlake.cli.run
    path: Path
    tree: ast.Module

    @property
    def shown(self) -> str:
        return str(self.path.relative_to(REPO))


@functools.cache
def production_modules() -> tuple[Module, ...]:
    """Every module, parsed once per test session."""
    return tuple(_walk())


def _walk() -> Iterator[Module]:
    for root in CODE_ROOTS:
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield Module(".".join(parts), path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
