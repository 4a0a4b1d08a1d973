"""The spec corpus through `restlake validate`: every bad spec refused, naming its field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from restlake.cli.main import app

from ...spec_corpus import BASE, CANARY, CORPUS, BadSpec

runner = CliRunner()
NAMES = [case.name for case in CORPUS]


def test_corpus_is_large_unique_and_says_why_a_case_is_validate_only() -> None:
    assert len(CORPUS) >= 50
    assert len(set(NAMES)) == len(NAMES)
    for case in CORPUS:
        assert (case.api is None) == bool(case.validate_only), case.name
        assert (case.document is None) != (case.raw is None), case.name
    assert sum(case.api is not None for case in CORPUS) >= 50


def test_the_base_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(BASE))
    result = runner.invoke(app, ["validate", "-f", str(path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("case", CORPUS, ids=NAMES)
def test_validate_refuses_naming_the_field(case: BadSpec, tmp_path: Path) -> None:
    path = tmp_path / f"{case.name}.yaml"
    path.write_bytes(case.file_bytes())
    result = runner.invoke(app, ["validate", "-f", str(path)])
    assert result.exit_code == 1, result.output
    # Refused by the command, not by a crash that typer turned into exit code 1.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("invalid IngestionSource ") and str(path) in lines[0], lines
    prefix = f"  {case.validate.field}: "
    matching = [line for line in lines[1:] if line.startswith(prefix)]
    assert len(matching) == 1, f"{case.name}: no single line for {case.validate.field!r} in {lines}"
    assert case.validate.message in matching[0], f"{case.name}: {matching[0]!r}"
    # A refused credential must not be echoed back.
    assert CANARY not in result.output


def test_the_canary_is_in_every_credential_case() -> None:
    carrying = [case.name for case in CORPUS if CANARY in case.file_bytes().decode("utf-8", "replace")]
    assert len(carrying) == 15, carrying
