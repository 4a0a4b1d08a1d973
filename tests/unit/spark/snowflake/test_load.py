"""One ledgered load against fakesnow, a DuckDB-backed Snowflake EMULATOR (not Snowflake: see
tests/snowflake_emulator.py for what it cannot check). Rows are built here as the stream collects
them (``rows_table``); tests/integration/test_snowflake_sync.py loads a real bronze table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from restlake.jobs.spark.snowflake import load as loads
from restlake.jobs.spark.snowflake.connection import connect
from restlake.postgres.arrow_stage import rows_table
from restlake.postgres.merge import MergeRow

from ....snowflake_emulator import PASSWORD_ENV, config, emulator, query

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CFG = config("orders", "/lake/bronze/orders")
TARGET = loads.Target(
    table=CFG.target, ledger=CFG.ledger, source="orders", bronze_path=CFG.bronze_path, bronze_table_id="t1"
)


def row(ext: str, version: str | None, *, minute: int = 0, payload: str = "{}") -> MergeRow:
    return MergeRow(
        source="orders",
        external_id=ext,
        idempotency_key=f"{ext}:{version}:{payload}",
        content_hash=f"h-{ext}-{version}-{payload}",
        version=version,
        fetched_at=T0 + timedelta(minutes=minute),
        payload=payload,
        kafka_topic="restlake.orders",
        kafka_partition=0,
        kafka_offset=minute,
    )


@pytest.fixture
def conn() -> Iterator[object]:
    with emulator():
        connection = connect(CFG, environ=PASSWORD_ENV)
        loads.ensure_tables(connection, TARGET)
        yield connection
        connection.close()


def stored() -> dict[str, tuple[str, str]]:
    rows = query("SELECT EXTERNAL_ID, VERSION, PAYLOAD FROM API_EVENTS WHERE SOURCE = 'orders'")
    return {r[0]: (r[1], r[2]) for r in rows}


def test_the_newest_version_per_key_wins_within_and_across_loads(conn: object) -> None:
    first = loads.load(
        conn,
        TARGET,
        rows_table(
            [
                row("1", "2024-01-01T00:00:00Z", payload='{"n":1}'),
                row("1", "2024-01-03T00:00:00Z", payload='{"n":3}'),
                row("1", "2024-01-02T00:00:00Z", payload='{"n":2}'),
                row("2", "7", payload='{"r":7}'),
                row("3", None, minute=1, payload='{"o":1}'),
            ]
        ),
        from_version=0,
        to_version=1,
    )
    assert (first.rows_in, first.inserted, first.updated) == (5, 3, 0)
    second = loads.load(
        conn,
        TARGET,
        rows_table(
            [
                row("1", "2024-01-02T12:00:00Z", payload='{"n":"older"}'),  # older than stored: kept out
                row("2", "10", payload='{"r":10}'),  # 10 > 7 as numbers, though "10" < "7" as text
                row("3", None, minute=2, payload='{"o":2}'),  # opaque: the later fetch wins
            ]
        ),
        from_version=2,
        to_version=2,
    )
    assert (second.inserted, second.updated) == (0, 2)
    assert {k: v[1] for k, v in stored().items()} == {"1": '{"n":3}', "2": '{"r":10}', "3": '{"o":2}'}
    assert loads.loaded_up_to(conn, TARGET) == 2
    assert query("SELECT COUNT(*) FROM API_EVENTS") == [(3,)]


def test_a_crash_after_the_merge_is_repaired_by_the_rerun_without_a_change(conn: object) -> None:
    rows = rows_table([row("1", "1"), row("2", "1")])

    def crash() -> None:
        raise KeyboardInterrupt  # stands for the process dying: nothing after this line runs

    with pytest.raises(KeyboardInterrupt):
        loads.load(conn, TARGET, rows, from_version=0, to_version=3, before_ledger=crash)
    # The MERGE committed, the ledger did not move: the rerun loads the range again.
    assert loads.loaded_up_to(conn, TARGET) is None
    assert query("SELECT COUNT(*) FROM API_EVENTS") == [(2,)]
    before = query("SELECT EXTERNAL_ID, UPDATED_AT, INGEST_QUERY_ID FROM API_EVENTS ORDER BY 1")
    again = loads.load(conn, TARGET, rows, from_version=0, to_version=3)
    assert (again.rows_in, again.inserted, again.updated) == (2, 0, 0)
    assert query("SELECT EXTERNAL_ID, UPDATED_AT, INGEST_QUERY_ID FROM API_EVENTS ORDER BY 1") == before
    assert loads.loaded_up_to(conn, TARGET) == 3
    # No stage is left behind by either load.
    assert query(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE 'RESTLAKE_STAGE_%'"
    ) == [(0,)]


def test_an_empty_range_moves_the_ledger_on(conn: object) -> None:
    empty = rows_table([])
    result = loads.load(conn, TARGET, empty, from_version=0, to_version=0)
    assert (result.rows_in, result.inserted, result.updated) == (0, 0, 0)
    assert loads.loaded_up_to(conn, TARGET) == 0
    other = loads.Target(**{**TARGET.__dict__, "bronze_table_id": "recreated"})
    assert loads.loaded_up_to(conn, other) is None  # a recreated bronze table starts again


def test_numeric_versions_beyond_number_38_9_are_opaque() -> None:
    big = "9" * 28
    frame = loads.stage_frame(
        rows_table([row("1", "1e40"), row("2", "12.5"), row("3", "2024-01-01"), row("4", big)])
    )
    assert frame["VERSION_NUM"].tolist() == [None, "12.500000000", None, f"{big}.000000000"]
    assert frame["VERSION_TS"].tolist()[2] == "2024-01-01T00:00:00+00:00"
    assert frame["FETCHED_AT"].tolist()[0] == "2024-05-01T12:00:00.000000+00:00"


def test_no_credential_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with emulator():
        connection = connect(CFG, environ=PASSWORD_ENV)
        loads.ensure_tables(connection, TARGET)
        loads.load(connection, TARGET, rows_table([row("1", "1")]), from_version=0, to_version=0)
        connection.close()
    assert "snowflake load committed" in caplog.text
    assert PASSWORD_ENV["RESTLAKE_SECRET_SNOWFLAKE_PASSWORD"] not in caplog.text
