"""spec.maintenance and the checks maintenance makes before touching a table (no Spark started)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from restlake.cli.main import app
from restlake.contracts.maintenance import Maintenance
from restlake.contracts.spec import load_source
from restlake.errors import ConfigError
from restlake.jobs.spark.maintenance import MaintenanceTarget, check_time_travel, parse_interval

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "demo-cursor.yaml"


def _source_file(tmp_path: Path, maintenance: dict[str, object]) -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["spec"]["maintenance"] = maintenance
    path = tmp_path / "source.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_defaults_keep_a_week_of_time_travel() -> None:
    m = Maintenance()
    assert (m.as_of_window, m.vacuum_retention, m.ledger_horizon, m.zorder, m.schedule) == (
        "7d",
        "7d",
        "30d",
        False,
        None,
    )
    assert m.vacuum_retention.timedelta == timedelta(days=7)


@pytest.mark.parametrize("first", ["restlake.contracts.maintenance", "restlake.contracts.spec"])
def test_either_module_may_be_imported_first(first: str) -> None:
    code = (
        f"import {first}\n"
        "from restlake.contracts.spec import load_source\n"
        f"s = load_source({str(EXAMPLE)!r})\n"
        "print(s.spec.maintenance)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


def test_cli_refuses_a_retention_under_the_window_naming_the_field(tmp_path: Path) -> None:
    path = _source_file(tmp_path, {"asOfWindow": "3d", "vacuumRetention": "2d"})
    result = CliRunner().invoke(app, ["maintenance", "run", "-f", str(path)])
    assert result.exit_code == 2
    assert "spec.maintenance.vacuumRetention: 2d is shorter than asOfWindow 3d" in result.output


def test_target_follows_the_spec_and_its_sinks(tmp_path: Path) -> None:
    path = _source_file(tmp_path, {"vacuumRetention": "10d", "zorder": True})
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["spec"]["sinks"] = {"quarantine": {"enabled": False}}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    source = load_source(path)
    target = MaintenanceTarget.for_source(source, lake_root="/lake", pg_dsn=None)
    assert target.bronze_path == "/lake/bronze/demo-cursor"
    assert target.quarantine_path is None
    assert (target.settings.vacuum_retention, target.settings.zorder) == ("10d", True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("interval 30 days", timedelta(days=30)),
        ("interval 1 week", timedelta(weeks=1)),
        ("7 days", timedelta(days=7)),
        ("interval 36 hours", timedelta(hours=36)),
    ],
)
def test_parse_interval(text: str, expected: timedelta) -> None:
    assert parse_interval(text, what="p") == expected


def test_parse_interval_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ConfigError, match="p: cannot read the interval 'interval 1 fortnight'"):
        parse_interval("interval 1 fortnight", what="p")


def test_time_travel_needs_the_log_as_long_as_the_window() -> None:
    window = Maintenance(as_of_window="10d", vacuum_retention="10d")
    check_time_travel({}, window, "/lake/bronze/x")  # Delta's default log retention: 30 days
    check_time_travel({"delta.logRetentionDuration": "interval 10 days"}, window, "/lake/bronze/x")
    with pytest.raises(ConfigError) as err:
        check_time_travel({"delta.logRetentionDuration": "interval 2 days"}, window, "/lake/bronze/x")
    assert str(err.value).startswith(
        "spec.maintenance.asOfWindow: 10d is longer than the table's delta.logRetentionDuration "
        "(interval 2 days) at /lake/bronze/x"
    )
