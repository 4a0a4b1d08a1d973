"""`restlake validate`: exit codes and the exact lines users read."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from restlake.cli.main import app

REPO = Path(__file__).resolve().parents[3]
runner = CliRunner()

GOOD = """\
apiVersion: restlake.io/v1alpha1
kind: IngestionSource
metadata: {name: orders}
spec:
  request: {url: "http://127.0.0.1:8085/v1/cursor/items"}
  pagination: {type: cursor, cursorPath: "$.next_cursor"}
"""


def test_valid_file_prints_one_ok_line_per_source(tmp_path: Path) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text(GOOD + "---\n" + GOOD.replace("name: orders", "name: refunds"))
    result = runner.invoke(app, ["validate", "-f", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"OK orders ({path}#1): cursor pagination, every 60s, topic restlake.orders",
        f"OK refunds ({path}#2): cursor pagination, every 60s, topic restlake.refunds",
    ]


def test_invalid_file_names_the_field_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace(', cursorPath: "$.next_cursor"', ""))
    result = runner.invoke(app, ["validate", "--file", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"invalid IngestionSource orders ({path}):",
        "  spec.pagination.cursorPath: required when pagination.type is cursor (or cursorHeader, "
        "cursorFromLastRecord)",
    ]


def test_repeatable_option_directories_and_missing_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "-f", str(REPO / "examples"), "-f", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    documents = [
        d for p in (REPO / "examples").glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d
    ]
    assert len([line for line in result.stdout.splitlines() if line.startswith("OK ")]) == len(documents)
    assert result.stderr.splitlines() == [f"cannot read {tmp_path / 'nope.yaml'}: No such file or directory"]


def test_duplicate_names_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    result = runner.invoke(app, ["validate", "-f", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"invalid IngestionSource orders ({tmp_path / 'b.yaml'}):",
        f"  metadata.name: 'orders' is already used by {tmp_path / 'a.yaml'}",
    ]


def test_stdin(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "-f", "-"], input=GOOD)
    assert result.exit_code == 0
    assert result.stdout == "OK orders (<stdin>): cursor pagination, every 60s, topic restlake.orders\n"


def test_yaml_error_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("kind: [\n")
    result = runner.invoke(app, ["validate", "-f", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1] == (
        "  line 2, column 1: invalid YAML: expected the node content, but found '<stream end>' "
        "(while parsing a flow node)"
    )


def test_file_option_is_required() -> None:
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 2


def test_a_directory_without_yaml_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a spec")
    (tmp_path / "orders.yaml").mkdir()  # a folder named like a file is not a file either
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "orders.yaml").write_text(GOOD)
    result = runner.invoke(app, ["validate", "-f", str(tmp_path), "-f", str(tmp_path / "other")])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"no IngestionSource in {tmp_path}: it holds no .yaml or .yml file"]
    found = tmp_path / "other" / "orders.yaml"
    assert result.stdout.splitlines() == [
        f"OK orders ({found}): cursor pagination, every 60s, topic restlake.orders"
    ]


def test_binary_stdin_is_an_error_not_a_traceback() -> None:
    result = runner.invoke(app, ["validate", "-f", "-"], input=b"\xff\xfe\x00k")
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.splitlines() == [
        "invalid IngestionSource <stdin>:",
        "  <file>: not UTF-8 text (byte 0xff at offset 0)",
    ]
