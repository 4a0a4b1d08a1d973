"""Backfill ranges (Kafka offsets and times, bronze versions and time travel) and the CLI's refusals,
before any Spark, Kafka or Delta table is touched."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from restlake.cli.backfill import backfill
from restlake.contracts.stream_job import StreamJobConfig
from restlake.errors import BackfillRangeError, ConfigError
from restlake.jobs.spark.backfill import KafkaRange, parse_offsets, replay_range, run_backfill
from restlake.jobs.spark.bronze_range import BronzeRange, Commit, History, parse_as_of


def test_offsets_parse_and_errors_name_the_option() -> None:
    assert parse_offsets("0:120, 1:95", option="--from-offsets") == {0: 120, 1: 95}
    with pytest.raises(ConfigError, match=r"--to-offsets: expected partition:offset.*got '1=5'"):
        parse_offsets("0:1,1=5", option="--to-offsets")


def test_range_fills_every_partition_for_spark() -> None:
    krange = KafkaRange(from_offsets={1: 7}, to_offsets={0: 9})
    opts = krange.options("t", [0, 1, 2])
    assert json.loads(opts["startingOffsets"]) == {"t": {"0": -2, "1": 7, "2": -2}}
    assert json.loads(opts["endingOffsets"]) == {"t": {"0": 9, "1": -1, "2": -1}}
    with pytest.raises(ConfigError, match=r"topic t has partitions \[0\], not \[3\]"):
        KafkaRange(from_offsets={3: 0}).options("t", [0])


def test_range_by_time_is_in_epoch_millis() -> None:
    opts = KafkaRange(from_time=datetime(2024, 1, 1, tzinfo=UTC)).options("t", [0])
    assert opts == {"startingTimestamp": "1704067200000", "startingOffsetsByTimestampStrategy": "latest"}


def test_exactly_one_start() -> None:
    with pytest.raises(ConfigError, match="exactly one of --from-time and --from-offsets"):
        KafkaRange()
    with pytest.raises(ConfigError, match="exactly one of --from-time and --from-offsets"):
        KafkaRange(from_time=datetime.now(UTC), from_offsets={0: 0})


def test_cli_refuses_two_starts_before_starting_spark(tmp_path: Path) -> None:
    source = tmp_path / "s.yaml"
    source.write_text(
        "apiVersion: restlake.io/v1alpha1\nkind: IngestionSource\nmetadata: {name: orders}\n"
        "spec: {request: {url: 'http://127.0.0.1:8085/v1/items'}}\n",
        encoding="utf-8",
    )
    app = typer.Typer()
    app.command()(backfill)
    result = CliRunner().invoke(
        app, ["-f", str(source), "--from-time", "2024-01-01T00:00:00Z", "--from-offsets", "0:1"]
    )
    assert result.exit_code == 2
    assert "exactly one of --from-time and --from-offsets" in result.output


# -- bronze ranges ----------------------------------------------------------------------------------

T = "/lake/bronze/orders"
C0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def history(first: int, last: int, *, complete: bool = True) -> History:
    """Versions ``first``..``last``, one minute apart from C0 at version ``first``, newest first."""
    commits = tuple(
        Commit(version=v, timestamp=C0 + timedelta(minutes=v - first), operation="WRITE", rows_added=10)
        for v in range(last, first - 1, -1)
    )
    return History(T, commits, complete)


def cli_run(tmp_path: Path, *args: str) -> Result:
    source = tmp_path / "s.yaml"
    source.write_text(
        "apiVersion: restlake.io/v1alpha1\nkind: IngestionSource\nmetadata: {name: orders}\n"
        "spec: {request: {url: 'http://127.0.0.1:8085/v1/items'}}\n",
        encoding="utf-8",
    )
    app = typer.Typer()
    app.command()(backfill)
    return CliRunner().invoke(app, ["-f", str(source), *args])


def test_as_of_is_a_version_or_a_time() -> None:
    assert parse_as_of("7") == 7
    assert parse_as_of("2024-05-01T12:00:00Z") == C0
    assert parse_as_of("2024-05-01T14:00:00+02:00") == C0
    assert parse_as_of("2024-05-01t12:00:00z") == C0  # RFC 3339 allows lower case, the Backfill CRD too
    assert parse_as_of("2024-05-01T12:00:00") == C0  # no zone means UTC, as --from-time
    with pytest.raises(BackfillRangeError, match=r"^--as-of: expected a table version .*got 'yesterday'$"):
        parse_as_of("yesterday")


def test_any_bronze_option_selects_bronze_and_origins_do_not_mix() -> None:
    assert replay_range(from_version=2, to_version=3) == BronzeRange(from_version=2, to_version=3)
    assert replay_range(as_of=C0) == BronzeRange(as_of=C0)
    assert replay_range(from_offsets={0: 1}) == KafkaRange(from_offsets={0: 1})
    with pytest.raises(BackfillRangeError) as mixed:
        replay_range(from_version=1, from_time=C0)
    assert mixed.value.option == "--from-version"
    assert str(mixed.value) == (
        "--from-version: reads bronze, --from-time reads Kafka: a backfill reads one origin; "
        "drop --from-time or --from-version"
    )
    with pytest.raises(BackfillRangeError, match=r"^--as-of: reads bronze, --to-offsets reads Kafka"):
        replay_range(as_of=3, to_offsets={0: 9})
    with pytest.raises(BackfillRangeError, match=r"^--from-time: give where to start: .* --as-of \(bronze\)"):
        replay_range()


def test_bronze_range_refuses_contradictions() -> None:
    with pytest.raises(BackfillRangeError, match=r"^--as-of: cannot be combined with --from-version"):
        BronzeRange(from_version=1, as_of=2)
    with pytest.raises(BackfillRangeError, match=r"^--to-version: needs --from-version \(--as-of reads one"):
        BronzeRange(to_version=2)
    with pytest.raises(BackfillRangeError, match=r"^--to-version: needs --from-version"):
        BronzeRange(as_of=1, to_version=2)
    with pytest.raises(BackfillRangeError, match=r"^--to-version: 2 is before --from-version 3$"):
        BronzeRange(from_version=3, to_version=2)
    with pytest.raises(BackfillRangeError, match=r"^--as-of: a table version is 0 or more, got -1$"):
        BronzeRange(as_of=-1)


def test_version_range_is_the_difference_to_the_version_before() -> None:
    snaps = BronzeRange(from_version=2).resolve(history(0, 3))
    assert (snaps.upto, snaps.before) == (3, 1)
    assert snaps.described == {"table": T, "from_version": 2, "to_version": 3}
    snaps = BronzeRange(from_version=0, to_version=1).resolve(history(0, 3))
    assert (snaps.upto, snaps.before) == (1, None)
    # From version 0 nothing is subtracted: a log cleaned up to version 5 still rebuilds snapshot 6.
    assert BronzeRange(from_version=0, to_version=6).resolve(history(5, 8)).before is None


def test_version_beyond_the_latest_names_the_option() -> None:
    with pytest.raises(
        BackfillRangeError, match=rf"^--from-version: version 4 is after the latest version 3 of {T}$"
    ):
        BronzeRange(from_version=4).resolve(history(0, 3))
    with pytest.raises(
        BackfillRangeError, match=rf"^--to-version: version 9 is after the latest version 3 of {T}$"
    ):
        BronzeRange(from_version=1, to_version=9).resolve(history(0, 3))
    with pytest.raises(
        BackfillRangeError, match=rf"^--as-of: version 4 is after the latest version 3 of {T}$"
    ):
        BronzeRange(as_of=4).resolve(history(0, 3))


def test_version_before_the_oldest_kept_names_the_option() -> None:
    with pytest.raises(BackfillRangeError) as early:
        BronzeRange(from_version=5).resolve(history(5, 8))
    assert str(early.value) == (
        f"--from-version: version 5 is read as the difference to version 4, but the oldest version {T} "
        "keeps is 5 (older commits were cleaned up); give --from-version 6 or later, or --as-of"
    )
    assert BronzeRange(from_version=6).resolve(history(5, 8)).before == 5
    with pytest.raises(
        BackfillRangeError, match=rf"^--as-of: version 4 is before the oldest version 5 {T} keeps"
    ):
        BronzeRange(as_of=4).resolve(history(5, 8))


def test_as_of_a_time_is_the_latest_version_committed_at_or_before_it() -> None:
    hist = history(0, 3)  # version v committed at C0 + v minutes
    snaps = BronzeRange(as_of=C0 + timedelta(minutes=1, seconds=30)).resolve(hist)
    assert (snaps.upto, snaps.before) == (1, None)
    assert snaps.described == {
        "table": T,
        "as_of_version": 1,
        "as_of_time": "2024-05-01T12:01:30Z",
        "committed_at": "2024-05-01T12:01:00Z",
    }
    assert BronzeRange(as_of=C0 + timedelta(minutes=2)).resolve(hist).upto == 2  # at, not only before
    assert BronzeRange(as_of=C0 + timedelta(days=9)).resolve(hist).upto == 3  # after the last: latest
    assert BronzeRange(as_of=2).resolve(hist).described == {
        "table": T,
        "as_of_version": 2,
        "committed_at": "2024-05-01T12:02:00Z",
    }


def test_as_of_a_time_before_the_table_names_the_option() -> None:
    with pytest.raises(BackfillRangeError) as before:
        BronzeRange(as_of=datetime(2024, 1, 1, tzinfo=UTC)).resolve(history(0, 3))
    assert str(before.value) == (
        f"--as-of: 2024-01-01T00:00:00Z is before {T} existed: "
        "its version 0 was committed at 2024-05-01T12:00:00Z"
    )
    with pytest.raises(BackfillRangeError, match=rf"is before the oldest version 5 {T} keeps, committed at"):
        BronzeRange(as_of=datetime(2024, 1, 1, tzinfo=UTC)).resolve(history(5, 8))


def test_cli_refuses_mixed_origins_and_bad_versions_before_starting_spark(tmp_path: Path) -> None:
    mixed = cli_run(tmp_path, "--from-version", "1", "--from-offsets", "0:1")
    assert mixed.exit_code == 2
    assert "error: --from-version: reads bronze, --from-offsets reads Kafka" in mixed.output
    bad = cli_run(tmp_path, "--as-of", "last tuesday")
    assert bad.exit_code == 2
    assert "error: --as-of: expected a table version (0, 1, ...) or an ISO 8601 time" in bad.output
    alone = cli_run(tmp_path, "--to-version", "3")
    assert (alone.exit_code, "error: --to-version: needs --from-version" in alone.output) == (2, True)
    negative = cli_run(tmp_path, "--from-version", "-1")
    assert negative.exit_code == 2  # typer's own range check, before restlake is involved


@pytest.mark.parametrize(
    ("off", "replay", "message"),
    [
        ("postgres_enabled", KafkaRange(from_offsets={0: 0}), "sinks.postgres.enabled is false"),
        ("bronze_enabled", BronzeRange(as_of=1), "no bronze history to replay; replay a Kafka range"),
    ],
)
def test_a_backfill_into_or_from_a_sink_that_is_off_is_refused_before_spark(
    off: str, replay: KafkaRange | BronzeRange, message: str
) -> None:
    config = StreamJobConfig(
        source="s",
        topic="restlake.s",
        kafka_bootstrap="127.0.0.1:1",
        bronze_path="/tmp/b",
        quarantine_path="/tmp/q",
        checkpoint_path="/tmp/c",
        pg_dsn="postgresql://x@127.0.0.1:1/db",
        **{off: False},
    )
    with pytest.raises(ConfigError, match=message):
        run_backfill(None, config, replay)  # type: ignore[arg-type]  # refused before Spark is touched
