"""`restlake flows serve` against a real Prefect server (SQLite, started by the command itself): a
maintenance run triggered through the API completes and compacts the source's bronze table.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from restlake.stack.manager import StackEndpoints

from .conftest import project_jars_dir
from .fixtures_stream import tail, wait_for
from .test_maintenance import FILES, ROWS_PER_FILE, SOURCE, keys, small_files

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(stack: StackEndpoints, tmp_path: Path) -> Iterator[tuple[str, Path, Path, Path]]:
    """``restlake flows serve`` of one source (SOURCE), with its own lake root and Prefect server."""
    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text(encoding="utf-8"))
    doc["metadata"]["name"] = SOURCE
    doc["spec"]["maintenance"] = {"asOfWindow": "1h", "vacuumRetention": "1h", "schedule": "0 3 * * *"}
    spec = tmp_path / "source.yaml"
    spec.write_text(yaml.safe_dump(doc), encoding="utf-8")
    lake = tmp_path / "lake"
    events = tmp_path / "lineage.jsonl"
    port = _free_port()
    env = {
        **os.environ,
        **stack.env(),
        "RESTLAKE_LAKE_ROOT": str(lake),
        "RESTLAKE_STATE_DIR": str(tmp_path / "state"),
        "RESTLAKE_JARS_DIR": str(project_jars_dir()),
        "RESTLAKE_LINEAGE_TRANSPORT": "file",
        "RESTLAKE_LINEAGE_FILE_PATH": str(events),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    env.pop("PREFECT_API_URL", None)
    log_file = tmp_path / "serve.log"
    with log_file.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "restlake.cli.main",
                "flows",
                "serve",
                "-f",
                str(spec),
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        yield f"http://127.0.0.1:{port}/api", lake, events, log_file
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_served_maintenance_run_compacts_the_table(
    spark: SparkSession, served: tuple[str, Path, Path, Path]
) -> None:
    api, lake, events, log_file = served
    bronze = str(lake / "bronze" / SOURCE)
    small_files(spark, bronze)
    expected = keys(spark, bronze)

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}):

        def deployed() -> bool:
            async def read() -> bool:
                async with get_client() as client:
                    try:
                        found = await client.read_deployment_by_name(f"restlake-maintenance/{SOURCE}")
                    except Exception:
                        return False
                    return bool(found.schedules) and found.schedules[0].schedule.cron == "0 3 * * *"

            import asyncio

            return asyncio.run(read())

        try:
            wait_for(deployed, 240, "the served maintenance deployment", interval=2)
        except AssertionError:
            raise AssertionError(tail(log_file)) from None
        started = time.monotonic()
        run = run_deployment(f"restlake-maintenance/{SOURCE}", timeout=600, poll_interval=2)
        assert run.state is not None and run.state.is_completed(), (run.state, tail(log_file, 80))
        assert run.name == f"maintenance-{SOURCE}"
    assert time.monotonic() - started < 600

    spark.catalog.clearCache()
    detail = DeltaTable.forPath(spark, bronze).detail().select("numFiles").first()
    assert detail is not None and detail[0] == 1
    assert keys(spark, bronze) == expected
    assert len(expected) == FILES * ROWS_PER_FILE

    sent = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    ours = [e for e in sent if e["job"]["name"] == f"restlake.maintenance.{SOURCE}"]
    assert [e["eventType"] for e in ours] == ["START", "COMPLETE"]
    assert {o["name"] for o in ours[-1]["outputs"]} >= {bronze}
