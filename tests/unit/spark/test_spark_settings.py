"""RESTLAKE_SPARK_*: one model read by the jobs started as processes, handed to in-process sessions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from restlake.cli import progress
from restlake.cli.spark_settings import command_spark_settings
from restlake.jobs.spark.settings import SparkSettings, classpath_jars


@pytest.fixture(autouse=True)
def _no_spark_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RESTLAKE_SPARK_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(progress.MODE, "quiet", False)


def test_the_defaults() -> None:
    settings = SparkSettings()
    assert (settings.master, settings.jars, settings.driver_memory, settings.log_level) == (
        "local[2]",
        "",
        "auto",
        "WARN",
    )


def test_the_variables_keep_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTLAKE_SPARK_MASTER", "spark://master:7077")
    monkeypatch.setenv("RESTLAKE_SPARK_DRIVER_MEMORY", "4g")
    monkeypatch.setenv("RESTLAKE_SPARK_JARS", os.pathsep.join(["/a.jar", "", "/b.jar"]))
    settings = SparkSettings()
    assert (settings.master, settings.driver_memory) == ("spark://master:7077", "4g")
    assert classpath_jars(settings.jars) == [Path("/a.jar"), Path("/b.jar")]


def test_quiet_commands_turn_the_jvm_down_unless_the_variable_chose_a_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert command_spark_settings().log_level == "WARN"
    assert command_spark_settings(quiet=True).log_level == "ERROR"
    monkeypatch.setattr(progress.MODE, "quiet", True)
    assert command_spark_settings().log_level == "ERROR"
    monkeypatch.setenv("RESTLAKE_SPARK_LOG_LEVEL", "INFO")
    assert command_spark_settings().log_level == "INFO"
