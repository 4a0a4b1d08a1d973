"""PostgreSQL 16 from the binaries inside the ``pgserver`` wheel, on TCP loopback.

pgserver itself only listens on a unix socket; Spark's JDBC writer and other tools need TCP,
so the stack runs the bundled ``initdb`` and ``postgres`` itself. Durability settings stay at
their defaults (fsync on): crash tests rely on them.

Running as root (CI does): ``initdb`` and ``postgres`` refuse root, so, as pgserver does, the
server runs as the unprivileged system user ``pgserver`` (created if missing), owning the data
folder, with search permission added to the folders above it so that user can reach it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from restlake.errors import StackError
from restlake.redaction import redact as redact_text
from restlake.stack import process
from restlake.stack.process import ServiceStatus
from restlake.stack.service import LocalService
from restlake.stack.state import LOOPBACK, PostgresState, StackPaths, wait_port_free

log = logging.getLogger(__name__)

# Same account pgserver creates, so a machine that ran pgserver as root needs no second user.
SYSTEM_USER = "pgserver"
DB_USER = "postgres"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# A service killed a moment ago may still hold its port while the kernel tears it down.
PORT_RELEASE_TIMEOUT_S = 10.0
_INITDB_TIMEOUT_S = 120.0
# sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
MIB = 1024 * 1024
# shared_buffers: this share of the machine, within these bounds. The default 128 MiB is smaller
# than the bronze key ledger's index after a few million records, and its pages are touched in
# random order (keys are hashes), so batches read them back from the OS and wrote them out again:
# a claim of 100k keys against 5M measured 2.7 s at 128 MB, 2.2 s at 1 GB (1.9 and 1.5 s with the
# keys in order; 1.5 s against an empty ledger). The stack shares the machine with Kafka and the
# Spark driver (a quarter of it), hence 1/16.
_SHARED_BUFFERS_SHARE = 16
_SHARED_BUFFERS_FLOOR_MIB = 128
_SHARED_BUFFERS_CEILING_MIB = 1024


def server_settings(machine_bytes: int | None = None) -> dict[str, str]:
    """The settings the stack's Postgres runs with beyond its defaults, sized for ``machine_bytes``
    of RAM (default: this machine's). Durability (fsync, full page writes) stays as it is."""
    if machine_bytes is None:
        machine_bytes = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    share_mib = machine_bytes // MIB // _SHARED_BUFFERS_SHARE
    shared_mib = min(_SHARED_BUFFERS_CEILING_MIB, max(_SHARED_BUFFERS_FLOOR_MIB, share_mib))
    return {
        # Several Spark executors, the fetcher and tests connect at once.
        "max_connections": "200",
        "shared_buffers": f"{shared_mib}MB",
        # A batch writes ~100k ledger and event rows: at the default 1 GB a checkpoint came every
        # few batches, and each one makes the next write of every page log the whole page again.
        "max_wal_size": "4GB",
        "logging_collector": "off",
    }


def redact(dsn: str) -> str:
    """The DSN with any password replaced, fit for logs and error messages."""
    return redact_text(dsn)


def bin_dir() -> Path:
    """``pgserver/pginstall/bin`` of the installed pgserver wheel."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise StackError("the pgserver package is not installed; install restlake's requirements.lock")
    path = Path(spec.origin).parent / "pginstall" / "bin"
    if not (path / "postgres").is_file():
        raise StackError(f"pgserver is installed but has no postgres binary in {path}")
    return path


def check_reachable(dsn: str, timeout: float = 5.0) -> None:
    """Connect and run ``select 1``, or raise StackError naming the (redacted) DSN."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout)), autocommit=True) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        raise StackError(f"Postgres at {redact(dsn)} is not reachable: {str(exc).strip()}") from exc


class PostgresServer(LocalService):
    """The stack's own Postgres: data in ``<state>/postgres/data``, TCP on the recorded port."""

    name = "postgres"

    def __init__(self, paths: StackPaths, state: PostgresState) -> None:
        if state.port is None:
            raise StackError("no Postgres port recorded in the stack state; run `restlake stack up`")
        self.paths = paths
        self.port: int = state.port
        self.home = paths.postgres
        self.data_dir = self.home / "data"
        self.log_file = self.home / "postgres.log"
        self.pid_file = self.home / "postgres.pid"
        self.socket_dir = self._socket_dir()
        self.user = SYSTEM_USER if os.geteuid() == 0 else None

    def _socket_dir(self) -> Path:
        preferred = self.home / "run"
        if len(str(preferred / f".s.PGSQL.{self.port}")) <= _MAX_SOCKET_PATH:
            return preferred
        # A deep state folder would overflow sun_path; a short folder named after it stays unique.
        tag = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"restlake-pg-{tag}"

    @property
    def dsn(self) -> str:
        return f"postgresql://{DB_USER}@{LOOPBACK}:{self.port}/postgres"

    @property
    def markers(self) -> tuple[str, ...]:
        return (str(bin_dir() / "postgres"), str(self.data_dir))

    def pid(self) -> int | None:
        return process.live_pid(self.pid_file, self.markers)

    def status(self) -> ServiceStatus:
        pid = self.pid()
        return ServiceStatus(
            name=self.name,
            running=pid is not None,
            pid=pid,
            port=self.port,
            log=self.log_file,
            detail=f"socket dir {self.socket_dir}",
        )

    # -- running as root ---------------------------------------------------------------------

    def _ensure_system_user(self, user: str) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(user)
        except KeyError:
            pass
        log.info("creating system user %s to run postgres (it refuses to run as root)", user)
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                user,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"postgres refuses to run as root and creating the system user {user!r} with useradd "
                f"failed: {result.stderr.strip()}. Create it by hand or run the stack as a non-root user."
            )
        return pwd.getpwnam(user)

    @staticmethod
    def _allow_traversal(path: Path) -> None:
        # Search (x) only, no read: enough for the server user to reach its folder, and it does
        # not let anyone list the folders above it.
        for folder in [path, *path.parents]:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                folder.chmod(mode | stat.S_IXOTH)

    def _prepare_ownership(self) -> None:
        if self.user is None:
            return
        entry = self._ensure_system_user(self.user)
        self._allow_traversal(self.home)
        self._allow_traversal(bin_dir())
        for root, dirs, files in os.walk(self.home):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in dirs + files:
                os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
        if self.socket_dir.exists():
            os.chown(self.socket_dir, entry.pw_uid, entry.pw_gid)

    # -- lifecycle -------------------------------------------------------------------------------

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").is_file():
            return
        if self.data_dir.exists():
            # initdb died half way last time (no PG_VERSION yet); it refuses a non-empty folder.
            log.warning("removing incomplete postgres data folder %s", self.data_dir)
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True, mode=0o700)
        self._prepare_ownership()
        argv = [
            str(bin_dir() / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            DB_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ]
        log.info("initdb %s", self.data_dir)
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=_INITDB_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
            user=self.user,
            group=self.user,
            extra_groups=[] if self.user else None,
            cwd=self.home,
        )
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise StackError(
                f"initdb failed ({result.returncode}) for {self.data_dir}: {' '.join(argv)}\n"
                f"{(result.stdout + result.stderr).strip()[-2000:]}"
            )

    def _clear_stale_postmaster_pid(self) -> None:
        # postgres ignores a postmaster.pid whose pid is dead, but refuses to start when that pid
        # was reused by a live, unrelated process; only a pid that is our server is respected.
        lock = self.data_dir / "postmaster.pid"
        pid = process.read_pid(lock)
        if pid is not None and not process.is_ours(pid, self.markers):
            log.warning("removing stale %s (pid %s is not this stack's postgres)", lock, pid)
            lock.unlink(missing_ok=True)

    def launch(self) -> None:
        """Start the server unless ours is already running; does not wait for it to accept connections."""
        pid = self.pid()
        if pid is not None:
            log.info("postgres already running (pid %s) on port %s", pid, self.port)
            return
        if not wait_port_free(self.port, PORT_RELEASE_TIMEOUT_S):
            raise StackError(
                f"cannot start Postgres: port {self.port} recorded in {self.paths.state_file} is taken by "
                "another process. Stop that process, or run `restlake stack down --purge` to pick new ports."
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self._initdb()
        self._clear_stale_postmaster_pid()
        self.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._prepare_ownership()
        argv = [
            str(bin_dir() / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            LOOPBACK,
            "-k",
            str(self.socket_dir),
        ]
        for name, value in server_settings().items():
            argv += ["-c", f"{name}={value}"]
        pid = process.start_detached(
            argv, log_file=self.log_file, pid_file=self.pid_file, cwd=self.home, user=self.user
        )
        log.info("started postgres (pid %s) on %s:%s, log %s", pid, LOOPBACK, self.port, self.log_file)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Block until a TCP connection runs ``select 1``, or raise StackError naming the log."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise StackError(f"Postgres exited during start-up; read {self.log_file}")
            try:
                check_reachable(self.dsn, timeout=2.0)
            except StackError as exc:
                last_error = str(exc)
                time.sleep(0.2)
                continue
            log.info("postgres ready on %s:%s", LOOPBACK, self.port)
            return
        raise StackError(
            f"Postgres on {LOOPBACK}:{self.port} was not ready within {timeout:.0f}s "
            f"(last error: {last_error}); read {self.log_file}"
        )

    def stop(self, *, kill: bool = False) -> None:
        pid = self.pid()
        if pid is None:
            log.info("postgres is not running")
            return
        # SIGINT is postgres' "fast" shutdown: SIGTERM ("smart") would wait for every client
        # (an idle Spark executor pool) to disconnect first.
        process.stop(self.name, pid, graceful=signal.SIGINT, timeout=STOP_TIMEOUT_S, kill=kill)
        self.pid_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            if self.socket_dir.parent == Path(tempfile.gettempdir()):
                shutil.rmtree(self.socket_dir, ignore_errors=True)
