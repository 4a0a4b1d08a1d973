"""``SnowflakeSyncConfig.for_source``: the one place a spec becomes a Snowflake sync's config."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from restlake.contracts.snowflake_sync import SnowflakeSyncConfig
from restlake.contracts.spec import IngestionSource, parse_source
from restlake.errors import ConfigError

from ...spec_corpus import BASE, SNOWFLAKE


def source(sinks: dict[str, object]) -> IngestionSource:
    doc = copy.deepcopy(BASE)
    doc["spec"]["sinks"] = sinks
    return parse_source(doc, "test")


def test_the_config_carries_the_spec_and_the_streams_bronze_path(tmp_path: Path) -> None:
    src = source({"bronze": {"path": "bronze/shared"}, "snowflake": {**SNOWFLAKE, "role": "LOADER"}})
    cfg = SnowflakeSyncConfig.for_source(src, lake_root=str(tmp_path))
    assert cfg.source == src.identity
    assert cfg.bronze_path == src.bronze_path(str(tmp_path))
    assert (cfg.target, cfg.ledger) == ("ANALYTICS.RAW.API_EVENTS", "ANALYTICS.RAW.RESTLAKE_LOADS")
    assert cfg.role == "LOADER" and cfg.max_versions_per_load == 100
    assert cfg.auth.type == "keyPair"


def test_a_source_without_snowflake_enabled_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"spec.sinks.snowflake.enabled is not true"):
        SnowflakeSyncConfig.for_source(source({}), lake_root=str(tmp_path))
