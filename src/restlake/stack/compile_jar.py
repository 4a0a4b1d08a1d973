"""Compile restlake's own JVM code (``jvm/<name>/src/main/java``) into a jar with ``javac``.

No Maven build: the sources are a few classes compiled against the jars pyspark ships (Spark's
Java UDF interfaces, Jackson), so a JDK's ``javac`` is all it takes, and the result lands in the
jar cache beside the resolved bundles, in the same layout with the same manifest and stamp.
Standard library only: the Spark image's jars stage runs it before anything else is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from restlake.errors import StackError

# The Java release Spark 4 runs on; the classes must load on any JVM that runs Spark.
JAVA_RELEASE = "17"
_JAVAC_TIMEOUT_S = 300.0
# Zip entries carry this date so that the same sources give the same jar, byte for byte.
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


class JdkMissing(StackError):
    """No ``javac`` on PATH: a Java runtime alone cannot compile."""


def sources(source_dir: Path) -> list[Path]:
    return sorted(source_dir.rglob("*.java"))


def compile_jar(source_dir: Path, classpath: list[Path], jar: Path) -> Path:
    """Compile every ``.java`` under ``source_dir`` against ``classpath`` into ``jar``."""
    javac = shutil.which("javac")
    if javac is None:
        raise JdkMissing(
            "javac is not on PATH, so restlake's Spark functions cannot be compiled; install a JDK "
            f"(Java {JAVA_RELEASE} or newer, e.g. apt-get install openjdk-17-jdk-headless)"
        )
    files = sources(source_dir)
    if not files:
        raise StackError(f"no Java sources under {source_dir}")
    with tempfile.TemporaryDirectory(prefix="restlake-javac-") as tmp:
        classes = Path(tmp)
        argv = [
            javac,
            "--release",
            JAVA_RELEASE,
            "-encoding",
            "UTF-8",
            "-nowarn",
            "-cp",
            ":".join(str(p) for p in classpath),
            "-d",
            str(classes),
            *map(str, files),
        ]
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=_JAVAC_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(
                f"javac did not finish within {_JAVAC_TIMEOUT_S:.0f}s compiling {source_dir}"
            ) from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise StackError(f"javac failed ({result.returncode}) compiling {source_dir}:\n{output}")
        jar.parent.mkdir(parents=True, exist_ok=True)
        _write_jar(classes, jar)
    return jar


def _write_jar(classes: Path, jar: Path) -> None:
    entries = [("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nCreated-By: restlake\r\n\r\n")]
    entries += [
        (path.relative_to(classes).as_posix(), path.read_bytes()) for path in sorted(classes.rglob("*.class"))
    ]
    with zipfile.ZipFile(jar, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
