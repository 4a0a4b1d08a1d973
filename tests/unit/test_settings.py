"""Settings that replaced direct environment reads: same variables, same defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from restlake.errors import ConfigError
from restlake.runtime.local import resolve_endpoints
from restlake.settings import (
    DEFAULT_KAFKA_BOOTSTRAP,
    ExternalEndpoints,
    KafkaSettings,
    LogSettings,
    StackSettings,
)

_READ = (
    "RESTLAKE_KAFKA_BOOTSTRAP",
    "RESTLAKE_PG_DSN",
    "RESTLAKE_PG_DSN_FILE",
    "RESTLAKE_LAKE_ROOT",
    "XDG_CACHE_HOME",
    "RESTLAKE_TOOLS_DIR",
    "RESTLAKE_LOG_LEVEL",
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _READ:
        monkeypatch.delenv(name, raising=False)


def test_the_kafka_bootstrap_has_one_default() -> None:
    assert KafkaSettings().bootstrap == DEFAULT_KAFKA_BOOTSTRAP == "127.0.0.1:9092"


def test_all_three_endpoints_from_the_environment_skip_the_local_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTLAKE_KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("RESTLAKE_LAKE_ROOT", "s3a://lake/root")
    dsn = tmp_path / "dsn"
    dsn.write_text("postgresql://app@db/ingest\n", encoding="utf-8")
    monkeypatch.setenv("RESTLAKE_PG_DSN_FILE", str(dsn))  # a mounted secret counts as set
    found = resolve_endpoints(tmp_path / "state")
    assert (found.kafka_bootstrap, found.pg_dsn, found.lake_root) == (
        "broker:9092",
        "postgresql://app@db/ingest",
        "s3a://lake/root",
    )
    assert "app@db" not in repr(ExternalEndpoints())


def test_some_endpoints_but_not_all_are_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTLAKE_PG_DSN", "postgresql://app@db/ingest")
    monkeypatch.setenv("RESTLAKE_KAFKA_BOOTSTRAP", "")  # empty is unset, as before
    with pytest.raises(
        ConfigError, match="RESTLAKE_PG_DSN set but RESTLAKE_KAFKA_BOOTSTRAP, RESTLAKE_LAKE_ROOT not"
    ):
        resolve_endpoints()


def test_tools_live_under_the_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert StackSettings().tools_dir == Path.home() / ".cache" / "restlake" / "tools"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert StackSettings().tools_dir == Path.home() / ".cache" / "restlake" / "tools"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert StackSettings().tools_dir == tmp_path / "restlake" / "tools"
    monkeypatch.setenv("RESTLAKE_TOOLS_DIR", str(tmp_path / "tools"))
    assert StackSettings().tools_dir == tmp_path / "tools"


def test_java_home_and_log_level_keep_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", "/opt/java")
    assert StackSettings().java_home == Path("/opt/java")
    monkeypatch.setenv("JAVA_HOME", "")
    assert StackSettings().java_home is None
    assert LogSettings().log_level == "INFO"
    monkeypatch.setenv("RESTLAKE_LOG_LEVEL", "debug")
    assert LogSettings().log_level == "debug"
