"""Imports point one way: CLI -> local runtime -> components -> contracts, settings, errors.

The local dev stack (``restlake.stack``: jar cache, Kafka and Postgres on loopback) serves the CLI
and the local runtime only; a component importing it would carry the dev stack into production
images and pods. Imports inside functions count: they run all the same.
"""

from __future__ import annotations

import ast

from ..source_tree import Module, production_modules

COMPONENTS = ("restlake.fetcher", "restlake.operator", "restlake.jobs", "restlake.flows")
# The layers only a developer's machine runs; nothing below them may import them.
LOCAL_ONLY = ("restlake.stack", "restlake.cli", "restlake.runtime")


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _imports(module: Module) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from restlake import stack` names the package in the alias.
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _violations(
    importer: tuple[str, ...], imported: tuple[str, ...], *, exempt: tuple[str, ...] = ()
) -> list[str]:
    return [
        f"{module.shown}:{line} imports {name}"
        for module in production_modules()
        if _within(module.name, importer) and not _within(module.name, exempt)
        for line, name in _imports(module)
        if _within(name, imported) and not _within(module.name, imported)
    ]


def test_only_the_cli_and_the_local_runtime_import_the_dev_stack() -> None:
    assert not _violations(("restlake",), ("restlake.stack",), exempt=LOCAL_ONLY)


def test_components_import_neither_the_cli_nor_the_local_runtime() -> None:
    found = _violations(COMPONENTS, ("restlake.cli", "restlake.runtime", "restlake.stack"))
    # `python -m restlake.fetcher` is the CLI's command under another name: an entry point, on top.
    assert not [v for v in found if "/__main__.py:" not in v]


def test_the_local_runtime_does_not_import_the_cli() -> None:
    assert not _violations(("restlake.runtime",), ("restlake.cli",))


def test_the_scan_sees_an_import_inside_a_function() -> None:
    code = "def main():\n    from restlake.stack.jars import spark_jars\n    from restlake import stack\n"
    module = Module("restlake.jobs.spark.x", production_modules()[0].path, ast.parse(code))
    lines = {line for line, name in _imports(module) if _within(name, ("restlake.stack",))}
    assert lines == {2, 3}
