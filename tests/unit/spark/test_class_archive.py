"""Which archive a local driver's JVM maps or writes (restlake.jobs.spark.class_archive)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from restlake.jobs.spark import class_archive


@pytest.fixture()
def jars(tmp_path: Path) -> list[Path]:
    jar = tmp_path / "jars" / "connector.jar"
    jar.parent.mkdir()
    jar.write_bytes(b"jar")
    return [jar]


@pytest.fixture()
def jdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A java whose JDK has jcmd beside it (the dump from the running JVM)."""
    bin_dir = tmp_path / "jdk" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("java", "jcmd"):
        (bin_dir / tool).write_text("#!/bin/sh\n")
    monkeypatch.setattr(class_archive, "_java_binary", lambda: bin_dir / "java")
    return bin_dir


def test_with_jcmd_the_running_jvm_records_what_a_dump_needs(
    tmp_path: Path, jars: list[Path], jdk: Path
) -> None:
    plan = class_archive.plan(jars, tmp_path / "cache")
    assert plan.write is not None and plan.jcmd == jdk / "jcmd"
    assert "-XX:+RecordDynamicDumpInfo" in plan.java_options
    assert "ArchiveClassesAtExit" not in plan.java_options


def test_the_first_driver_writes_one_and_the_next_maps_it(
    tmp_path: Path, jars: list[Path], jdk: Path
) -> None:
    (jdk / "jcmd").unlink()  # a JRE, or a JDK without jcmd: the JVM writes the archive as it exits
    cache = tmp_path / "cache"
    first = class_archive.plan(jars, cache)
    assert first.write is not None and first.final is not None and first.use is None
    assert first.jcmd is None
    assert f"-XX:ArchiveClassesAtExit={first.write}" in first.java_options
    # What the first driver's exit does once its JVM wrote the file.
    first.write.write_bytes(b"archive")
    os.replace(first.write, first.final)

    second = class_archive.plan(jars, cache)
    assert second.use == first.final and second.write is None
    assert f"-XX:SharedArchiveFile={first.final}" in second.java_options


def test_one_driver_at_a_time_writes(tmp_path: Path, jars: list[Path]) -> None:
    cache = tmp_path / "cache"
    writing = class_archive.plan(jars, cache)
    assert writing.write is not None
    assert class_archive.plan(jars, cache).java_options == ""


def test_a_driver_that_died_writing_does_not_block_the_next(tmp_path: Path, jars: list[Path]) -> None:
    cache = tmp_path / "cache"
    dead = class_archive.plan(jars, cache)
    assert dead.write is not None
    old = time.time() - 3600
    os.utime(dead.write, (old, old))
    again = class_archive.plan(jars, cache)
    assert again.write is not None
    # The stale file went; the claim now is a new one (same name: same process here).
    assert time.time() - again.write.stat().st_mtime < 600
    assert [p.name for p in cache.glob("*.tmp")] == [again.write.name]


def test_a_changed_jar_names_another_archive(tmp_path: Path, jars: list[Path]) -> None:
    cache = tmp_path / "cache"
    before = class_archive.plan(jars, cache)
    assert before.write is not None
    before.write.unlink()
    jars[0].write_bytes(b"a newer jar, another size")
    after = class_archive.plan(jars, cache)
    assert after.final != before.final


def test_without_a_java_there_is_nothing_to_archive(
    tmp_path: Path, jars: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(class_archive, "_java_binary", lambda: None)
    assert class_archive.plan(jars, tmp_path / "cache") == class_archive.ArchivePlan("")


def test_an_unwritable_folder_means_no_archive(tmp_path: Path, jars: list[Path]) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert class_archive.plan(jars, blocked / "cache").java_options == ""


def test_only_the_most_recently_used_archives_are_kept(tmp_path: Path) -> None:
    now = time.time()
    for age, name in enumerate(["newest", "recent", "older", "oldest"]):
        archive = tmp_path / f"driver-{name}.jsa"
        archive.write_bytes(b"x")
        os.utime(archive, (now - age * 3600, now - age * 3600))
    (tmp_path / "driver-writing.jsa.1.tmp").write_bytes(b"")
    class_archive.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "driver-newest.jsa",
        "driver-recent.jsa",
        "driver-writing.jsa.1.tmp",
    ]


def test_mapping_an_archive_marks_it_used(tmp_path: Path, jars: list[Path]) -> None:
    cache = tmp_path / "cache"
    first = class_archive.plan(jars, cache)
    assert first.write is not None and first.final is not None
    first.write.write_bytes(b"archive")
    os.replace(first.write, first.final)
    os.utime(first.final, (0, 0))
    class_archive.plan(jars, cache)
    assert time.time() - first.final.stat().st_mtime < 600


def test_the_claim_of_a_driver_that_is_gone_is_taken_over(tmp_path: Path, jars: list[Path]) -> None:
    cache = tmp_path / "cache"
    mine = class_archive.plan(jars, cache)
    assert mine.write is not None
    # The same claim under the pid of a process that no longer runs: a driver SIGKILLed while writing.
    code = "import os; print(os.getpid())"
    gone = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    dead_claim = mine.write.with_name(mine.write.name.replace(f".{os.getpid()}.", f".{int(gone.stdout)}."))
    os.replace(mine.write, dead_claim)
    again = class_archive.plan(jars, cache)
    assert again.write is not None
    assert not dead_claim.exists()
