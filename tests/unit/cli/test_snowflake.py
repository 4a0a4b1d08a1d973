"""`restlake snowflake sync` refuses a source that does not enable the sink, before Spark starts."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from restlake.cli.main import app

REPO = Path(__file__).resolve().parents[3]


def test_a_source_without_the_sink_is_refused_with_exit_2() -> None:
    result = CliRunner().invoke(app, ["snowflake", "sync", "-f", str(REPO / "examples" / "demo-cursor.yaml")])
    assert result.exit_code == 2, result.output
    assert "spec.sinks.snowflake.enabled is not true" in result.stderr
