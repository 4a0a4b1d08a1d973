"""Configuration is read by the settings models, nowhere else.

A module outside the settings modules that reads ``os.environ`` or ``os.getenv`` grows a second
default and a second spelling of a variable that the settings models, the Helm chart and
``restlake stack env`` do not know about. The few modules that must touch the environment are
listed below, each with the reason; anything else fails here.
"""

from __future__ import annotations

import ast

from ..source_tree import Module, production_modules

# Modules that hold settings models: reading the environment is what they are for.
SETTINGS_MODULES = {
    "restlake.settings",
    "restlake.quality.settings",
    "restlake.lineage.settings",
    "restlake.fetcher.settings",
    "restlake.operator.settings",
    "restlake.jobs.spark.settings",
    "restlake.flows.settings",
}

ALLOWED = {
    # (b) child processes' environments
    "restlake.child_env": "builds a child process's environment from this one's: the one helper for it",
    "restlake.jobs.spark.session": "sets PYSPARK_PYTHON and SPARK_LOCAL_IP, which pyspark's JVM and Python "
    "workers read from the environment they inherit",
    "restlake.cli.flows": "sets PREFECT_API_URL, PREFECT_HOME and RESTLAKE_SPARK_* for Prefect's client and "
    "the flow-run processes `prefect serve` starts, which read them from their environment",
    "restlake.jobs.spark.class_archive": "JAVA_HOME, read the way spark-class reads it to find the JVM "
    "pyspark will start, so that the class archive is keyed on that JVM",
    # (d) a variable of the C library, not restlake's
    "restlake.runtime.malloc_arenas": "MALLOC_ARENA_MAX is glibc's, read by glibc at process start; only "
    "looked at so that a cap the user set stands",
    # Modules run where pydantic is not installed
    "restlake.stack.jars": "RESTLAKE_JVM_DIR, SPARK_HOME: the image's jars stage runs it with the standard "
    "library only, so it cannot use a settings model",
    "restlake.stack.state": "RESTLAKE_JARS_DIR: imported by restlake.stack.jars in the image's jars stage "
    "(standard library only)",
    # (c) an injectable environment mapping, os.environ when none is given
    "restlake.contracts.secrets": "RESTLAKE_SECRET_<NAME>_<KEY>: one variable per Secret a spec names, "
    "built at run time, so no model can declare it as a field",
    "restlake.stack.manager": "RESTLAKE_PG_DSN and RESTLAKE_JARS_DIR from an injectable mapping (the unit "
    "and integration tiers pass one); the jars folder goes through restlake.stack.state, stdlib-only",
}


_NAMES = {"environ", "environb", "getenv", "putenv"}


def _environment_reads(module: Module) -> list[int]:
    """Lines where ``module`` touches os.environ / os.getenv, or imports them from os."""
    lines: list[int] = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Attribute):
            hit = node.attr in _NAMES and isinstance(node.value, ast.Name) and node.value.id == "os"
        elif isinstance(node, ast.ImportFrom):
            hit = node.module == "os" and any(alias.name in _NAMES for alias in node.names)
        else:
            hit = False
        if hit:
            lines.append(node.lineno)
    return sorted(lines)


def test_only_the_settings_modules_read_the_environment() -> None:
    found = {}
    for module in production_modules():
        if module.name in SETTINGS_MODULES or module.name in ALLOWED:
            continue
        lines = _environment_reads(module)
        if lines:
            found[module.shown] = lines
    assert not found, (
        f"os.environ/os.getenv outside the settings modules: {found}. Read configuration through a "
        "settings model of the component (restlake.settings.RestlakeSettings); build a child's "
        "environment with restlake.child_env.child_env"
    )


def test_every_allowed_module_still_needs_its_place() -> None:
    # An entry whose module no longer touches the environment would let the next read in unseen.
    modules = {module.name: module for module in production_modules()}
    stale = [name for name in ALLOWED if name not in modules or not _environment_reads(modules[name])]
    assert not stale, f"remove from ALLOWED, they no longer read the environment: {stale}"
    assert set(modules) >= SETTINGS_MODULES, sorted(SETTINGS_MODULES - set(modules))


def test_the_scan_sees_every_form_of_a_read() -> None:
    code = "import os\nfrom os import getenv\na = os.environ.get('X')\nb = os.getenv('Y')\n"
    module = Module("example", production_modules()[0].path, ast.parse(code))
    assert _environment_reads(module) == [2, 3, 4]
