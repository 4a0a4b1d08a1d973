"""Live progress as a person at a terminal sees it: `restlake run` (one source, and a file of a
parent and its child), `restlake fetcher run --once` and `restlake backfill`, each run as a real
command with its stdout on a pseudo-terminal against the local stack. The frame left on screen
holds the exact counts; in a pipe, with --json and with --quiet stdout carries only the result;
--verbose adds DEBUG lines on stderr."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.handle import DemoApiHandle, running_demo_api
from restlake.demoapi.orgs import OrgConfig
from restlake.stack.manager import StackEndpoints

from .conftest import project_jars_dir
from .terminal import cells, restlake_on_terminal

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
N = 120  # demo-link pages of 50: 50, 50, 20
QUARANTINED = 10  # ids above 110 break the schema's maximum
ORGS = OrgConfig(repos=4, issues_per_repo=5)
RATE = re.compile(r"^[\d,]+/s$")
HEADER = ["SOURCE", "PAGES", "304", "RECORDS", "PRODUCED", "BRONZE", "POSTGRES", "QUARANTINED", "LAG", "RATE"]


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApiHandle]:
    config = DemoApiConfig(dataset=DatasetConfig(seed=5, initial_records=N, growth_per_tick=0), orgs=ORGS)
    with running_demo_api(config) as handle:
        yield handle


@pytest.fixture
def env(stack: StackEndpoints) -> dict[str, str]:
    """The command's environment: the session's stack, the project's jar cache, nothing inherited
    from a developer's own RESTLAKE_* settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RESTLAKE_")}
    return base | {
        "RESTLAKE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "RESTLAKE_PG_DSN": stack.pg_dsn,
        "RESTLAKE_LAKE_ROOT": stack.lake_root,
        "RESTLAKE_JARS_DIR": str(project_jars_dir()),
        "RESTLAKE_SPARK_LOG_LEVEL": "ERROR",
    }


def _link_source(api: DemoApiHandle, folder: Path, name: str) -> Path:
    doc = yaml.safe_load((EXAMPLES / "demo-link.yaml").read_text())
    doc["metadata"]["name"] = name
    doc["spec"]["request"]["url"] = f"{api.base_url}/v1/" + doc["spec"]["request"]["url"].split("/v1/", 1)[1]
    doc["spec"]["rateLimit"] = {"requestsPerSecond": 200, "burst": 50}
    doc["spec"].pop("quality", None)
    doc["spec"]["schema"]["jsonSchema"]["properties"]["id"] = {"type": "integer", "maximum": N - QUARANTINED}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _row(frame: list[str], name: str) -> list[str]:
    (line,) = [line for line in frame if cells(line)[:1] == [name]]
    row = cells(line)
    assert RATE.match(row[-1]), row
    return row[:-1]


def test_run_then_backfill_on_a_terminal(api: DemoApiHandle, env: dict[str, str], tmp_path: Path) -> None:
    name = f"pty-run-{uuid.uuid4().hex[:6]}"
    spec = _link_source(api, tmp_path, name)

    screen = restlake_on_terminal(["run", "-f", str(spec), "--until-caught-up"], env=env, cwd=tmp_path)
    assert screen.returncode == 0, screen.stderr[-3000:]
    assert "\x1b[" in screen.raw  # redrawn in place, not appended
    frame = screen.last_frame(f"restlake run {name} (until caught up)")
    assert cells(frame[1]) == HEADER
    assert _row(frame, name) == [name, "3", "0", f"{N:,}", f"{N:,}", "110", "110", "10", "0"]
    assert frame[-1].startswith(
        f"source {name}: fetched {N} records in 3 pages (0 not modified, 0 bad), produced {N}; "
        "bronze 110 rows, postgres 110 rows, quarantined 10 ("
    )
    assert len(frame) == 4  # title, header, the source's row, the summary: log lines went to stderr

    # The same records replayed from Kafka into Postgres: a rows bar, then the JSON summary.
    screen = restlake_on_terminal(
        ["backfill", "-f", str(spec), "--from-time", "2000-01-01T00:00:00+00:00"], env=env, cwd=tmp_path
    )
    assert screen.returncode == 0, screen.stderr[-3000:]
    frame = screen.last_frame(f"backfill {name} (kafka)")
    valid = N - QUARANTINED  # the bar counts the rows that reach the merge
    assert f"{valid}/{valid} rows" in frame[0], frame
    summary = json.loads(frame[-1])
    assert (summary["rows_read"], summary["rows_invalid"]) == (N, QUARANTINED)


def test_fetcher_once_on_a_terminal_in_a_pipe_quiet_and_verbose(
    api: DemoApiHandle, env: dict[str, str], tmp_path: Path
) -> None:
    name = f"pty-fetch-{uuid.uuid4().hex[:6]}"
    spec = _link_source(api, tmp_path, name)
    command = ["fetcher", "run", "--once", "--no-ops", "-f", str(spec)]

    screen = restlake_on_terminal(command, env=env, cwd=tmp_path)
    assert screen.returncode == 0, screen.stderr[-3000:]
    frame = screen.last_frame("restlake fetcher run --once")
    assert cells(frame[1]) == HEADER
    # The fetcher alone: nothing of the stream's columns.
    assert _row(frame, name) == [name, "3", "0", f"{N:,}", f"{N:,}", "-", "-", "-", "-"]
    (first,) = json.loads(frame[-1])[name]
    assert (first["requests"], first["records"], first["produced"]) == (3, N, N)

    # --quiet at a terminal: no display, no INFO lines; the result still prints.
    screen = restlake_on_terminal(["--quiet", *command], env=env, cwd=tmp_path)
    assert screen.returncode == 0, screen.stderr
    (line,) = [line for line in screen.text.splitlines() if line.strip()]
    (second,) = json.loads(line)[name]
    assert (second["requests"], second["not_modified"], second["records"]) == (3, 3, 0)
    assert " INFO " not in screen.stderr and " DEBUG " not in screen.stderr

    # A pipe, with --verbose: stdout is exactly the result, DEBUG lines go to stderr.
    piped = subprocess.run(
        [sys.executable, "-m", "restlake.cli.main", "--verbose", *command],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr[-3000:]
    (third,) = json.loads(piped.stdout)[name]
    assert piped.stdout.count("\n") == 1 and third["not_modified"] == 3
    assert " DEBUG " in piped.stderr and " INFO " in piped.stderr


def _group_file(api: DemoApiHandle, folder: Path, prefix: str) -> Path:
    text = (EXAMPLES / "demo-parent-child.yaml").read_text()
    text = text.replace("demo-parent-child-", prefix).replace("http://127.0.0.1:8085", api.base_url)
    docs: list[dict[str, Any]] = list(yaml.safe_load_all(text))
    for doc in docs:
        doc["spec"]["rateLimit"] = {"requestsPerSecond": 200, "burst": 50}
    path = folder / "group.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_a_parent_and_its_child_share_one_display(
    api: DemoApiHandle, env: dict[str, str], tmp_path: Path
) -> None:
    prefix = f"pty-{uuid.uuid4().hex[:6]}-"
    group = _group_file(api, tmp_path, prefix)
    repos, issues = ORGS.repos, ORGS.repos * ORGS.issues_per_repo

    screen = restlake_on_terminal(["run", "-f", str(group), "--until-caught-up"], env=env, cwd=tmp_path)
    assert screen.returncode == 0, screen.stderr[-3000:]
    frame = screen.last_frame("restlake run group.yaml (2 sources) (until caught up)")
    assert cells(frame[1]) == HEADER
    # One row per source, parents first; the child fetched one page per repository.
    assert [cells(line)[0] for line in frame[2:4]] == [f"{prefix}repos", f"{prefix}issues"]
    assert _row(frame, f"{prefix}repos") == [f"{prefix}repos", "1", "0", "4", "4", "4", "4", "0", "0"]
    expected = [
        f"{prefix}issues",
        str(repos),
        "0",
        str(issues),
        str(issues),
        str(issues),
        str(issues),
        "0",
        "0",
    ]
    assert _row(frame, f"{prefix}issues") == expected
    assert [line.split(":")[0] for line in frame[4:]] == [f"source {prefix}repos", f"source {prefix}issues"]
