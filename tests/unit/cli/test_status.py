"""`restlake status` without services: the Delta log replay, the table, and every field of a
service that is not there reported as unavailable with the reason."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from restlake.cli.status import render_table, unavailable_notes
from restlake.runtime import delta_log
from restlake.runtime.lake_files import LakeFilesError
from restlake.runtime.status import FIELDS, Endpoints, Target, collect


def _add(path: str, source: str, rows: int) -> dict:
    return {
        "add": {
            "path": path,
            "partitionValues": {"source": source, "ingest_date": "2026-01-01"},
            "stats": json.dumps({"numRecords": rows}),
        }
    }


def _commit(log: Path, version: int, *actions: dict) -> None:
    log.mkdir(parents=True, exist_ok=True)
    lines = [{"commitInfo": {"operation": "WRITE"}}, *actions]
    (log / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in lines) + "\n")


def test_rows_and_version_from_commits_only_live_files_of_the_source(tmp_path: Path) -> None:
    log = tmp_path / "t" / "_delta_log"
    _commit(log, 0, {"metaData": {"id": "x"}})
    _commit(log, 1, _add("a", "s", 10), _add("b", "other", 7))
    _commit(log, 2, _add("c", "s", 5), {"remove": {"path": "a"}}, _add("d", "s", 3))
    assert delta_log.count(str(tmp_path / "t"), source="s") == delta_log.TableCount(version=2, rows=8)
    assert delta_log.count(str(tmp_path / "t"), source="other").rows == 7
    assert delta_log.count(str(tmp_path / "missing"), source="s") is None
    # A file:// URI is the same folder.
    assert delta_log.count(f"file://{tmp_path}/t", source="s") == delta_log.TableCount(version=2, rows=8)


def test_a_checkpoint_is_read_then_the_commits_after_it(tmp_path: Path) -> None:
    log = tmp_path / "t" / "_delta_log"
    add_type = pa.struct(
        [
            ("path", pa.string()),
            ("partitionValues", pa.map_(pa.string(), pa.string())),
            ("stats", pa.string()),
        ]
    )
    table = pa.table(
        {
            "add": pa.array(
                [
                    {"path": "a", "partitionValues": [("source", "s")], "stats": '{"numRecords": 4}'},
                    None,
                ],
                type=add_type,
            ),
            "remove": pa.array([None, {"path": "gone"}], type=pa.struct([("path", pa.string())])),
        }
    )
    log.mkdir(parents=True)
    pq.write_table(table, log / f"{10:020d}.checkpoint.parquet")
    _commit(log, 9, _add("old", "s", 1000))  # before the checkpoint: already in it, not read again
    _commit(log, 11, _add("b", "s", 6))
    assert delta_log.count(str(tmp_path / "t"), source="s") == delta_log.TableCount(version=11, rows=10)


def test_other_stores_and_missing_stats_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(LakeFilesError, match="status reads local and s3a:// lakes, not gs://"):
        delta_log.count("gs://lake/bronze/x")
    with pytest.raises(LakeFilesError, match="no bucket in the URI"):
        delta_log.count("s3a:///bronze/x")
    log = tmp_path / "t" / "_delta_log"
    _commit(log, 0, {"add": {"path": "a", "partitionValues": {}}})
    with pytest.raises(delta_log.DeltaLogError, match="no numRecords statistic"):
        delta_log.count(str(tmp_path / "t"))


def _closed() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_services_that_are_down_make_their_fields_unavailable_not_a_crash(tmp_path: Path) -> None:
    kafka = _closed()
    endpoints = Endpoints(kafka, f"postgresql://postgres@{_closed()}/postgres", str(tmp_path), "environment")
    target = Target.of_name("orders", str(tmp_path), "restlake.")
    (row,) = collect([target], endpoints, max_staleness=timedelta(hours=1), timeout=1.0)
    assert row.unavailable["kafka_end_offset"].startswith(f"Kafka unreachable at {kafka}")
    assert row.unavailable["postgres_rows"].startswith("Postgres unreachable")
    # The lake is local and readable: no checkpoint, no tables yet.
    readable = {n: row.values[n] for n in FIELDS if n not in row.unavailable}
    assert readable == {
        "kafka_committed_offset": 0,
        "bronze_version": None,
        "bronze_rows": 0,
        "quarantined": 0,
    }
    assert row.stale is None  # cannot be told: the exit code treats it as a failure
    notes = unavailable_notes([row.as_dict()])
    assert len(notes) == 2 and all(n.startswith("unavailable: orders: ") for n in notes)


def test_the_table_shows_ages_shares_and_unavailable_cells() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    row = {name: None for name in FIELDS} | {
        "source": "orders",
        "last_fetch_at": (now - timedelta(seconds=75)).isoformat(),
        "last_fetch_outcome": "complete",
        "requests": 4,
        "not_modified_share": 0.75,
        "watermark": "2026-01-02T11:00:00Z",
        "watermark_age_seconds": 3600.0,
        "kafka_committed_offset": 120,
        "last_batch_id": 3,
        "last_batch_at": (now - timedelta(hours=2, minutes=5)).isoformat(),
        "postgres_rows": 110,
        "bronze_version": 4,
        "bronze_rows": 110,
        "quarantined": 10,
        "unavailable": {"kafka_end_offset": "down", "kafka_lag": "down", "dead_letters": "down"},
    }
    lines = render_table([row], now).splitlines()
    assert lines[0].split("  ")[0] == "SOURCE"
    assert lines[1].split() == [
        "orders",
        "1m15s",
        "ago",
        "complete",
        "4",
        "75%",
        "2026-01-02T11:00:00Z",
        "(1h0m",
        "ago)",
        "unavailable",
        "120",
        "unavailable",
        "#3",
        "2h5m",
        "ago",
        "110",
        "v4",
        "110",
        "10",
        "unavailable",
    ]


def test_a_bad_max_staleness_is_refused_before_anything_is_contacted() -> None:
    from typer.testing import CliRunner

    from restlake.cli.main import app

    result = CliRunner().invoke(app, ["status", "orders", "--max-staleness", "soon"])
    assert result.exit_code == 2
    assert "--max-staleness must be a duration such as 500ms, 30s, 5m, 1h or 1d" in result.stderr


def test_an_unreachable_s3_lake_makes_its_fields_unavailable_after_one_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"http://{_closed()}"
    monkeypatch.setenv("RESTLAKE_S3_ENDPOINT", store)
    endpoints = Endpoints(None, None, "s3a://lake/restlake", "environment")
    target = Target.of_name("orders", "s3a://lake/restlake", "restlake.")
    started = time.monotonic()
    (row,) = collect([target], endpoints, timeout=1.0)
    assert time.monotonic() - started < 10
    lake = {n: row.unavailable[n] for n in ("kafka_committed_offset", "bronze_rows", "quarantined")}
    assert lake["bronze_rows"].startswith("bronze table s3a://lake/restlake/bronze/orders: ")
    assert lake["quarantined"].startswith("quarantine table s3a://lake/restlake/quarantine/orders: ")
    assert lake["kafka_committed_offset"].startswith(
        "unreadable checkpoint s3a://lake/restlake/_checkpoints/"
    )
    assert row.unavailable["bronze_version"] == lake["bronze_rows"]
