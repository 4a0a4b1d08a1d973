"""`restlake stack jars --classpath`: the Spark jars, ready for RESTLAKE_SPARK_JARS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from restlake.cli.main import app
from restlake.stack import jars


def test_classpath_prints_only_the_spark_jars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "jars"
    found = []
    for jar in ("io/delta/delta-spark_2.13/4.0.0/d.jar", "org/postgresql/postgresql/42.7.8/p.jar"):
        (cache / "spark" / jar).parent.mkdir(parents=True)
        (cache / "spark" / jar).write_bytes(b"")
        found.append(cache / "spark" / jar)
    (cache / "spark" / jars.MANIFEST).write_text(
        "".join(f"{p.relative_to(cache / 'spark')}\n" for p in found)
    )
    (cache / "spark" / jars.STAMP).write_text("abc\n")
    # Resolution is mvn's business, covered in tests/unit/stack/test_jars.py; here the cache is current.
    monkeypatch.setattr(jars, "resolve_all", lambda jars_dir, force=False: {})
    monkeypatch.setenv("RESTLAKE_JARS_DIR", str(cache))
    monkeypatch.delenv("RESTLAKE_LINEAGE_SPARK_LISTENER", raising=False)
    result = CliRunner().invoke(app, ["stack", "jars", "--state-dir", str(tmp_path / "state"), "--classpath"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().split(os.pathsep) == [str(p) for p in found]
