"""JVM jars for the stack, resolved from Maven Central with ``mvn`` and cached under the state folder.

Each bundle is a small pom under ``jvm/<name>/pom.xml`` that is never built, only fed to
``mvn dependency:copy-dependencies``. A bundle lands in ``<jars>/<name>/`` in repository
layout (``group/artifact/version/file.jar``), with a ``classpath.txt`` manifest and a
stamp holding the hash of its inputs; a matching stamp means there is nothing to do.

The ``spark`` bundle is added to pyspark, which already ships Scala, Spark, the Hadoop
client, logging and Jackson. A second copy of any of those on the classpath breaks Spark
in ways that surface far from the cause, so every artifact pyspark ships is dropped after
the copy (the poms also exclude the big known ones so they are not even downloaded).

The ``spark-udfs`` bundle is not resolved but compiled: restlake's own Spark functions, Java
sources under ``jvm/spark-udfs/src/main/java`` (restlake.stack.compile_jar). Without a JDK it is
left out with a warning, and the stream job falls back to slower Spark built-ins.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from restlake.errors import StackError
from restlake.stack.compile_jar import JdkMissing, compile_jar, sources

if TYPE_CHECKING:
    from restlake.lineage.settings import LineageSettings
from restlake.stack.state import jars_dir_for

log = logging.getLogger(__name__)

BUNDLES = ("kafka", "spark", "spark-udfs")
# Compiled from jvm/<name>/src/main/java with javac instead of resolved with mvn.
COMPILED_BUNDLES = ("spark-udfs",)
# Where a compiled bundle's jar sits in its folder, in repository layout like the others.
_COMPILED_LAYOUT = Path("io/restlake/{name}/0/{name}-0.jar")
# Resolved only on demand (``resolve("openlineage", ...)``), never by ``resolve_all``: only
# RESTLAKE_LINEAGE_SPARK_LISTENER=true needs it.
OPTIONAL_BUNDLES = ("openlineage",)
MANIFEST = "classpath.txt"
STAMP = ".resolved-stamp"
# Bumped when the resolution logic changes in a way that must invalidate existing caches.
_LOGIC_VERSION = "1"
_MAVEN_TIMEOUT_S = 1800.0
_POM_PROPERTIES = re.compile(r"^META-INF/maven/([^/]+)/([^/]+)/pom\.properties$")


@dataclass(frozen=True)
class Artifact:
    """One jar in repository layout: ``<group path>/<artifact>/<version>/<file>``."""

    group: str
    artifact: str
    version: str
    path: Path

    @classmethod
    def from_layout(cls, root: Path, jar: Path) -> Artifact:
        parts = jar.relative_to(root).parts
        if len(parts) < 4:
            raise StackError(f"{jar} is not in Maven repository layout under {root}")
        return cls(group=".".join(parts[:-3]), artifact=parts[-3], version=parts[-2], path=jar)


def jvm_dir() -> Path:
    """Where the bundle poms live: ``RESTLAKE_JVM_DIR``, else ``jvm/`` of the source checkout."""
    override = os.environ.get("RESTLAKE_JVM_DIR")
    candidates = [Path(override)] if override else []
    # src/restlake/stack/jars.py -> the repository root is three levels above the package.
    candidates += [Path(__file__).resolve().parents[3] / "jvm", Path.cwd() / "jvm"]
    for candidate in candidates:
        if (candidate / "kafka" / "pom.xml").is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise StackError(f"cannot find the jar bundle poms (jvm/<name>/pom.xml); looked in: {tried}")


def pyspark_jars_dir() -> Path:
    """The jars pyspark runs with: ``$SPARK_HOME/jars`` when set (pyspark prefers it), else the wheel's."""
    spark_home = os.environ.get("SPARK_HOME")
    if spark_home:
        return Path(spark_home) / "jars"
    # find_spec, not import: importing pyspark costs a second and is not needed to find a folder.
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise StackError("pyspark is not installed in this environment; install restlake's requirements.lock")
    return Path(spec.origin).parent / "jars"


def shipped_artifacts(jars_dir: Path) -> set[tuple[str, str]]:
    """``(group, artifact)`` of every jar in a flat jar folder, read from the jars' own pom.properties.

    Shaded jars carry the pom.properties of everything they relocated; only the entry whose
    artifact id names the jar file itself counts, so a shaded guava does not mask a real one.
    """
    shipped: set[tuple[str, str]] = set()
    for jar in sorted(jars_dir.glob("*.jar")):
        found = False
        with contextlib.suppress(zipfile.BadZipFile, OSError), zipfile.ZipFile(jar) as zf:
            for name in zf.namelist():
                match = _POM_PROPERTIES.match(name)
                if match and jar.name.startswith(f"{match.group(2)}-"):
                    shipped.add((match.group(1), match.group(2)))
                    found = True
        if not found:
            # Not built by Maven: fall back to the file name, group unknown.
            stem = re.sub(r"-\d[^-]*(?:-[^-]*)?\.jar$", "", jar.name)
            shipped.add(("*", stem))
    return shipped


def is_shipped(artifact: Artifact, shipped: set[tuple[str, str]]) -> bool:
    return (artifact.group, artifact.artifact) in shipped or ("*", artifact.artifact) in shipped


def bundle_dir(jars_dir: Path, name: str) -> Path:
    return jars_dir / name


def read_manifest(jars_dir: Path, name: str) -> list[Path] | None:
    """The bundle's jars in classpath order, or None when it was never resolved."""
    root = bundle_dir(jars_dir, name)
    manifest = root / MANIFEST
    if not (root / STAMP).is_file() or not manifest.is_file():
        return None
    jars = [root / line for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    missing = [j for j in jars if not j.is_file()]
    if missing:
        log.warning(
            "jar cache %s lists %s missing jars (first: %s); it will be resolved again",
            root,
            len(missing),
            missing[0],
        )
        return None
    return jars


def _inputs_hash(pom: Path, name: str) -> str:
    digest = hashlib.sha256()
    digest.update(_LOGIC_VERSION.encode())
    if name in COMPILED_BUNDLES:
        root = _java_sources(name)
        for source in sources(root):
            digest.update(source.relative_to(root).as_posix().encode())
            digest.update(source.read_bytes())
    else:
        digest.update(pom.read_bytes())
    if name in ("spark", *COMPILED_BUNDLES):
        # The filter depends on what pyspark ships, so a pyspark upgrade re-resolves.
        for jar in sorted(pyspark_jars_dir().glob("*.jar")):
            digest.update(jar.name.encode())
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(jars_dir: Path) -> Iterator[None]:
    # Two `make` targets or pytest workers may resolve at once; one mvn per cache is enough.
    jars_dir.mkdir(parents=True, exist_ok=True)
    with (jars_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def resolve(name: str, jars_dir: Path, *, force: bool = False) -> list[Path]:
    """Resolve one bundle into ``<jars_dir>/<name>`` unless a matching stamp says it is there."""
    if name not in BUNDLES and name not in OPTIONAL_BUNDLES:
        raise StackError(
            f"unknown jar bundle {name!r}; known: {', '.join(BUNDLES)} "
            f"(optional: {', '.join(OPTIONAL_BUNDLES)})"
        )
    pom = jvm_dir() / name / "pom.xml"
    wanted = _inputs_hash(pom, name)
    if name in COMPILED_BUNDLES:
        return _compiled(name, jars_dir.absolute(), wanted, force=force)
    # Absolute: mvn resolves a relative outputDirectory against the pom's folder, not ours.
    jars_dir = jars_dir.absolute()
    target = bundle_dir(jars_dir, name)
    with _locked(jars_dir):
        stamp = target / STAMP
        if not force and stamp.is_file() and stamp.read_text(encoding="ascii").strip() == wanted:
            cached = read_manifest(jars_dir, name)
            if cached is not None:
                log.debug("jar bundle %s is up to date in %s", name, target)
                return cached
        return _resolve_into(name, pom, target, wanted)


def _java_sources(name: str) -> Path:
    return jvm_dir() / name / "src" / "main" / "java"


def _compiled(name: str, jars_dir: Path, wanted: str, *, force: bool) -> list[Path]:
    """A compiled bundle from the cache, else compiled now; [] (and a warning) without a JDK."""
    target = bundle_dir(jars_dir, name)
    with _locked(jars_dir):
        stamp = target / STAMP
        if not force and stamp.is_file() and stamp.read_text(encoding="ascii").strip() == wanted:
            cached = read_manifest(jars_dir, name)
            if cached is not None:
                return cached
        staging = target.with_name(f".{name}.staging-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        layout = Path(str(_COMPILED_LAYOUT).format(name=name))
        started = time.monotonic()
        try:
            compile_jar(_java_sources(name), sorted(pyspark_jars_dir().glob("*.jar")), staging / layout)
        except JdkMissing as exc:
            shutil.rmtree(staging, ignore_errors=True)
            # Not fatal: Spark itself runs on a JRE, and the stream job has a slower fallback.
            log.warning("jar bundle %s left out: %s", name, exc)
            return []
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        (staging / MANIFEST).write_text(f"{layout.as_posix()}\n", encoding="utf-8")
        (staging / STAMP).write_text(wanted + "\n", encoding="ascii")
        old = target.with_name(f".{name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        log.info("compiled jar bundle %s in %.1fs", name, time.monotonic() - started)
        return [target / layout]


def _resolve_into(name: str, pom: Path, target: Path, stamp_value: str) -> list[Path]:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (`mvn`) is not on PATH; it resolves the stack's jars. Install it (apt-get install maven)."
        )
    # Copy into a sibling first and swap at the end, so an interrupted download never leaves
    # a half-filled bundle that a later run would take for complete.
    staging = target.with_name(f".{name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    argv = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-Dmdep.useRepositoryLayout=true",
        "-Dmdep.copyPom=false",
        "-DincludeScope=runtime",
    ]
    log.info("resolving jar bundle %s from %s with mvn into %s", name, pom, target)
    started = time.monotonic()
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=_MAVEN_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise StackError(
            f"mvn did not finish resolving {pom} within {_MAVEN_TIMEOUT_S:.0f}s: {' '.join(argv)}"
        ) from exc
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        output = (result.stdout + result.stderr).strip()
        tail = "\n".join(output.splitlines()[-25:])
        raise StackError(
            f"mvn failed ({result.returncode}) resolving jar bundle {name!r}:\n  {' '.join(argv)}\n{tail}\n"
            "Check network access to Maven Central and that every version in the pom exists."
        )
    artifacts = [Artifact.from_layout(staging, jar) for jar in sorted(staging.rglob("*.jar"))]
    if name == "spark":
        artifacts = _drop_shipped(artifacts, staging)
    manifest = "".join(f"{a.path.relative_to(staging)}\n" for a in artifacts)
    (staging / MANIFEST).write_text(manifest, encoding="utf-8")
    (staging / STAMP).write_text(stamp_value + "\n", encoding="ascii")
    old = target.with_name(f".{name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    log.info("resolved jar bundle %s: %s jars in %.1fs", name, len(artifacts), time.monotonic() - started)
    return [target / a.path.relative_to(staging) for a in artifacts]


def _drop_shipped(artifacts: list[Artifact], root: Path) -> list[Artifact]:
    shipped = shipped_artifacts(pyspark_jars_dir())
    kept: list[Artifact] = []
    for artifact in artifacts:
        if is_shipped(artifact, shipped):
            log.info(
                "dropping %s:%s:%s, pyspark ships its own",
                artifact.group,
                artifact.artifact,
                artifact.version,
            )
            artifact.path.unlink()
        else:
            kept.append(artifact)
    # Leave no empty version folders behind, so the cache holds exactly the classpath.
    for folder in sorted(
        (p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        with contextlib.suppress(OSError):
            folder.rmdir()
    return kept


def resolve_all(jars_dir: Path, *, force: bool = False) -> dict[str, list[Path]]:
    return {name: resolve(name, jars_dir, force=force) for name in BUNDLES}


def _jars_dir(state_dir: Path | None, jars_dir: Path | None, env: Mapping[str, str] | None) -> Path:
    if jars_dir is not None:
        return jars_dir.absolute()
    if state_dir is None:
        from restlake.settings import StackSettings

        state_dir = StackSettings().state_dir
    return jars_dir_for(state_dir, env)


def spark_jars(
    state_dir: Path | None = None,
    *,
    jars_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    lineage: LineageSettings | None = None,
) -> list[Path]:
    """Jars to pass as ``spark.jars``: Kafka source, Delta, Postgres JDBC, s3a (nothing pyspark ships),
    restlake's own Spark functions (``spark-udfs``, when a JDK compiled them), and the OpenLineage
    listener's when the session runs it (``lineage``, read from the environment when None).

    Raises StackError when they were never resolved: resolving downloads ~700 MB, which
    must not start by surprise inside a streaming job; run ``restlake stack jars`` first.
    """
    where = _jars_dir(state_dir, jars_dir, env)
    jars = read_manifest(where, "spark")
    if jars is None:
        raise StackError(
            f"the Spark jars are not resolved in {where / 'spark'}; "
            "run `restlake stack jars` (or `make jars`)"
        )
    # Absent without a JDK (a warning said so when the cache was filled); the job then uses
    # Spark built-ins instead.
    jars = [*jars, *(read_manifest(where, "spark-udfs") or [])]
    # Chosen here, beside the connector jars, not by the session: an image bakes both in and
    # passes none, and only the local stack knows its cache. Imported here: the image's jars
    # stage runs this module with the standard library only.
    from restlake.lineage.settings import LineageSettings
    from restlake.lineage.spark_listener import listener_enabled

    if listener_enabled(lineage if lineage is not None else LineageSettings()):
        jars = [*jars, *openlineage_jars(jars_dir=where)]
    return jars


def openlineage_jars(
    state_dir: Path | None = None, *, jars_dir: Path | None = None, env: Mapping[str, str] | None = None
) -> list[Path]:
    """The OpenLineage Spark listener jar, for ``spark.jars`` when the listener is enabled.

    Never resolved by surprise either: raises StackError until ``restlake stack jars --openlineage``
    has put it in the cache.
    """
    where = _jars_dir(state_dir, jars_dir, env)
    jars = read_manifest(where, "openlineage")
    if jars is None:
        raise StackError(
            f"the OpenLineage Spark listener jar is not resolved in {where / 'openlineage'}; "
            "run `restlake stack jars --openlineage`"
        )
    return jars


def kafka_classpath(jars_dir: Path) -> list[Path]:
    jars = read_manifest(jars_dir, "kafka")
    if jars is None:
        raise StackError(
            f"the Kafka jars are not resolved in {jars_dir / 'kafka'}; "
            "run `restlake stack jars` (or `make jars`)"
        )
    return jars
