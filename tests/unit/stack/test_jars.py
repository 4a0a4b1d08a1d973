"""Jar cache bookkeeping and the filter that keeps pyspark's own jars off spark.jars."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from restlake.errors import StackError
from restlake.stack import jars


def _jar(path: Path, *pom_entries: tuple[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        for group, artifact in pom_entries:
            zf.writestr(f"META-INF/maven/{group}/{artifact}/pom.properties", f"artifactId={artifact}\n")
    return path


def test_artifact_from_repository_layout(tmp_path: Path) -> None:
    jar = tmp_path / "io/delta/delta-spark_4.2_2.13/4.4.0/delta-spark_4.2_2.13-4.4.0.jar"
    assert jars.Artifact.from_layout(tmp_path, jar) == jars.Artifact(
        group="io.delta", artifact="delta-spark_4.2_2.13", version="4.4.0", path=jar
    )


def test_shipped_artifacts_ignore_shaded_pom_properties(tmp_path: Path) -> None:
    _jar(tmp_path / "scala-library-2.13.18.jar", ("org.scala-lang", "scala-library"))
    # A shaded jar carries its relocated dependencies' pom.properties too.
    _jar(
        tmp_path / "hadoop-client-runtime-3.5.0.jar",
        ("org.apache.hadoop", "hadoop-client-runtime"),
        ("com.google.guava", "guava"),
    )
    _jar(tmp_path / "log4j-1.2-api-2.25.4.jar", ("org.apache.logging.log4j", "log4j-1.2-api"))
    _jar(tmp_path / "zstd-jni-1.5.7-7.jar")  # no pom.properties: falls back to the file name
    assert jars.shipped_artifacts(tmp_path) == {
        ("org.scala-lang", "scala-library"),
        ("org.apache.hadoop", "hadoop-client-runtime"),
        ("org.apache.logging.log4j", "log4j-1.2-api"),
        ("*", "zstd-jni"),
    }


def test_is_shipped_matches_group_and_artifact_or_name_only() -> None:
    shipped = {("org.scala-lang", "scala-library"), ("*", "zstd-jni")}

    def art(group: str, artifact: str) -> jars.Artifact:
        return jars.Artifact(group, artifact, "1", Path("x.jar"))

    assert jars.is_shipped(art("org.scala-lang", "scala-library"), shipped)
    assert jars.is_shipped(art("com.github.luben", "zstd-jni"), shipped)
    assert not jars.is_shipped(art("com.google.guava", "guava"), shipped)
    assert not jars.is_shipped(art("io.delta", "delta-spark_4.2_2.13"), shipped)


def test_pyspark_ships_scala_and_spark_but_not_the_extras() -> None:
    shipped = jars.shipped_artifacts(jars.pyspark_jars_dir())

    def shipped_by_pyspark(group: str, artifact: str) -> bool:
        return jars.is_shipped(jars.Artifact(group, artifact, "0", Path("x.jar")), shipped)

    # scala-library is built by sbt (no pom.properties): matched by file name.
    assert shipped_by_pyspark("org.scala-lang", "scala-library")
    assert shipped_by_pyspark("org.apache.spark", "spark-core_2.13")
    assert shipped_by_pyspark("org.apache.hadoop", "hadoop-client-runtime")
    assert shipped_by_pyspark("com.fasterxml.jackson.core", "jackson-databind")
    for group, artifact in [
        ("org.apache.spark", "spark-sql-kafka-0-10_2.13"),
        ("io.delta", "delta-spark_4.2_2.13"),
        ("org.postgresql", "postgresql"),
        ("org.apache.hadoop", "hadoop-aws"),
        ("org.apache.kafka", "kafka-clients"),
    ]:
        assert not shipped_by_pyspark(group, artifact), artifact


def test_manifest_is_read_only_when_stamped_and_complete(tmp_path: Path) -> None:
    bundle = tmp_path / "spark"
    jar = _jar(bundle / "org/postgresql/postgresql/42.7.8/postgresql-42.7.8.jar")
    (bundle / jars.MANIFEST).write_text("org/postgresql/postgresql/42.7.8/postgresql-42.7.8.jar\n")
    assert jars.read_manifest(tmp_path, "spark") is None
    (bundle / jars.STAMP).write_text("abc\n")
    assert jars.read_manifest(tmp_path, "spark") == [jar]
    jar.unlink()
    assert jars.read_manifest(tmp_path, "spark") is None


def test_spark_jars_without_a_resolved_cache_says_how_to_resolve(tmp_path: Path) -> None:
    with pytest.raises(StackError) as err:
        jars.spark_jars(tmp_path, env={})
    assert str(err.value) == (
        f"the Spark jars are not resolved in {tmp_path.absolute() / 'jars' / 'spark'}; "
        "run `restlake stack jars` (or `make jars`)"
    )


def test_spark_jars_honours_the_jars_dir_override(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    jar = _jar(cache / "spark/org/postgresql/postgresql/42.7.8/postgresql-42.7.8.jar")
    (cache / "spark" / jars.MANIFEST).write_text("org/postgresql/postgresql/42.7.8/postgresql-42.7.8.jar\n")
    (cache / "spark" / jars.STAMP).write_text("abc\n")
    assert jars.spark_jars(tmp_path / "state", env={"RESTLAKE_JARS_DIR": str(cache)}) == [jar]


def test_unknown_bundle_is_rejected(tmp_path: Path) -> None:
    known = r"known: kafka, spark, spark-udfs \(optional: openlineage\)"
    with pytest.raises(StackError, match=rf"unknown jar bundle 'flink'; {known}"):
        jars.resolve("flink", tmp_path)


def test_bundle_poms_are_found_in_the_checkout() -> None:
    root = jars.jvm_dir()
    assert (root / "kafka" / "pom.xml").is_file()
    assert (root / "spark" / "pom.xml").is_file()
