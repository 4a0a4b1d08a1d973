"""Supervision of the stack's long-lived processes: start detached, identify, stop.

A pid file alone cannot be trusted after a crash: the pid may be dead, or reused by an
unrelated process. A pid counts as ours only when it is alive (not a zombie) and its
``/proc/<pid>/cmdline`` carries a marker unique to this state folder (the config file or
data folder path), so ``down`` never signals a stranger.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from restlake.child_env import child_env
from restlake.errors import StackError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceStatus:
    """What ``restlake stack status`` shows for one service."""

    name: str
    running: bool
    pid: int | None
    port: int | None
    log: Path | None
    managed: bool = True
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "running": self.running,
            "pid": self.pid,
            "port": self.port,
            "log": None if self.log is None else str(self.log),
            "managed": self.managed,
            "detail": self.detail,
        }


def read_pid(pid_file: Path) -> int | None:
    """The pid in the file's first line, or None if the file is missing or holds no pid."""
    try:
        first = pid_file.read_text(encoding="ascii", errors="replace").splitlines()[:1]
    except FileNotFoundError:
        return None
    try:
        pid = int(first[0].strip()) if first else 0
    except ValueError:
        return None
    return pid if pid > 0 else None


def write_pid(pid_file: Path, pid: int) -> None:
    tmp = pid_file.with_name(f".{pid_file.name}.tmp")
    tmp.write_text(f"{pid}\n", encoding="ascii")
    os.replace(tmp, pid_file)


def _reap(pid: int) -> None:
    # A child of this very process (tests start and kill services in-process) stays a zombie
    # until waited for; elsewhere the pid belongs to another parent and this is a no-op.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(pid: int) -> bool:
    """True while the pid exists and is not a fully exited zombie."""
    _reap(pid)
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    state = fields.get("State", "").strip()[:1]
    if state not in ("Z", "X"):
        return True
    # A JVM's main thread turns zombie before its other threads have exited, and those still
    # hold the process's sockets: the process is gone only when no thread is left.
    return int(fields.get("Threads", "1").strip() or "1") > 1


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def is_ours(pid: int, markers: Sequence[str]) -> bool:
    """Alive, and every marker appears in its command line."""
    if not is_alive(pid):
        return False
    joined = "\0".join(cmdline(pid))
    return all(marker in joined for marker in markers)


def find_by_markers(markers: Sequence[str]) -> int | None:
    """The lowest pid whose command line carries every marker, by scanning ``/proc``."""
    found = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    for pid in sorted(found):
        if pid != os.getpid() and is_ours(pid, markers):
            return pid
    return None


def live_pid(pid_file: Path, markers: Sequence[str]) -> int | None:
    """The running pid of the service, else None; a stale pid file is removed.

    When the pid file is missing or stale but a process with the markers runs (a crashed CLI
    call lost the file), that process is adopted and the file rewritten, so ``down`` stops it
    and ``up`` does not start a second one on the same data.
    """
    pid = read_pid(pid_file)
    if pid is not None and is_ours(pid, markers):
        return pid
    if pid is not None:
        alive = is_alive(pid)
        reason = f"is another program ({' '.join(cmdline(pid))[:120]})" if alive else "is not running"
        log.warning("removing stale pid file %s: pid %s %s", pid_file, pid, reason)
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
    orphan = find_by_markers(markers)
    if orphan is not None:
        log.warning("adopting running process %s that matches %s (its pid file was lost)", orphan, pid_file)
        if pid_file.parent.is_dir():
            write_pid(pid_file, orphan)
    return orphan


def start_detached(
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
) -> int:
    """Start ``argv`` in its own session, output appended to ``log_file``; returns its pid.

    Its own session (and so its own process group) lets it outlive the CLI call and lets a
    SIGKILL fault reach its children too.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=child_env(base=env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        except OSError as exc:
            raise StackError(f"could not start {argv[0]}: {exc}") from exc
    write_pid(pid_file, proc.pid)
    # The Popen object is dropped on purpose: the service must not be tied to this process.
    # subprocess reaps it if it exits while we live; is_alive() treats a zombie as dead.
    return proc.pid


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group led by ``pid`` (start_detached made it a leader), else the pid."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    except PermissionError as exc:
        raise StackError(f"not allowed to signal pid {pid}: {exc}") from exc


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    return not is_alive(pid)


def stop(
    name: str,
    pid: int,
    *,
    graceful: signal.Signals = signal.SIGTERM,
    timeout: float = 30.0,
    kill: bool = False,
) -> None:
    """Stop a service and wait until it has exited.

    ``kill`` sends SIGKILL to the whole group at once (a crash, for fault tests); otherwise the
    graceful signal goes to the leader only, so the service shuts its children down itself,
    and SIGKILL follows after ``timeout`` seconds.
    """
    if kill:
        log.info("killing %s (pid %s) with SIGKILL", name, pid)
        signal_group(pid, signal.SIGKILL)
    else:
        log.info("stopping %s (pid %s) with %s", name, pid, graceful.name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, graceful)
        if wait_gone(pid, timeout):
            _sweep_group(pid)
            return
        log.warning(
            "%s (pid %s) still running %.0fs after %s; sending SIGKILL", name, pid, timeout, graceful.name
        )
        signal_group(pid, signal.SIGKILL)
    if not wait_gone(pid, 10.0):
        raise StackError(
            f"{name} (pid {pid}) did not exit even after SIGKILL; check `ps -o pid,stat,cmd -p {pid}`"
        )
    _sweep_group(pid)


def _sweep_group(pgid: int) -> None:
    # Children that outlived their leader (a postgres backend after the postmaster died) would
    # hold ports or shared memory and block the next start.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
