"""LocalStack behaviour that needs no running service: endpoints, env lines, DSN choice."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from restlake.cli.stack import EnvFormat, env_lines
from restlake.stack.kafka import KafkaBroker
from restlake.stack.manager import LocalStack, StackEndpoints
from restlake.stack.postgres import redact
from restlake.stack.state import KafkaState, PostgresState, StackPaths, StackState, save_state


def _record(root: Path, *, up: bool, external: str | None = None) -> StackState:
    state = StackState(
        kafka=KafkaState(port=41001, controller_port=41002, cluster_id="c73wOgBVRZq0RZ_X77lPOQ"),
        postgres=PostgresState(port=None if external else 41003, external_dsn=external),
        lake_root=str(root / "lake"),
        up=up,
    )
    save_state(root / "stack.json", state)
    return state


def test_endpoints_env_names() -> None:
    ep = StackEndpoints("127.0.0.1:1", "postgresql://postgres@127.0.0.1:2/postgres", "/x/lake")
    assert ep.env() == {
        "RESTLAKE_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "RESTLAKE_PG_DSN": "postgresql://postgres@127.0.0.1:2/postgres",
        "RESTLAKE_LAKE_ROOT": "/x/lake",
    }


def test_env_lines_are_plain_unless_quoting_is_needed() -> None:
    ep = StackEndpoints("127.0.0.1:1", "postgresql://postgres@127.0.0.1:2/postgres", "/my lake")
    assert env_lines(ep, EnvFormat.DOTENV) == [
        "RESTLAKE_KAFKA_BOOTSTRAP=127.0.0.1:1",
        "RESTLAKE_PG_DSN=postgresql://postgres@127.0.0.1:2/postgres",
        "RESTLAKE_LAKE_ROOT='/my lake'",
    ]
    assert env_lines(ep) == [
        "export RESTLAKE_KAFKA_BOOTSTRAP=127.0.0.1:1",
        "export RESTLAKE_PG_DSN=postgresql://postgres@127.0.0.1:2/postgres",
        "export RESTLAKE_LAKE_ROOT='/my lake'",
    ]


def test_the_export_form_reaches_a_child_of_the_shell_that_evals_it() -> None:
    # Quotes, spaces and a `$` must arrive as they are, not expanded or split by the shell.
    ep = StackEndpoints("127.0.0.1:1", "postgresql://u:p$w@127.0.0.1:2/db?x='y'", "/my lake/$HOME")
    child = (
        "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k[:9] == 'RESTLAKE_'}))"
    )
    script = f'eval "$1"; exec "$2" -c {shlex.quote(child)}'
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTLAKE_")}
    result = subprocess.run(
        ["sh", "-c", script, "sh", "\n".join(env_lines(ep)), sys.executable],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(result.stdout) == ep.env()
    # The dotenv form assigns without exporting: a child sees nothing (the reason for the export form).
    result = subprocess.run(
        ["sh", "-c", script, "sh", "\n".join(env_lines(ep, EnvFormat.DOTENV)), sys.executable],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(result.stdout) == {}


def test_no_state_means_not_up(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, env={})
    assert stack.endpoints() is None
    statuses = stack.status()
    assert {n: (s.running, s.detail) for n, s in statuses.items()} == {
        "kafka": (False, "never started"),
        "postgres": (False, "never started"),
    }


def test_endpoints_come_from_the_state_file_only_while_up(tmp_path: Path) -> None:
    root = tmp_path.absolute()
    _record(root, up=True)
    assert LocalStack(tmp_path, env={}).endpoints() == StackEndpoints(
        "127.0.0.1:41001", "postgresql://postgres@127.0.0.1:41003/postgres", str(root / "lake")
    )
    _record(root, up=False)
    assert LocalStack(tmp_path, env={}).endpoints() is None


def test_external_dsn_is_used_unless_it_is_our_own(tmp_path: Path) -> None:
    state = _record(tmp_path.absolute(), up=True)
    own = "postgresql://postgres@127.0.0.1:41003/postgres"
    assert LocalStack(tmp_path, env={"RESTLAKE_PG_DSN": own})._choose_postgres(state) is None
    other = "postgresql://app:pw@db.internal:5432/app"
    assert LocalStack(tmp_path, env={"RESTLAKE_PG_DSN": other})._choose_postgres(state) == other
    assert LocalStack(tmp_path, env={})._choose_postgres(state) is None


def test_jars_dir_override_links_state_jars(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    stack = LocalStack(tmp_path / "state", jars_dir=cache, env={})
    stack._link_jars()
    link = tmp_path / "state" / "jars"
    assert link.is_symlink()
    assert link.resolve() == cache.resolve()


def test_redact_hides_passwords() -> None:
    assert redact("postgresql://app:s3cret@db:5432/app") == "postgresql://app:***@db:5432/app"
    assert redact("host=db password=s3cret user=app") == "host=db password=*** user=app"
    assert (
        redact("postgresql://postgres@127.0.0.1:5432/postgres")
        == "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def test_broker_config_is_single_node_kraft(tmp_path: Path) -> None:
    paths = StackPaths.under(tmp_path)
    broker = KafkaBroker(paths, KafkaState(port=41001, controller_port=41002, cluster_id="cid"))
    props = dict(line.split("=", 1) for line in broker.server_properties().splitlines())
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:41002"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:41001,CONTROLLER://127.0.0.1:41002"
    assert props["log.dirs"] == str(tmp_path.absolute() / "kafka" / "data")
    for key, value in {
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }.items():
        assert props[key] == value
