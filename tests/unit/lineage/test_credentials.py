"""No lineage event names a credential, whatever form the connection strings take."""

from __future__ import annotations

import dataclasses
import json

import pytest

from restlake.lineage import LineageEmitter, StreamTargets, emit_stream_batch
from restlake.lineage.datasets import delta_table, postgres_table

from ...openlineage_events import Recorder

SECRET = "Lineage-Canary-9f3e"


@pytest.mark.parametrize(
    ("dsn", "namespace", "name"),
    [
        (
            f"host=db.internal port=6543 user=app password={SECRET} dbname=ingest",
            "postgres://db.internal:6543",
            "ingest.raw.api_events",
        ),
        (
            f"dbname=ingest password='{SECRET} with \\' quote' host=a.internal,b.internal port=5433,5434",
            "postgres://a.internal:5433",
            "ingest.raw.api_events",
        ),
        (f"user=app password={SECRET}", "postgres://localhost:5432", "postgres.raw.api_events"),
        (
            f"postgresql://app:{SECRET}@db.internal/ingest?sslpassword={SECRET}",
            "postgres://db.internal:5432",
            "ingest.raw.api_events",
        ),
    ],
)
def test_postgres_datasets_keep_only_host_port_and_database(dsn: str, namespace: str, name: str) -> None:
    found = postgres_table(dsn, "raw.api_events")
    assert (found["namespace"], found["name"]) == (namespace, name)


def test_an_s3_uri_with_keys_in_it_names_only_the_bucket() -> None:
    assert delta_table(f"s3a://AKID:{SECRET}@lake/bronze/orders")["namespace"] == "s3://lake"


def test_stream_events_with_a_key_value_dsn_and_a_secret_in_the_error_carry_no_secret() -> None:
    targets = StreamTargets(
        source="orders",
        kafka_bootstrap="127.0.0.1:19092",
        topic="restlake.orders",
        bronze_uri="/lake/bronze/orders",
        quarantine_uri="/lake/quarantine/orders",
        pg_dsn=f"host=db.internal port=6543 user=app password={SECRET} dbname=ingest",
    )
    rec = Recorder()
    emit_stream_batch(
        LineageEmitter(rec), targets, None, error=f"connection to host=db password={SECRET} failed"
    )
    emit_stream_batch(
        LineageEmitter(rec),
        dataclasses.replace(targets, pg_dsn=f"postgresql://app:{SECRET}@db.internal:6543/ingest"),
        None,
    )
    assert len(rec.events) == 4
    assert all(SECRET not in json.dumps(event) for event in rec.events)
    assert (
        rec.events[1]["run"]["facets"]["errorMessage"]["message"]
        == "connection to host=db password=*** failed"
    )
    assert {o["namespace"] for e in rec.events for o in e["outputs"]} >= {"postgres://db.internal:6543"}
