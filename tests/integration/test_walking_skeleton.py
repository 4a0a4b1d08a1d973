"""The walking skeleton end to end: demo API → fetcher → real Kafka → Spark → bronze Delta + Postgres."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from pyspark.sql import functions as F

from restlake.contracts.envelope import content_hash
from restlake.contracts.spec import IngestionSource, load_source
from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.handle import running_demo_api
from restlake.runtime.demo import retarget
from restlake.runtime.local import LocalRunner

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _renamed(source: IngestionSource, name: str) -> IngestionSource:
    return source.model_copy(update={"metadata": source.metadata.model_copy(update={"name": name})})


def _postgres_versions(dsn: str, source: str) -> dict[int, str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT external_id, payload->>'updated_at' FROM raw.api_events WHERE source = %s", (source,)
        ).fetchall()
    return {int(ext): updated for ext, updated in rows}


@pytest.mark.parametrize("example", ["demo-link", "demo-cursor", "demo-pages", "demo-offset"])
def test_every_pagination_style_lands_each_record_exactly_once(stack, spark, spark_jars, example) -> None:
    config = DemoApiConfig(dataset=DatasetConfig(seed=11, initial_records=137, growth_per_tick=0))
    with running_demo_api(config) as api:
        source = _renamed(
            retarget(load_source(EXAMPLES / f"{example}.yaml"), api.base_url), f"skel-{example}"
        )
        runner = LocalRunner(source, stack, jars=spark_jars, spark=spark)
        summary = runner.run_until_caught_up()
        expected = {r["id"]: r["updated_at"] for r in api.dataset().snapshot()}
    assert len(expected) == 137
    assert summary.fetch.records == 137
    assert summary.fetch.produced == 137
    assert summary.fetch.complete
    assert summary.postgres_rows == 137
    assert summary.bronze_rows == 137
    assert summary.quarantined == 0
    assert _postgres_versions(stack.pg_dsn, source.name) == expected


def test_rerun_adds_nothing_and_updates_win_by_version(stack, spark, spark_jars) -> None:
    config = DemoApiConfig(
        dataset=DatasetConfig(seed=3, initial_records=230, growth_per_tick=20, update_fraction=0.1)
    )
    with running_demo_api(config) as api:
        source = _renamed(retarget(load_source(EXAMPLES / "demo-link.yaml"), api.base_url), "skel-rerun")
        runner = LocalRunner(source, stack, jars=spark_jars, spark=spark)

        first = runner.run_until_caught_up()
        assert (first.fetch.records, first.fetch.pages) == (230, 5)  # per_page 50: 4 full pages + 30
        assert (first.bronze_rows, first.postgres_rows, first.quarantined) == (230, 230, 0)

        again = runner.run_until_caught_up()
        # ETags persisted in Postgres: every page answers 304, nothing is fetched or added.
        assert (again.fetch.requests, again.fetch.not_modified, again.fetch.records) == (5, 5, 0)
        assert (again.bronze_rows, again.postgres_rows) == (230, 230)

        refetch = LocalRunner(source, stack, jars=spark_jars, spark=spark, remember_fetch_state=False)
        full = refetch.run_until_caught_up()
        assert full.fetch.records == 230  # fetched again, with the same idempotency keys ...
        assert (full.bronze_rows, full.postgres_rows) == (230, 230)  # ... so nothing is doubled

        before = {r["id"]: content_hash(r) for r in api.dataset().snapshot()}
        api.tick(1)
        after = list(api.dataset().snapshot())
        changed = [r for r in after if before.get(r["id"]) not in (None, content_hash(r))]
        new = [r for r in after if r["id"] not in before]
        assert len(new) == 20
        assert changed, "the dataset should revise some records on a tick"

        third = runner.run_until_caught_up()
    assert third.fetch.requests == 5  # 250 records = 5 full pages
    assert third.postgres_rows == 250
    assert third.bronze_rows == 230 + len(new) + len(changed)
    assert _postgres_versions(stack.pg_dsn, source.name) == {r["id"]: r["updated_at"] for r in after}
    bronze = (
        spark.read.format("delta")
        .load(source.bronze_path(stack.lake_root))
        .where(F.col("source") == source.name)
    )
    assert bronze.select("idempotency_key").distinct().count() == third.bronze_rows
    assert {int(r.external_id) for r in bronze.select("external_id").distinct().collect()} == {
        r["id"] for r in after
    }
