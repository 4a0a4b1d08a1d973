"""A child source's passes over the demo API's repositories -> issues shape, state in memory.

The parent's rows are given as the Postgres table would hold them; Kafka is a recording stand-in
(the real broker is in tests/integration/test_parent_child.py). What is pinned here: which child
URLs each pass requests, what it publishes, and that marks only follow confirmed deliveries.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from restlake.contracts.envelope import Envelope, content_hash
from restlake.contracts.parents import resolve_parents
from restlake.contracts.spec import load_sources
from restlake.demoapi import DemoApiConfig, DemoApiHandle, running_demo_api
from restlake.demoapi.orgs import OrgConfig, OrgData
from restlake.fetcher.children import MISSING_PARENT_VALUE, ChildSourceFetcher
from restlake.fetcher.client import RetryPolicy
from restlake.fetcher.fanout import ParentRow
from restlake.fetcher.parent_rows import MemoryParentRows
from restlake.fetcher.poller import SourceFetcher
from restlake.fetcher.producer import DeliveryTracker
from restlake.fetcher.state import MemoryStateStore
from restlake.runtime.demo import retarget

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "demo-parent-child.yaml"
ORGS = OrgConfig(repos=3, issues_per_repo=4)


class _Producer:
    """Records what a pass publishes; every delivery is confirmed at once."""

    def __init__(self) -> None:
        self.published: list[Envelope] = []
        self.dead: list[bytes] = []

    async def publish(self, topic: str, envelope: Envelope, tracker: DeliveryTracker | None = None) -> None:
        self.published.append(envelope)

    async def send(
        self, topic: str, key: bytes, value: bytes, tracker: DeliveryTracker | None = None
    ) -> None:
        self.dead.append(value)

    async def confirm(self, tracker: DeliveryTracker, timeout: float = 120.0) -> None:
        return None


@pytest.fixture
def api() -> Iterator[DemoApiHandle]:
    with running_demo_api(DemoApiConfig(orgs=ORGS)) as handle:
        yield handle


def _rows(api: DemoApiHandle, data: OrgData) -> list[ParentRow]:
    """The parent's rows as Postgres would hold them after its pass."""
    rows = []
    for repo in data.repo_list():
        record = data.repo_json(repo)
        rows.append(ParentRow(str(record["id"]), content_hash(record), record))
    return rows


def _child(
    api: DemoApiHandle, rows: MemoryParentRows, store: MemoryStateStore
) -> tuple[ChildSourceFetcher, _Producer]:
    sources = [retarget(s, api.base_url) for s in load_sources(EXAMPLE)]
    parent, child = sources
    spec = child.spec.model_copy(
        update={"request": child.spec.request.model_copy(update={"params": {"per_page": "2"}})}
    )
    child = child.model_copy(update={"spec": spec})
    link = resolve_parents([parent, child])[child.name]
    producer = _Producer()
    fetcher = SourceFetcher(
        child,
        producer,
        "restlake.issues",
        state_store=store,
        policy=RetryPolicy(max_attempts=1),  # type: ignore[arg-type]
    )
    return ChildSourceFetcher(fetcher, link, rows), producer


def _pass(child: ChildSourceFetcher) -> Any:
    async def run() -> Any:
        async with aiohttp.ClientSession() as session:
            return await child.fetch_pass(session)

    return asyncio.run(run())


def _issue_paths(api: DemoApiHandle) -> list[str]:
    return [r.split(" ", 1)[1].split("?", 1)[0] for r in api.requests() if "/issues" in r]


def test_children_of_every_parent_then_only_of_the_changed_one(api: DemoApiHandle) -> None:
    data = OrgData(ORGS)  # a replica of the server's data, changed the same way below
    rows = MemoryParentRows({"demo-parent-child-repos": _rows(api, data)})
    store = MemoryStateStore()
    child, producer = _child(api, rows, store)

    first = _pass(child)
    assert first.complete and first.error is None
    assert (first.records, first.produced, first.pages) == (12, 12, 6)  # 3 repos x 2 pages of 2
    assert sorted(set(_issue_paths(api))) == [f"/v1/repos/acme/{r.name}/issues" for r in data.repo_list()]
    assert {(e.parent.source, e.parent.external_id) for e in producer.published if e.parent} == {
        ("demo-parent-child-repos", str(r.id)) for r in data.repo_list()
    }
    assert all(e.parent is not None for e in producer.published)
    by_id = {e.external_id: e.parent.external_id for e in producer.published if e.parent}
    assert by_id["10010001"] == "1001" and by_id["10030004"] == "1003"

    api.requests(clear=True)
    unchanged = _pass(child)
    assert unchanged.complete and (unchanged.requests, unchanged.produced) == (0, 0)
    assert api.requests() == []

    # One parent changes, and one child of *another* parent: only the changed parent's URL is asked.
    repos = data.repo_list()
    for d in (data,):
        d.touch(repos[1].name)
        d.touch(repos[2].name, 3)
    api.touch_org(repos[1].name)
    api.touch_org(repos[2].name, 3)
    rows.rows["demo-parent-child-repos"] = _rows(api, data)
    api.requests(clear=True)
    producer.published.clear()
    third = _pass(child)
    assert third.complete
    assert set(_issue_paths(api)) == {f"/v1/repos/acme/{repos[1].name}/issues"}
    # Its own watermark: asked since the newest issue it delivered, not the other repositories'.
    assert all(
        "since=2024-01-01T00%3A00%3A00Z" in r or "since=2024-01-01T00:00:00Z" in r for r in api.requests()
    )
    # Nothing new under it (since is inclusive; the boundary skips what was delivered).
    assert third.produced == 0
    assert child.last_fanout["due"] == {"changed": 1}


def test_a_parent_without_a_bound_value_is_dead_lettered_once_and_the_others_go_on(
    api: DemoApiHandle,
) -> None:
    data = OrgData(ORGS)
    good = _rows(api, data)
    broken = copy.deepcopy(good[0].payload)
    del broken["name"]
    rows = MemoryParentRows(
        {"demo-parent-child-repos": [ParentRow("999", content_hash(broken), broken), *good[1:]]}
    )
    store = MemoryStateStore()
    child, producer = _child(api, rows, store)
    first = _pass(child)
    assert first.complete
    assert (first.produced, first.rejected, first.dead_letters) == (8, 1, 1)
    assert len(producer.dead) == 1 and MISSING_PARENT_VALUE.encode() in producer.dead[0]
    assert b"spec.parent.bind.repo" in producer.dead[0]
    second = _pass(child)
    assert (second.produced, second.dead_letters) == (0, 0)  # marked: reported once per version
