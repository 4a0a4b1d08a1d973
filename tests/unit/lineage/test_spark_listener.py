"""RESTLAKE_LINEAGE_SPARK_LISTENER maps restlake's lineage settings onto the listener's spark.* keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from restlake.errors import StackError
from restlake.lineage import LineageSettings
from restlake.lineage.spark_listener import (
    DRIVER_JAVA_OPTION,
    LISTENER_CLASS,
    REDACTION_REGEX,
    describe,
    spark_listener_conf,
)
from restlake.stack import jars

SECRET = "s3cr3t-token-value"


def test_off_by_default_and_with_no_transport() -> None:
    assert LineageSettings(transport="file").spark_listener is False
    assert spark_listener_conf(LineageSettings(transport="file")) == {}
    assert spark_listener_conf(LineageSettings(transport="none", spark_listener=True)) == {}


def test_enabled_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTLAKE_LINEAGE_SPARK_LISTENER", "true")
    monkeypatch.setenv("RESTLAKE_LINEAGE_TRANSPORT", "console")
    conf = spark_listener_conf(LineageSettings())
    assert conf["spark.extraListeners"] == LISTENER_CLASS
    assert conf["spark.openlineage.transport.type"] == "console"


def test_file_transport_writes_next_to_restlakes_file(tmp_path: Path) -> None:
    settings = LineageSettings(
        transport="file", spark_listener=True, file_path=tmp_path / "events.jsonl", namespace="prod"
    )
    conf = spark_listener_conf(settings, "-Duser.timezone=UTC")
    assert conf == {
        "spark.extraListeners": LISTENER_CLASS,
        "spark.openlineage.namespace": "prod",
        "spark.openlineage.transport.type": "file",
        "spark.openlineage.transport.location": str(tmp_path / "events.spark.jsonl"),
        "spark.driver.extraJavaOptions": f"-Duser.timezone=UTC {DRIVER_JAVA_OPTION}",
    }


def test_relative_file_path_becomes_absolute() -> None:
    conf = spark_listener_conf(LineageSettings(transport="file", spark_listener=True))
    location = Path(conf["spark.openlineage.transport.location"])
    assert location.is_absolute()
    assert location.name == "events.spark.jsonl"


@pytest.mark.parametrize(
    ("url", "endpoint", "base", "path"),
    [
        ("http://127.0.0.1:5000", "api/v1/lineage", "http://127.0.0.1:5000", "/api/v1/lineage"),
        ("http://marquez:5000/", "/api/v1/lineage", "http://marquez:5000", "/api/v1/lineage"),
        (
            "https://lineage.example/marquez/",
            "api/v1/lineage",
            "https://lineage.example",
            "/marquez/api/v1/lineage",
        ),
    ],
)
def test_http_transport_splits_url_and_endpoint(url: str, endpoint: str, base: str, path: str) -> None:
    conf = spark_listener_conf(
        LineageSettings(transport="http", spark_listener=True, url=url, endpoint=endpoint, timeout=2.5)
    )
    assert conf["spark.openlineage.transport.url"] == base
    assert conf["spark.openlineage.transport.endpoint"] == path
    assert conf["spark.openlineage.transport.timeoutInMillis"] == "2500"
    assert "spark.openlineage.transport.auth.type" not in conf
    assert "spark.redaction.regex" not in conf


def test_http_api_key_is_passed_redacted_and_never_described() -> None:
    settings = LineageSettings(transport="http", spark_listener=True, api_key=SecretStr(SECRET))
    conf = spark_listener_conf(settings)
    assert conf["spark.openlineage.transport.auth.type"] == "api_key"
    assert conf["spark.openlineage.transport.auth.apiKey"] == SECRET
    # Spark hides the value of every setting whose key matches; its default pattern misses apiKey.
    pattern = re.compile(conf["spark.redaction.regex"])
    assert pattern.search("spark.openlineage.transport.auth.apiKey")
    for key in ("spark.hadoop.fs.s3a.secret.key", "spark.hadoop.fs.s3a.access.key", "x.password"):
        assert pattern.search(key)
    assert conf["spark.redaction.regex"] == REDACTION_REGEX
    shown = describe(conf)
    assert SECRET not in shown
    assert "spark.openlineage.transport.url=http://127.0.0.1:5000" in shown


def test_listener_jar_comes_from_the_optional_bundle(tmp_path: Path) -> None:
    cache = tmp_path / "jars"
    with pytest.raises(StackError, match="stack jars --openlineage"):
        jars.openlineage_jars(jars_dir=cache)
    jar = "io/openlineage/openlineage-spark_2.13/1.53.0/openlineage-spark_2.13-1.53.0.jar"
    (cache / "openlineage" / jar).parent.mkdir(parents=True)
    (cache / "openlineage" / jar).write_bytes(b"")
    (cache / "openlineage" / jars.MANIFEST).write_text(f"{jar}\n")
    (cache / "openlineage" / jars.STAMP).write_text("abc\n")
    assert jars.openlineage_jars(jars_dir=cache) == [cache / "openlineage" / jar]
    assert "openlineage" in jars.OPTIONAL_BUNDLES
    assert "openlineage" not in jars.BUNDLES


def _bundle(cache: Path, name: str, jar: str) -> Path:
    (cache / name / jar).parent.mkdir(parents=True)
    (cache / name / jar).write_bytes(b"")
    (cache / name / jars.MANIFEST).write_text(f"{jar}\n")
    (cache / name / jars.STAMP).write_text("abc\n")
    return cache / name / jar


def test_spark_jars_add_the_listener_jar_only_when_the_session_runs_the_listener(tmp_path: Path) -> None:
    cache = tmp_path / "jars"
    connector = _bundle(cache, "spark", "org/postgresql/postgresql/42.7.8/postgresql-42.7.8.jar")
    on = LineageSettings(transport="console", spark_listener=True)
    with pytest.raises(StackError, match="stack jars --openlineage"):
        jars.spark_jars(jars_dir=cache, lineage=on)
    listener = _bundle(cache, "openlineage", "io/openlineage/openlineage-spark_2.13/1.53.0/x.jar")
    assert jars.spark_jars(jars_dir=cache, lineage=on) == [connector, listener]
    assert jars.spark_jars(
        jars_dir=cache, lineage=LineageSettings(transport="none", spark_listener=True)
    ) == [connector]
    assert jars.spark_jars(jars_dir=cache, lineage=LineageSettings(transport="console")) == [connector]
