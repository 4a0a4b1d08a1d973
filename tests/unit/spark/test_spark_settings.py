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


def test_a_cluster_session_authenticates_and_encrypts_with_the_shared_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from restlake.jobs.spark.session import cluster_auth_conf

    assert cluster_auth_conf("spark://m:7077", SparkSettings()) == {}
    # As a pod gets it: a Secret mounted as a file (or referenced into the variable).
    path = tmp_path / "secret"
    path.write_text("s3cr3t-never-shown\n")
    monkeypatch.setenv("RESTLAKE_SPARK_AUTH_SECRET_FILE", str(path))
    settings = SparkSettings()
    assert "s3cr3t-never-shown" not in repr(settings)
    assert cluster_auth_conf("spark://m:7077", settings) == {
        "spark.authenticate": "true",
        "spark.authenticate.secret": "s3cr3t-never-shown",
        "spark.network.crypto.enabled": "true",
    }
    # Local mode has no cluster to join; its executors are threads of the driver's JVM.
    assert cluster_auth_conf("local[2]", settings) == {}
