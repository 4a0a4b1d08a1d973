"""A local driver's JVM writes its class archive (after a batch, else at exit); the next one maps it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

# A local driver: a session (mapping or recording an archive), a Spark job.
STARTED = """
import os, signal, sys, time
from pathlib import Path
from restlake.jobs.spark import class_archive
from restlake.jobs.spark.session import build_spark
from restlake.jobs.spark.settings import SparkSettings
settings = SparkSettings(class_archive_dir=Path(sys.argv[1]), log_level="ERROR")
spark = build_spark("class-archive-test", jars=[Path(p) for p in sys.argv[2:]], settings=settings)
print(spark.sparkContext.getConf().get("spark.driver.extraJavaOptions"))
print("rows", spark.range(1000).where("id % 2 = 0").count(), flush=True)
"""
DRIVER = STARTED + "spark.stop()\n"
# A stream driver after its first batch with records (restlake.jobs.spark.batch), then SIGKILLed:
# no exit handler runs, as when a source's driver is killed.
KILLED_AFTER_A_BATCH = (
    STARTED
    + """
class_archive.dump_when_warm()
deadline = time.monotonic() + 300
while not list(Path(sys.argv[1]).glob("driver-*.jsa")) and time.monotonic() < deadline:
    time.sleep(0.5)
print("dumped", bool(list(Path(sys.argv[1]).glob("driver-*.jsa"))), flush=True)
os.killpg(0, signal.SIGKILL)
"""
)


def _driver(archives: Path, jars: list[Path], script: str = DRIVER, *, killed: bool = False) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, str(archives), *map(str, jars)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        # Its own process group, which the killed driver SIGKILLs whole (Python and the JVM).
        start_new_session=True,
    )
    if killed:
        assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    else:
        assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_archive_written_at_exit_is_mapped_by_the_next_driver(
    tmp_path: Path, spark_jars: list[Path]
) -> None:
    archives = tmp_path / "archives"
    first = _driver(archives, spark_jars)
    # The JDK has jcmd, so the JVM records what a dump needs; the run ended before a warm moment,
    # so the dump came at exit.
    assert "-XX:+RecordDynamicDumpInfo" in first and "rows 500" in first
    written = list(archives.glob("driver-*.jsa"))
    assert len(written) == 1 and written[0].stat().st_size > 1_000_000
    assert not list(archives.glob("*.tmp"))
    # The JVM's own log lines about classes it could not archive stay out of the output.
    assert "[cds]" not in first

    second = _driver(archives, spark_jars)
    assert f"-XX:SharedArchiveFile={written[0]}" in second and "rows 500" in second


def test_a_driver_killed_after_its_first_batch_leaves_an_archive(
    tmp_path: Path, spark_jars: list[Path]
) -> None:
    archives = tmp_path / "archives"
    first = _driver(archives, spark_jars, KILLED_AFTER_A_BATCH, killed=True)
    assert "-XX:+RecordDynamicDumpInfo" in first and "dumped True" in first
    (written,) = archives.glob("driver-*.jsa")
    assert written.stat().st_size > 1_000_000 and not list(archives.glob("*.tmp"))
    second = _driver(archives, spark_jars)
    assert f"-XX:SharedArchiveFile={written}" in second and "rows 500" in second
