"""The stack's Postgres settings, sized from the machine."""

from __future__ import annotations

import pytest

from restlake.stack.postgres import server_settings

GIB = 1024**3


@pytest.mark.parametrize(
    ("machine", "shared_buffers"),
    [(1 * GIB, "128MB"), (4 * GIB, "256MB"), (8 * GIB, "512MB"), (24 * GIB, "1024MB"), (256 * GIB, "1024MB")],
)
def test_shared_buffers_is_a_sixteenth_of_the_machine_in_bounds(machine: int, shared_buffers: str) -> None:
    assert server_settings(machine)["shared_buffers"] == shared_buffers


def test_durability_is_left_at_postgres_defaults() -> None:
    # Crash tests rely on fsync and full page writes; nothing here may trade them for speed.
    settings = server_settings(8 * GIB)
    assert not {"fsync", "full_page_writes", "synchronous_commit", "wal_level"} & settings.keys()
    assert settings["max_connections"] == "200"


def test_this_machine_gets_a_value_postgres_accepts() -> None:
    value = server_settings()["shared_buffers"]
    assert value.endswith("MB") and 128 <= int(value.removesuffix("MB")) <= 1024
