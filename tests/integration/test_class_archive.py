"""A local driver's JVM writes its class archive on exit, and the next driver's JVM maps it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DRIVER = """
import sys
from pathlib import Path
from restlake.jobs.spark.session import build_spark
from restlake.jobs.spark.settings import SparkSettings
settings = SparkSettings(class_archive_dir=Path(sys.argv[1]), log_level="ERROR")
spark = build_spark("class-archive-test", jars=[Path(p) for p in sys.argv[2:]], settings=settings)
print(spark.sparkContext.getConf().get("spark.driver.extraJavaOptions"))
print("rows", spark.range(1000).where("id % 2 = 0").count())
spark.stop()
"""


def _driver(archives: Path, jars: list[Path]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(archives), *map(str, jars)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_archive_written_at_exit_is_mapped_by_the_next_driver(
    tmp_path: Path, spark_jars: list[Path]
) -> None:
    archives = tmp_path / "archives"
    first = _driver(archives, spark_jars)
    assert "-XX:ArchiveClassesAtExit=" in first and "rows 500" in first
    written = list(archives.glob("driver-*.jsa"))
    assert len(written) == 1 and written[0].stat().st_size > 1_000_000
    assert not list(archives.glob("*.tmp"))
    # The JVM's own log lines about classes it could not archive stay out of the output.
    assert "[cds]" not in first

    second = _driver(archives, spark_jars)
    assert f"-XX:SharedArchiveFile={written[0]}" in second and "rows 500" in second
