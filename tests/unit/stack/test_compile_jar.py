"""The spark-udfs bundle: restlake's own Spark functions, compiled with the real javac."""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path

import pytest

from restlake.errors import StackError
from restlake.stack import compile_jar, jars

PAYLOAD_CLASS = "io/restlake/jobs/spark/PayloadJson.class"


@pytest.fixture
def jvm_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the checkout's jvm/ folder that a test may edit, used as the bundle source."""
    copy = tmp_path / "jvm"
    shutil.copytree(jars.jvm_dir(), copy)
    monkeypatch.setenv("RESTLAKE_JVM_DIR", str(copy))
    return copy


def _java_file(jvm: Path) -> Path:
    (source,) = (jvm / "spark-udfs" / "src" / "main" / "java").rglob("PayloadJson.java")
    return source


def test_the_bundle_is_compiled_into_the_cache_and_then_reused(
    jvm_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    (jar,) = jars.resolve("spark-udfs", cache)
    assert jar.is_file() and jar.is_relative_to(cache / "spark-udfs")
    assert PAYLOAD_CLASS in zipfile.ZipFile(jar).namelist()
    assert jars.read_manifest(cache.absolute(), "spark-udfs") == [jar]

    def must_not_compile(*args: object) -> Path:
        raise AssertionError("a current bundle was compiled again")

    monkeypatch.setattr(jars, "compile_jar", must_not_compile)
    assert jars.resolve("spark-udfs", cache) == [jar]


def test_a_changed_source_is_compiled_again(jvm_copy: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    jars.resolve("spark-udfs", cache)
    stamp = cache / "spark-udfs" / jars.STAMP
    before = stamp.read_text()
    source = _java_file(jvm_copy)
    source.write_text(source.read_text() + "\n// changed\n")
    jars.resolve("spark-udfs", cache)
    assert stamp.read_text() != before


def test_the_same_sources_give_the_same_jar_bytes(tmp_path: Path) -> None:
    source_dir = jars.jvm_dir() / "spark-udfs" / "src" / "main" / "java"
    classpath = sorted(jars.pyspark_jars_dir().glob("*.jar"))
    first = compile_jar.compile_jar(source_dir, classpath, tmp_path / "a" / "udfs.jar")
    second = compile_jar.compile_jar(source_dir, classpath, tmp_path / "b" / "udfs.jar")
    assert first.read_bytes() == second.read_bytes()


def test_a_compile_error_is_reported_with_javacs_message(jvm_copy: Path, tmp_path: Path) -> None:
    source = _java_file(jvm_copy)
    source.write_text(source.read_text().replace("implements UDF1<byte[], byte[]>", "implements Missing"))
    with pytest.raises(StackError, match=r"(?s)javac failed \(1\) compiling .*PayloadJson\.java.*Missing"):
        jars.resolve("spark-udfs", tmp_path / "cache")
    assert not (tmp_path / "cache" / "spark-udfs").exists()


def test_without_a_jdk_the_bundle_is_left_out_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A Java runtime without javac: Spark runs, the functions cannot be compiled.
    monkeypatch.setattr(compile_jar.shutil, "which", lambda name: None)
    cache = tmp_path / "cache"
    spark = cache / "spark"
    connector = spark / "org/postgresql/postgresql/42.7.8/postgresql-42.7.8.jar"
    connector.parent.mkdir(parents=True)
    connector.write_bytes(b"")
    (spark / jars.MANIFEST).write_text("org/postgresql/postgresql/42.7.8/postgresql-42.7.8.jar\n")
    (spark / jars.STAMP).write_text("abc\n")
    with caplog.at_level(logging.WARNING, logger="restlake.stack.jars"):
        assert jars.resolve("spark-udfs", cache) == []
    assert "jar bundle spark-udfs left out: javac is not on PATH" in caplog.text
    assert "install a JDK" in caplog.text
    assert jars.spark_jars(jars_dir=cache, env={}) == [connector.absolute()]


def test_spark_jars_include_the_compiled_functions(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    spark = cache / "spark"
    spark.mkdir(parents=True)
    (spark / jars.MANIFEST).write_text("")
    (spark / jars.STAMP).write_text("abc\n")
    (udfs,) = jars.resolve("spark-udfs", cache)
    assert jars.spark_jars(jars_dir=cache, env={}) == [udfs]
