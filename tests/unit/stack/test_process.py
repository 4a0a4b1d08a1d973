"""Pid files and process identity: a pid counts as ours only if alive and carrying our markers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from restlake.stack import process


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    marker = str(tmp_path / "marker.conf")
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(60)", marker])
    deadline = time.monotonic() + 10
    while marker not in process.cmdline(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("4242\n", 4242),
        ("4242\n/var/lib/data\n1700000000\n", 4242),
        ("garbage\n", None),
        ("", None),
        ("0\n", None),
    ],
)
def test_read_pid(tmp_path: Path, content: str, expected: int | None) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(content)
    assert process.read_pid(pid_file) == expected


def test_read_pid_of_missing_file_is_none(tmp_path: Path) -> None:
    assert process.read_pid(tmp_path / "missing.pid") is None


def test_zombie_child_counts_as_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    # Never waited for: once it exits it is a zombie, which must not count as running.
    while process.is_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.is_alive(proc.pid) is False


def test_is_ours_needs_every_marker(sleeper: subprocess.Popen[bytes], tmp_path: Path) -> None:
    marker = str(tmp_path / "marker.conf")
    assert process.is_ours(sleeper.pid, ["time.sleep(60)", marker]) is True
    assert process.is_ours(sleeper.pid, ["time.sleep(60)", str(tmp_path / "other.conf")]) is False
    assert process.is_ours(os.getpid(), [marker]) is False


def test_live_pid_keeps_our_pid_file(sleeper: subprocess.Popen[bytes], tmp_path: Path) -> None:
    pid_file = tmp_path / "svc.pid"
    process.write_pid(pid_file, sleeper.pid)
    assert process.live_pid(pid_file, [str(tmp_path / "marker.conf")]) == sleeper.pid
    assert pid_file.exists()


def test_live_pid_removes_file_of_a_stranger_without_signalling_it(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    pid_file = tmp_path / "svc.pid"
    process.write_pid(pid_file, sleeper.pid)
    assert process.live_pid(pid_file, ["kafka.Kafka", str(tmp_path / "server.properties")]) is None
    assert not pid_file.exists()
    assert sleeper.poll() is None


def test_live_pid_removes_file_of_a_dead_pid(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file = tmp_path / "svc.pid"
    process.write_pid(pid_file, dead.pid)
    assert process.live_pid(pid_file, [str(tmp_path / "no-such-service.conf")]) is None
    assert not pid_file.exists()


def test_start_detached_runs_in_own_session_and_logs(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "svc.log"
    pid_file = tmp_path / "svc.pid"
    pid = process.start_detached(
        [sys.executable, "-c", "print('hello', flush=True); import time; time.sleep(60)"],
        log_file=log_file,
        pid_file=pid_file,
        cwd=tmp_path,
    )
    try:
        assert process.read_pid(pid_file) == pid
        assert os.getsid(pid) == pid
        deadline = time.monotonic() + 10
        while "hello" not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log_file.read_text() == "hello\n"
    finally:
        process.stop("svc", pid, timeout=5)
    assert process.is_alive(pid) is False


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('armed', flush=True); time.sleep(60)"
    )
    log_file = tmp_path / "svc.log"
    pid = process.start_detached(
        [sys.executable, "-c", code], log_file=log_file, pid_file=tmp_path / "svc.pid", cwd=tmp_path
    )
    deadline = time.monotonic() + 10
    while "armed" not in log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    process.stop("svc", pid, graceful=signal.SIGTERM, timeout=1.0)
    assert process.is_alive(pid) is False
    assert 1.0 <= time.monotonic() - started < 10.0


def test_live_pid_adopts_a_running_process_whose_pid_file_was_lost(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    pid_file = tmp_path / "svc.pid"
    assert process.live_pid(pid_file, ["time.sleep(60)", str(tmp_path / "marker.conf")]) == sleeper.pid
    assert process.read_pid(pid_file) == sleeper.pid
