"""`restlake run -f` without --until-caught-up: polls and streams until SIGTERM, then exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.handle import running_demo_api

from .conftest import project_jars_dir

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _rows(dsn: str, source: str) -> int:
    with psycopg.connect(dsn) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM raw.api_events WHERE source = %s", (source,)).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0  # restlake run has not applied the migrations yet
    return int(row[0]) if row else 0


def _wait_for_rows(dsn: str, source: str, want: int, proc: subprocess.Popen, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    got = -1
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"restlake run exited early with {proc.returncode}"
        got = _rows(dsn, source)
        if got >= want:
            return got
        time.sleep(1)
    return got


def test_continuous_run_picks_up_changes_and_stops_on_sigterm(stack, tmp_path) -> None:
    config = DemoApiConfig(dataset=DatasetConfig(seed=21, initial_records=90, growth_per_tick=15))
    with running_demo_api(config) as api:
        doc = yaml.safe_load((EXAMPLES / "demo-offset.yaml").read_text())
        doc["metadata"]["name"] = "continuous-offset"
        doc["spec"]["request"]["url"] = api.url("/v1/offset/items")
        doc["spec"]["poll"] = {"interval": "2s", "jitter": 0}
        spec_file = tmp_path / "source.yaml"
        spec_file.write_text(yaml.safe_dump(doc))
        env = {
            **os.environ,
            **stack.env(),
            "RESTLAKE_JARS_DIR": str(project_jars_dir()),
            "RESTLAKE_STATE_DIR": str(tmp_path / "state"),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "restlake.cli.main", "run", "-f", str(spec_file)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert _wait_for_rows(stack.pg_dsn, "continuous-offset", 90, proc) == 90
            api.tick(1)  # 15 new records, and some revised ones
            assert _wait_for_rows(stack.pg_dsn, "continuous-offset", 105, proc) == 105
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert _rows(stack.pg_dsn, "continuous-offset") == 105
