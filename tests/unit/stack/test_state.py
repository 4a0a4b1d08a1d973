"""State file parsing and loopback port picking for the local stack."""

from __future__ import annotations

import base64
import json
import random
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from restlake.errors import StackError
from restlake.stack.state import (
    KafkaState,
    PostgresState,
    StackPaths,
    StackState,
    ephemeral_port_range,
    jars_dir_for,
    load_state,
    new_cluster_id,
    new_state,
    pick_free_ports,
    port_is_free,
    save_state,
)


def _state() -> StackState:
    return StackState(
        kafka=KafkaState(port=40001, controller_port=40002, cluster_id="c73wOgBVRZq0RZ_X77lPOQ"),
        postgres=PostgresState(port=40003),
        lake_root="/srv/state/lake",
        up=True,
    )


def test_pick_free_ports_are_distinct_and_bindable() -> None:
    ports = pick_free_ports(5)
    assert len(ports) == 5
    assert len(set(ports)) == 5
    assert all(port_is_free(p) for p in ports)


def test_pick_free_ports_skips_avoided_ports() -> None:
    first = pick_free_ports(3)
    again = pick_free_ports(3, avoid=frozenset(first))
    assert set(again).isdisjoint(first)


def test_port_is_free_is_false_while_something_listens() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_is_free(port) is False
    assert port_is_free(port) is True


def test_state_round_trips_through_json(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    save_state(path, _state())
    assert load_state(path) == _state()
    assert json.loads(path.read_text())["kafka"] == {
        "cluster_id": "c73wOgBVRZq0RZ_X77lPOQ",
        "controller_port": 40002,
        "port": 40001,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["stack.json"]


def test_missing_state_file_means_never_started(tmp_path: Path) -> None:
    assert load_state(tmp_path / "stack.json") is None


def test_external_postgres_state_has_no_port() -> None:
    text = json.dumps(
        {
            "version": 1,
            "kafka": {"port": 1, "controller_port": 2, "cluster_id": "x"},
            "postgres": {"port": None, "external_dsn": "postgresql://u@db:5432/d"},
            "lake_root": "/l",
        }
    )
    state = StackState.from_json(text)
    assert state.postgres == PostgresState(port=None, external_dsn="postgresql://u@db:5432/d")
    assert state.up is False


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=2), "version is 2, this restlake reads version 1"),
        (lambda d: d.pop("kafka"), "missing key 'kafka'"),
        (lambda d: d["kafka"].pop("controller_port"), "missing key 'controller_port'"),
        (lambda d: d["kafka"].update(port=70000), "kafka.port is 70000, expected a TCP port number"),
        (lambda d: d["postgres"].update(port="5432"), "postgres.port is '5432', expected a TCP port number"),
    ],
)
def test_bad_state_file_names_the_problem_and_the_file(
    mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    data = json.loads(_state().to_json())
    mutate(data)
    with pytest.raises(StackError) as err:
        StackState.from_json(json.dumps(data), source="/srv/state/stack.json")
    assert str(err.value) == (
        f"cannot read the stack state file /srv/state/stack.json: {message}. "
        "Stop whatever it started (`restlake stack down`) or delete the file to start afresh."
    )


def test_state_file_that_is_not_json_is_a_stack_error() -> None:
    with pytest.raises(StackError, match=r"cannot read the stack state file x: Expecting value"):
        StackState.from_json("not json", source="x")


def test_cluster_id_has_kafka_random_uuid_shape() -> None:
    cid = new_cluster_id()
    assert len(cid) == 22
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16
    assert new_cluster_id() != cid


def test_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xfb... encodes to "-..." in base64url: the storage tool would read it as an option.
    draws = iter([uuid.UUID(bytes=b"\xfb" + b"\x00" * 15), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr("restlake.stack.state.uuid.uuid4", lambda: next(draws))
    assert new_cluster_id() == base64.urlsafe_b64encode(b"\x01" * 16).decode().rstrip("=")


def test_new_state_picks_three_ports_or_two_with_external_postgres(tmp_path: Path) -> None:
    paths = StackPaths.under(tmp_path)
    own = new_state(paths, external_pg_dsn=None)
    ports = [own.kafka.port, own.kafka.controller_port, own.postgres.port]
    assert len(set(ports)) == 3
    assert own.lake_root == str(tmp_path.absolute() / "lake")
    ext = new_state(paths, external_pg_dsn="postgresql://u@db/d")
    assert ext.postgres == PostgresState(port=None, external_dsn="postgresql://u@db/d")


def test_jars_dir_defaults_under_state_and_is_overridable(tmp_path: Path) -> None:
    assert jars_dir_for(tmp_path, {}) == tmp_path.absolute() / "jars"
    assert jars_dir_for(tmp_path, {"RESTLAKE_JARS_DIR": "/cache/jars"}) == Path("/cache/jars")
    paths = StackPaths.under(tmp_path, jars_dir=Path("/cache/jars"))
    assert (paths.jars, paths.state_file) == (Path("/cache/jars"), tmp_path.absolute() / "stack.json")


def test_picked_ports_stay_below_the_ephemeral_range() -> None:
    low, _high = ephemeral_port_range()
    ports = pick_free_ports(50)
    assert all(20000 <= p < max(21000, low) for p in ports)


def test_port_picking_is_reproducible_with_a_seed_and_skips_taken_ports() -> None:
    first = pick_free_ports(1, rng=random.Random(7))[0]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", first))
        sock.listen()
        again = pick_free_ports(1, rng=random.Random(7))[0]
    assert again != first
