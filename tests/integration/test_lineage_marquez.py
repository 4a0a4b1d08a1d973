"""OpenLineage events of a fetch pass and a stream batch, sent to a real Marquez, form the graph
REST endpoint -> fetcher -> topic -> stream -> bronze + quarantine + Postgres."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest

from restlake.errors import StackError
from restlake.lineage import BatchCounts, FetcherRun, LineageEmitter, StreamTargets, emit_stream_batch
from restlake.lineage.transports.http import HttpTransport
from restlake.stack import jars, marquez
from restlake.stack.manager import StackEndpoints
from restlake.stack.state import jars_dir_for

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]


def project_jars_dir() -> Path:
    # The same cache as conftest.py's fixtures use, so a resolved bundle is reused across sessions.
    return jars_dir_for(Path(os.environ.get("RESTLAKE_STATE_DIR") or REPO_ROOT / ".restlake"))


@pytest.fixture(scope="module")
def marquez_classpath() -> list[Path]:
    try:
        return jars.resolve("marquez", project_jars_dir())
    except StackError as exc:
        # Marquez is only acceptable from its Maven jars; where Maven Central does not serve them,
        # say exactly why instead of passing without a receiver.
        pytest.skip(f"Marquez jars cannot be resolved from Maven: {exc}")


def test_lineage_graph_in_marquez(
    marquez_classpath: list[Path], stack: StackEndpoints, tmp_path: Path
) -> None:
    with marquez.running(marquez_classpath, stack.pg_dsn, tmp_path / "marquez") as server:
        emitter = LineageEmitter(HttpTransport(server.url, "api/v1/lineage", None, 10.0))
        url = "http://127.0.0.1:8085/v1/cursor/items"
        run = FetcherRun(emitter, "orders", url, stack.kafka_bootstrap, "restlake.orders")
        assert run.start() and run.complete(produced=12)
        targets = StreamTargets(
            source="orders",
            kafka_bootstrap=stack.kafka_bootstrap,
            topic="restlake.orders",
            bronze_uri=f"{stack.lake_root}/bronze/orders",
            quarantine_uri=f"{stack.lake_root}/quarantine/orders",
            pg_dsn=stack.pg_dsn,
        )
        emit_stream_batch(emitter, targets, BatchCounts(12, 1, 11))
        assert emitter.failures == 0

        node = urllib.parse.quote("dataset:http://127.0.0.1:8085:/v1/cursor/items", safe="")
        graph = server.get(f"/api/v1/lineage?nodeId={node}&depth=20")
        ids = {n["id"] for n in graph["graph"]}
        bootstrap = stack.kafka_bootstrap.split(",", maxsplit=1)[0]
        pg = urllib.parse.urlsplit(stack.pg_dsn)
        expected = {
            "job:restlake:restlake.fetcher.orders",
            f"dataset:kafka://{bootstrap}:restlake.orders",
            "job:restlake:restlake.stream.orders",
            f"dataset:file:{targets.bronze_uri}",
            f"dataset:postgres://{pg.hostname}:{pg.port}:{pg.path.lstrip('/') or 'postgres'}.raw.api_events",
        }
        assert expected <= ids, sorted(ids)
        edges = {(e["origin"], e["destination"]) for n in graph["graph"] for e in n["outEdges"]}
        assert (
            "job:restlake:restlake.fetcher.orders",
            f"dataset:kafka://{bootstrap}:restlake.orders",
        ) in edges
