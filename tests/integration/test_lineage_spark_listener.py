"""With RESTLAKE_LINEAGE_SPARK_LISTENER=true, OpenLineage's Spark listener reports a Delta append
under the same dataset identity restlake's own events give the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from restlake.errors import StackError
from restlake.lineage.datasets import delta_table
from restlake.stack import jars

from .conftest import project_jars_dir

pytestmark = pytest.mark.integration

# A session of its own, in a child process: the listener must be set before the SparkContext
# starts, and the test session's shared SparkSession would be handed back by getOrCreate.
_JOB = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from restlake.jobs.spark.session import build_spark
    from restlake.lineage import LineageSettings
    from restlake.stack.jars import spark_jars

    jars_dir, events, table = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    lineage = LineageSettings(transport="file", spark_listener=True, file_path=events, namespace="it")
    jars = spark_jars(jars_dir=jars_dir, lineage=lineage)
    spark = build_spark("restlake-ol-it", jars=jars, master="local[1]", lineage=lineage)
    try:
        spark.range(3).write.format("delta").mode("append").option("txnAppId", "it").option(
            "txnVersion", 0
        ).save(table)
    finally:
        spark.stop()
    """
)


@pytest.fixture(scope="module")
def listener_jars() -> list[Path]:
    try:
        return jars.resolve("openlineage", project_jars_dir())
    except StackError as exc:
        pytest.skip(f"the OpenLineage Spark listener cannot be resolved from Maven: {exc}")


def test_listener_names_the_delta_table_like_restlake(listener_jars: list[Path], tmp_path: Path) -> None:
    assert listener_jars
    events, table = tmp_path / "events.jsonl", tmp_path / "lake" / "bronze"
    # Only the listener writes here: restlake's own events would go to events.jsonl.
    spark_events = tmp_path / "events.spark.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTLAKE_LINEAGE_")}
    done = subprocess.run(
        [sys.executable, "-c", _JOB, str(project_jars_dir()), str(events), str(table)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "uncaught error" not in done.stderr, done.stderr[-4000:]
    assert not events.exists()
    sent: list[dict[str, Any]] = [json.loads(line) for line in spark_events.read_text().splitlines()]
    expected = delta_table(str(table))
    writes = [
        e
        for e in sent
        if e["eventType"] == "COMPLETE"
        and any(
            (o["namespace"], o["name"]) == (expected["namespace"], expected["name"]) for o in e["outputs"]
        )
    ]
    assert writes, [(e["eventType"], e["job"]["name"], e.get("outputs")) for e in sent]
    assert all(e["job"]["namespace"] == "it" for e in sent)
    assert {e["eventType"] for e in sent} >= {"START", "COMPLETE"}
