"""Backfill range parsing and the CLI's refusals, before any Spark or Kafka is touched."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from restlake.cli.backfill import backfill
from restlake.errors import ConfigError
from restlake.jobs.spark.backfill import KafkaRange, parse_offsets


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
