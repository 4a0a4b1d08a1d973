"""The source text of an installed module, found without importing it.

Tests that check one component against another's names read the other's source instead of
importing it when the import is heavy (pyspark) or not what is under test. The module is found
through the import system, so the check follows the module wherever its distribution puts it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def module_source(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(f"{name} is not installed: `make venv` installs every distribution")
    return Path(spec.origin).read_text(encoding="utf-8")
