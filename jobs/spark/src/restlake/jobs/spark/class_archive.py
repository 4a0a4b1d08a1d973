"""A class data sharing (AppCDS) archive for the local driver's JVM: Spark's start without loading classes.

A local driver loads ~28,000 classes (Spark, Delta, Kafka, Hadoop) from its jars before its first
batch; in its first 15 seconds more than half of the JVM's sampled time went to finding, reading
and verifying them (Java Flight Recorder, `restlake run` on 2 cores). The JVM can instead map
them from an archive written by an earlier run. Measured on 2 cores, under load, three fresh
processes each way: the Spark session started in 6.7-8.7 s instead of 11.8-13.3 s, and its first
Delta write took 8.1-9.8 s instead of 13.5-15.3 s. That start is paid again by every driver
restarted after a crash, so it is most of how fast a source recovers.

How the archive comes to be: a driver that finds none for its JVM and classpath writes one under a
name of its own and renames it into place. Where the JDK has ``jcmd`` it dumps it from the running
JVM (``-XX:+RecordDynamicDumpInfo``, ``jcmd VM.cds dynamic_dump``) once its first batch with
records is done, when the classes a batch needs are loaded: a driver SIGKILLed later still leaves
one for its successor (measured: back to the pre-kill lag in 15-25 s with it, 41 s without). The
JVM stops for the dump, once per JVM and classpath (12.7 s measured on 2 cores, a 158 MB archive).
Where the run ends before that batch, or without ``jcmd``, the archive is written as the JVM exits
(``-XX:ArchiveClassesAtExit``). One driver at a time writes one (the others start as before); the
claim of a driver killed before it finished (its process gone, or 15 minutes old) is removed by the
next start. Its classes are those the driver used, so it fits the workload that wrote it. The JVM
checks an archive against the classpath and its own build and ignores one that does not match (a
jar updated in place, another JDK), so a stale archive costs the gain, never correctness; the name
is keyed on the JVM and the jars anyway, so that a changed classpath writes a new one. The three
most recently used archives are kept (~190 MB each); a new one prunes the rest.

Local drivers only: a cluster's driver and executors are other JVMs in other images.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# A file of this age still being written is a driver that died writing it.
_STALE_WRITE_S = 15 * 60
# How long a driver's exit waits for its JVM to write the archive (a few seconds on 2 cores).
_WRITE_WAIT_S = 120.0
# The JVM reports classes it cannot archive (signed jars, old class versions) as warnings on
# stdout, hundreds of lines: they say nothing a user can act on.
_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
# Archives kept in the cache folder, the most recently used first.
KEEP = 3
# How long a dump from the running JVM may take (seconds on 2 cores, more under load).
_DUMP_WAIT_S = 180.0


@dataclass(frozen=True)
class ArchivePlan:
    """What the driver's JVM is asked to do: map ``use``, or write ``write`` on exit (or neither)."""

    java_options: str
    use: Path | None = None
    write: Path | None = None
    final: Path | None = None
    # The jcmd that dumps ``write`` from the running JVM; None: the JVM writes it as it exits.
    jcmd: Path | None = None


def plan(jars: list[Path], cache_dir: Path) -> ArchivePlan:
    """The JVM options for a local driver with ``jars`` on its classpath, archives under ``cache_dir``."""
    java = _java_binary()
    if java is None:
        return ArchivePlan("")
    final = cache_dir / f"driver-{_key(java, jars)}.jsa"
    if final.is_file() and final.stat().st_size > 0:
        with contextlib.suppress(OSError):
            os.utime(final)  # its last use, for pruning
        return ArchivePlan(f"-XX:SharedArchiveFile={final} {_QUIET}", use=final)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        if _someone_writing(final):
            return ArchivePlan("")
        write = final.with_name(f"{final.name}.{os.getpid()}.tmp")
        # Claims the name: another driver starting now sees it and leaves the writing to this one.
        write.touch(exist_ok=False)
    except OSError as exc:
        log.info("no class archive for the driver's JVM: %s", exc)
        return ArchivePlan("")
    jcmd = java.parent / "jcmd"
    if jcmd.is_file():
        return ArchivePlan(f"-XX:+RecordDynamicDumpInfo {_QUIET}", write=write, final=final, jcmd=jcmd)
    return ArchivePlan(f"-XX:ArchiveClassesAtExit={write} {_QUIET}", write=write, final=final)


class _LiveDump:
    """The one dump of a running JVM that ``plan`` asked to record: at the first warm moment, else at exit."""

    def __init__(self, plan: ArchivePlan, pid: int) -> None:
        assert plan.write is not None and plan.final is not None and plan.jcmd is not None
        self.write, self.final, self.jcmd, self.pid = plan.write, plan.final, plan.jcmd, pid
        self._lock = threading.Lock()
        self._started = False
        self._thread: threading.Thread | None = None

    def start(self, *, wait: bool) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                if not wait:
                    self._thread = threading.Thread(target=self._dump, name="class-archive-dump", daemon=True)
                    self._thread.start()
                    return
                self._dump()
                return
        if wait and self._thread is not None:
            # At exit: the JVM must outlive a dump still being written.
            self._thread.join(_DUMP_WAIT_S)

    def _dump(self) -> None:
        started = time.monotonic()
        try:
            done = subprocess.run(
                [str(self.jcmd), str(self.pid), "VM.cds", "dynamic_dump", str(self.write)],
                capture_output=True,
                text=True,
                timeout=_DUMP_WAIT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.info("the driver's class archive was not written: %s", exc)
            self.write.unlink(missing_ok=True)
            return
        if not _put_in_place(self.write, self.final, written=done.returncode == 0, started=started):
            # Attach refused (a JVM started with -XX:+DisableAttachMechanism, another user): the
            # next driver tries again.
            log.info(
                "the driver's class archive was not written: %s", (done.stdout + done.stderr).strip()[-300:]
            )


def _put_in_place(write: Path, final: Path, *, written: bool, started: float) -> bool:
    """Move an archive the JVM wrote to ``final`` for the next driver (pruning the cache), or drop
    what a failed write left; whether it went in place."""
    if written and write.is_file() and write.stat().st_size > 0:
        os.replace(write, final)
        log.info(
            "class archive written for the next driver path=%s seconds=%.1f",
            final,
            time.monotonic() - started,
        )
        prune(final.parent)
        return True
    write.unlink(missing_ok=True)
    return False


# The dump this process's JVM records, if it records one (one JVM per process: pyspark's).
_live: list[_LiveDump] = []


def dump_when_warm() -> None:
    """Dump the archive this process's JVM records, if it records one, now that it is warm (the
    stream job calls this after a batch that held records); at most once, in the background."""
    for live in _live:
        live.start(wait=False)


def finish_at_exit(plan: ArchivePlan, spark: Any) -> None:
    """When ``plan`` writes an archive: at interpreter exit, let the JVM write it, then move it in place."""
    if plan.write is None or plan.final is None:
        return
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    write, final = plan.write, plan.final
    if plan.jcmd is not None and proc is not None:
        live = _LiveDump(plan, proc.pid)
        _live[:] = [live]

        def finish_live() -> None:
            # A run that ended before a warm moment: dump now, while the JVM still runs.
            live.start(wait=True)

        atexit.register(finish_live)
        return

    def finish() -> None:
        if proc is None:
            write.unlink(missing_ok=True)
            return
        started = time.monotonic()
        try:
            # pyspark's JVM exits when its stdin closes; the archive is written on the way out.
            if proc.stdin is not None:
                proc.stdin.close()
            code = proc.wait(timeout=_WRITE_WAIT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.info("the driver's class archive was not finished: %s", exc)
            return  # a later start removes the partial file
        _put_in_place(write, final, written=code == 0, started=started)

    atexit.register(finish)


def prune(cache_dir: Path, keep: int = KEEP) -> None:
    """Delete all but the ``keep`` most recently used archives: each other JDK or jar set (a new
    checkout, an upgrade) writes its own, and they are ~190 MB each."""
    archives = sorted(cache_dir.glob("driver-*.jsa"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in archives[keep:]:
        old.unlink(missing_ok=True)


def _someone_writing(final: Path) -> bool:
    """Whether another driver is writing ``final`` now; claims of drivers that died are removed."""
    writing = False
    for partial in final.parent.glob(f"{final.name}.*.tmp"):
        try:
            owner = int(partial.name[len(final.name) + 1 : -len(".tmp")])
            if not _alive(owner) or time.time() - partial.stat().st_mtime > _STALE_WRITE_S:
                partial.unlink(missing_ok=True)
            else:
                writing = True
        except (OSError, ValueError):
            continue
    return writing


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a driver killed while it held the claim does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _java_binary() -> Path | None:
    """The java pyspark launches: JAVA_HOME's, else the first on PATH (spark-class's own rule)."""
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else None
    if found is None or not found.is_file():
        which = shutil.which("java")
        found = Path(which) if which else None
    return found.resolve() if found is not None else None


def _key(java: Path, jars: list[Path]) -> str:
    """Names the JVM build and the classpath: each file's path, size and modification time."""
    import pyspark

    spark_jars = sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar"))
    digest = hashlib.sha256()
    for path in (java, *spark_jars, *jars):
        try:
            stat = path.stat()
            digest.update(f"{path.absolute()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()[:20]
