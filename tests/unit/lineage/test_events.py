"""Every event restlake emits validates against the OpenLineage JSON schema, and carries no secret."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import SecretStr

from restlake.contracts.spec import IngestionSource
from restlake.fetcher.poller import PassStats
from restlake.fetcher.service import FetcherService
from restlake.lineage import BatchCounts, LineageEmitter, LineageSettings, StreamTargets, emit_stream_batch
from restlake.lineage.transports import create_transport
from restlake.lineage.transports.file import FileTransport
from restlake.lineage.transports.http import HttpTransport

from ...openlineage_events import Recorder, schema_errors, schema_validator

SECRET = "s3cr3t-token-value"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    return schema_validator()


def assert_valid(validator: jsonschema.protocols.Validator, events: list[dict[str, Any]]) -> None:
    for event in events:
        assert schema_errors(validator, event) == [], event


def targets() -> StreamTargets:
    return StreamTargets(
        source="orders",
        kafka_bootstrap="127.0.0.1:19092,127.0.0.1:19093",
        topic="restlake.orders",
        bronze_uri="/lake/bronze/orders",
        quarantine_uri="s3a://lake/quarantine/orders",
        pg_dsn=f"postgresql://app:{SECRET}@db.internal:6543/ingest?sslmode=require",
    )


def test_stream_batch_events_validate_and_name_datasets(validator: jsonschema.protocols.Validator) -> None:
    rec = Recorder()
    run_id = emit_stream_batch(LineageEmitter(rec), targets(), BatchCounts(7, 2, 5))
    emit_stream_batch(LineageEmitter(rec), targets(), None, error="merge failed: deadlock")
    assert_valid(validator, rec.events)
    assert [e["eventType"] for e in rec.events] == ["START", "COMPLETE", "START", "FAIL"]
    complete = rec.events[1]
    assert complete["run"]["runId"] == run_id
    assert complete["job"] == {"namespace": "restlake", "name": "restlake.stream.orders"}
    assert complete["inputs"][0]["namespace"] == "kafka://127.0.0.1:19092"
    assert complete["inputs"][0]["name"] == "restlake.orders"
    outs = {(o["namespace"], o["name"]): o for o in complete["outputs"]}
    assert set(outs) == {
        ("file", "/lake/bronze/orders"),
        ("s3://lake", "quarantine/orders"),
        ("postgres://db.internal:6543", "ingest.raw.api_events"),
    }
    rows = [o["outputFacets"]["outputStatistics"]["rowCount"] for o in complete["outputs"]]
    assert rows == [7, 2, 5]
    assert "payload" in [
        f["name"] for f in outs[("file", "/lake/bronze/orders")]["facets"]["schema"]["fields"]
    ]
    assert rec.events[3]["run"]["facets"]["errorMessage"]["message"] == "merge failed: deadlock"


def test_stream_outputs_carry_column_lineage(validator: jsonschema.protocols.Validator) -> None:
    rec = Recorder()
    typed = StreamTargets(**{**targets().__dict__, "typed_columns": (("p_amount", "double"),)})
    emit_stream_batch(LineageEmitter(rec), typed, BatchCounts(1, 0, 1))
    assert_valid(validator, rec.events)
    outs = {o["name"]: o["facets"] for o in rec.events[1]["outputs"]}
    bronze = outs["/lake/bronze/orders"]
    lineage = bronze["columnLineage"]
    assert lineage["_schemaURL"].endswith("ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet")
    (amount,) = lineage["fields"]["p_amount"]["inputFields"]
    assert (amount["namespace"], amount["name"], amount["field"]) == (
        "kafka://127.0.0.1:19092",
        "restlake.orders",
        "payload",
    )
    assert amount["transformations"] == [{"type": "DIRECT", "subtype": "TRANSFORMATION", "masking": False}]
    assert {"name": "p_amount", "type": "double"} in bronze["schema"]["fields"]
    # Every bronze column the facet names exists in the schema facet, and vice versa.
    assert set(lineage["fields"]) == {f["name"] for f in bronze["schema"]["fields"]}
    pg = outs["ingest.raw.api_events"]["columnLineage"]["fields"]
    assert pg["pulled_at"]["inputFields"][0]["field"] == "fetched_at"
    assert pg["payload"]["inputFields"][0]["transformations"][0]["subtype"] == "TRANSFORMATION"
    # id and updated_at are the merge's own, not derived from the topic.
    assert "id" not in pg and "updated_at" not in pg
    quarantine = outs["quarantine/orders"]["columnLineage"]["fields"]
    assert "reason" not in quarantine and set(quarantine) <= {f for f in lineage["fields"]}
    assert SECRET not in json.dumps(rec.events)


def test_a_sink_the_spec_turns_off_is_no_output(validator: jsonschema.protocols.Validator) -> None:
    rec = Recorder()
    postgres_only = StreamTargets(**{**targets().__dict__, "sinks": frozenset({"postgres"})})
    emit_stream_batch(LineageEmitter(rec), postgres_only, BatchCounts(0, 3, 5))
    assert_valid(validator, rec.events)
    (output,) = rec.events[1]["outputs"]
    assert output["name"] == "ingest.raw.api_events"
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 5


def test_fetcher_service_emits_start_heartbeat_complete_and_fail(
    validator: jsonschema.protocols.Validator,
) -> None:
    source = IngestionSource.model_validate(
        {
            "apiVersion": "restlake.io/v1alpha1",
            "kind": "IngestionSource",
            "metadata": {"name": "orders"},
            "spec": {"request": {"url": "http://127.0.0.1:8085/v1/items"}},
        }
    )
    # The spec refuses a key in the URL; set after validation, it checks lineage's own redaction.
    source.spec.request.url = f"http://127.0.0.1:8085/v1/items?api_key={SECRET}"

    class Producer:
        def flush(self, timeout: float) -> None:
            return None

    class Store:
        async def close(self) -> None:
            return None

    rec = Recorder()
    service = FetcherService(
        [source],
        producer=Producer(),  # type: ignore[arg-type]
        state_store=Store(),  # type: ignore[arg-type]
        kafka_bootstrap="127.0.0.1:19092",
        lineage=LineageEmitter(rec),
        lineage_settings=LineageSettings(heartbeat_seconds=0.05),
    )
    service.settings = service.settings.model_copy(update={"ops_port": None})
    outcomes = iter([PassStats(complete=True, produced=3), PassStats(error="delivery failed")])

    async def fetch_pass(session: object, stop: asyncio.Event) -> PassStats:
        await asyncio.sleep(0.12)  # long enough for at least one heartbeat
        return next(outcomes)

    service.fetchers[0].fetch_pass = fetch_pass  # type: ignore[method-assign]
    asyncio.run(service.run(once=True))
    asyncio.run(service.run(once=True))
    assert_valid(validator, rec.events)
    types = [e["eventType"] for e in rec.events]
    assert types[0] == "START" and types[-1] == "FAIL"
    assert "COMPLETE" in types and "OTHER" in types
    complete = next(e for e in rec.events if e["eventType"] == "COMPLETE")
    assert complete["inputs"] == [{"namespace": "http://127.0.0.1:8085", "name": "/v1/items"}]
    assert complete["outputs"][0]["namespace"] == "kafka://127.0.0.1:19092"
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert complete["job"]["name"] == "restlake.fetcher.orders"
    assert len({e["run"]["runId"] for e in rec.events}) == 2
    assert SECRET not in json.dumps(rec.events)


def test_file_transport_writes_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "lineage" / "events.jsonl"
    transport = create_transport(LineageSettings(transport="file", file_path=path))
    assert isinstance(transport, FileTransport)
    emit_stream_batch(LineageEmitter(transport), targets(), BatchCounts(1, 0, 1))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["eventType"] for line in lines] == ["START", "COMPLETE"]


def test_http_failure_is_logged_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    # Port 9 (discard) on loopback: nothing listens, the post fails at once.
    settings = LineageSettings(
        transport="http", url="http://127.0.0.1:9", api_key=SecretStr(SECRET), timeout=1
    )
    transport = create_transport(settings)
    assert isinstance(transport, HttpTransport)
    emitter = LineageEmitter(transport)
    with caplog.at_level(logging.WARNING):
        emit_stream_batch(emitter, targets(), BatchCounts(1, 0, 1))
    assert emitter.failures == 2
    assert "not sent" in caplog.text
    assert SECRET not in caplog.text and SECRET not in repr(transport) and SECRET not in repr(settings)


def test_none_is_the_default_transport() -> None:
    assert type(create_transport(LineageSettings())).__name__ == "NoopTransport"
