"""spec.parent end to end: repositories -> issues through real Kafka, Postgres and the Spark stream job.

Two runs of the example's two documents (examples/demo-parent-child.yaml) against the demo API.
Between them one repository changes, one issue of that repository changes, and one issue of
*another* repository changes. Run 2 asks only the changed repository's issue URL (the demo API's
request log says exactly which URLs were fetched); the issue under the unchanged repository is
left for parent.refreshEvery, by design. Counts in Postgres and bronze are exact, and every child
row in bronze names its parent record.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psycopg
import pytest
from pyspark.sql import functions as F

from restlake.contracts.spec import IngestionSource, load_sources
from restlake.demoapi import DemoApiConfig, running_demo_api
from restlake.demoapi.orgs import OrgConfig, OrgData
from restlake.fetcher.fanout import state_scope
from restlake.runtime.demo import retarget
from restlake.runtime.local_group import LocalGroup

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "demo-parent-child.yaml"
ORGS = OrgConfig(repos=4, issues_per_repo=5)
REPOS, ISSUES = ORGS.repos, ORGS.repos * ORGS.issues_per_repo


def _renamed(sources: list[IngestionSource], suffix: str) -> list[IngestionSource]:
    """The example's two sources under names of this test (a parent named in the child too)."""
    names = {s.name: f"it-{s.name.removeprefix('demo-parent-child-')}-{suffix}" for s in sources}
    out = []
    for source in sources:
        spec = source.spec
        if spec.parent is not None:
            spec = spec.model_copy(
                update={"parent": spec.parent.model_copy(update={"source": names[spec.parent.source]})}
            )
        meta = source.metadata.model_copy(update={"name": names[source.name]})
        out.append(source.model_copy(update={"metadata": meta, "spec": spec}))
    return out


def _postgres(dsn: str, source: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT external_id, payload FROM raw.api_events WHERE source = %s", (source,)
        ).fetchall()
    return {ext: payload for ext, payload in rows}


def _marks(dsn: str, source: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT value FROM raw.fetch_state WHERE source = %s AND key LIKE 'parent:%%'", (source,)
        ).fetchall()
    return {value["key"]: value["hash"] for (value,) in rows}


def test_a_changed_parent_refetches_only_its_children(stack, spark, spark_jars) -> None:
    suffix = uuid.uuid4().hex[:6]
    with running_demo_api(DemoApiConfig(orgs=ORGS)) as api:
        repos_source, issues_source = _renamed(
            [retarget(s, api.base_url) for s in load_sources(EXAMPLE)], suffix
        )
        # Given child first: the group runs the parent first whatever the order.
        group = LocalGroup([issues_source, repos_source], stack, jars=spark_jars, spark=spark)
        assert [r.source.name for r in group.runners] == [repos_source.name, issues_source.name]
        data = OrgData(ORGS)  # the server's data, replayed here with the same changes
        repos = data.repo_list()

        first_repos, first_issues = group.run_until_caught_up()
        first_requests = [unquote(r) for r in api.requests()]
        after_first = _postgres(stack.pg_dsn, issues_source.name)
        marks_first = _marks(stack.pg_dsn, issues_source.name)

        changed, other = repos[1], repos[2]
        for target in (api.touch_org, data.touch):
            target(changed.name)  # the parent record changes...
            target(changed.name, 1)  # ...and one of its issues
            target(other.name, 2)  # an issue of another, unchanged repository
        api.requests(clear=True)
        second_repos, second_issues = group.run_until_caught_up()
        second_requests = [unquote(r) for r in api.requests()]
        after_second = _postgres(stack.pg_dsn, issues_source.name)
        bronze = (
            spark.read.format("delta")
            .load(issues_source.bronze_path(stack.lake_root))
            .where(F.col("source") == issues_source.name)
            .select(
                "external_id",
                F.col("parent.source").alias("parent_source"),
                F.col("parent.external_id").alias("parent_id"),
            )
            .collect()
        )
        parent_bronze = (
            spark.read.format("delta")
            .load(repos_source.bronze_path(stack.lake_root))
            .where(F.col("source") == repos_source.name)
            .select("parent")
            .collect()
        )
        scopes = {state_scope(issues_source.name, str(r.id)) for r in repos}
        with psycopg.connect(stack.pg_dsn) as conn:
            watermarks = conn.execute(
                "SELECT source FROM raw.fetch_state WHERE source LIKE %s AND key = 'watermark'",
                (f"{issues_source.name}#%",),
            ).fetchall()

    # Run 1: the repositories, then the issues of every repository, one URL each.
    assert first_repos.fetch.complete and first_issues.fetch.complete
    assert (first_repos.fetch.records, first_repos.postgres_rows, first_repos.bronze_rows) == (REPOS,) * 3
    assert (first_issues.fetch.records, first_issues.postgres_rows, first_issues.bronze_rows) == (ISSUES,) * 3
    assert first_issues.quarantined == 0
    issue_urls = sorted(r for r in first_requests if "/issues" in r)
    assert issue_urls == sorted(f"GET /v1/repos/acme/{r.name}/issues?per_page=50" for r in repos)
    assert set(marks_first) == {str(r.id) for r in repos}

    # Run 2: the listing again (it changed), then only the changed repository's issue URL, with
    # that repository's own watermark (its issues were all at the epoch).
    assert second_repos.fetch.complete and second_issues.fetch.complete
    assert second_requests == [
        "GET /v1/orgs/acme/repos?per_page=50",
        f"GET /v1/repos/acme/{changed.name}/issues?per_page=50&since=2024-01-01T00:00:00Z",
    ]
    assert (second_repos.postgres_rows, second_repos.bronze_rows) == (REPOS, REPOS + 1)
    # Its 5 issues come back (since is inclusive); 4 were delivered unchanged and are skipped.
    assert (second_issues.fetch.records, second_issues.fetch.produced) == (5, 1)
    assert (second_issues.postgres_rows, second_issues.bronze_rows) == (ISSUES, ISSUES + 1)
    changed_issue = str(changed.id * 10_000 + 1)
    other_issue = str(other.id * 10_000 + 2)
    assert after_second[changed_issue] == data.issue_json(data.issues[int(changed_issue)])
    assert after_second[changed_issue] != after_first[changed_issue]
    # Not fetched: its repository did not change (parent.refreshEvery would bring it).
    assert after_second[other_issue] == after_first[other_issue]
    assert after_second[other_issue] != data.issue_json(data.issues[int(other_issue)])
    marks_second = _marks(stack.pg_dsn, issues_source.name)
    assert {k for k in marks_second if marks_second[k] != marks_first[k]} == {str(changed.id)}

    # Provenance: every child version in bronze names its repository; parents name none.
    assert len(bronze) == ISSUES + 1
    assert all(row["parent_source"] == repos_source.name for row in bronze)
    assert all(row["parent_id"] == str(int(row["external_id"]) // 10_000) for row in bronze)
    assert all(row["parent"] is None for row in parent_bronze)
    # One watermark per repository URL.
    assert {w for (w,) in watermarks} == scopes


def test_a_bronze_table_from_before_the_parent_column_gains_it(spark, tmp_path) -> None:
    """Tables written before envelopes had ``parent`` get the column on their next append, older rows
    null: the stream job appends with mergeSchema."""
    from pyspark.sql import types as T

    from restlake.jobs.spark import bronze

    old_schema = T.StructType([f for f in bronze.BRONZE_SCHEMA.fields if f.name != "parent"])
    path = str(tmp_path / "bronze")
    bronze.ensure_table(spark, path, old_schema)
    columns = [f.name for f in old_schema.fields]

    def rows(ext: str, parent: tuple[str, str] | None) -> Any:
        frame = spark.range(1).select(
            F.lit("it-old").alias("source"),
            F.lit(ext).alias("external_id"),
            F.lit(f"it-old/{ext}/h").alias("idempotency_key"),
            F.lit("h").alias("content_hash"),
            F.lit(None).cast("string").alias("version"),
            F.current_timestamp().alias("fetched_at"),
            F.lit("{}").alias("payload"),
            F.lit(1).alias("envelope_version"),
            F.lit(None).cast(bronze.BRONZE_SCHEMA["request"].dataType).alias("request"),
            F.lit(None).cast("string").alias("kafka_topic"),
            F.lit(None).cast("int").alias("kafka_partition"),
            F.lit(None).cast("long").alias("kafka_offset"),
            F.lit(None).cast("timestamp").alias("kafka_timestamp"),
            F.current_timestamp().alias("ingested_at"),
            F.lit(0).cast("long").alias("batch_id"),
            F.current_date().alias("ingest_date"),
        )
        if parent is None:
            return frame.select(*columns)
        value = F.struct(F.lit(parent[0]).alias("source"), F.lit(parent[1]).alias("external_id"))
        with_parent = frame.withColumn("parent", value.cast(bronze.BRONZE_SCHEMA["parent"].dataType))
        # In the new schema's order (parent after request), as bronze_rows selects them.
        return with_parent.select(*[f.name for f in bronze.BRONZE_SCHEMA.fields])

    bronze.append(rows("1", None), path=path, app_id="it-old", batch_id=0)
    bronze.append(rows("2", ("repos", "1001")), path=path, app_id="it-old", batch_id=1, merge_schema=True)
    found = {
        r["external_id"]: (r["parent"]["source"], r["parent"]["external_id"]) if r["parent"] else None
        for r in spark.read.format("delta").load(path).collect()
    }
    assert found == {"1": None, "2": ("repos", "1001")}
