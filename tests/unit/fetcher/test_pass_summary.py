"""Each pass leaves a summary in the state store (``pass:last``, and ``pass:complete`` when it was),
which ``restlake status`` reads: requests, 304s, records, outcome and when."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from restlake.contracts.envelope import Envelope
from restlake.contracts.spec import load_source
from restlake.demoapi import DatasetConfig, DemoApiConfig, DemoApiHandle, running_demo_api
from restlake.fetcher.poller import SourceFetcher
from restlake.fetcher.producer import DeliveryTracker
from restlake.fetcher.state import LAST_COMPLETE_PASS_KEY, LAST_PASS_KEY, MemoryStateStore
from restlake.runtime.demo import retarget

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


class _ConfirmingProducer:
    """Confirms every record at once, as a healthy broker would."""

    def __init__(self) -> None:
        self.records = 0

    async def publish(self, topic: str, envelope: Envelope, tracker: DeliveryTracker | None = None) -> None:
        self.records += 1
        if tracker is not None:
            tracker._sent()
            tracker._done(None)

    async def confirm(self, tracker: DeliveryTracker, timeout: float = 120.0) -> None:
        return None


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApiHandle]:
    config = DemoApiConfig(dataset=DatasetConfig(seed=5, initial_records=120, growth_per_tick=0))
    with running_demo_api(config) as handle:
        yield handle


def _pass(fetcher: SourceFetcher) -> Any:
    async def run() -> Any:
        async with aiohttp.ClientSession() as session:
            return await fetcher.fetch_pass(session)

    return asyncio.run(run())


def test_a_first_and_a_conditional_pass_leave_their_summaries(api: DemoApiHandle) -> None:
    source = retarget(load_source(EXAMPLES / "demo-link.yaml"), api.base_url)
    store = MemoryStateStore()
    fetcher = SourceFetcher(source, _ConfirmingProducer(), "t", state_store=store)  # type: ignore[arg-type]
    before = datetime.now(UTC)
    first = _pass(fetcher)
    assert first.complete and first.records == 120
    summary = store.passes[(source.identity, LAST_PASS_KEY)]
    assert store.passes[(source.identity, LAST_COMPLETE_PASS_KEY)] == summary
    finished = datetime.fromisoformat(summary.pop("finished_at"))
    assert before <= finished <= datetime.now(UTC)
    assert summary == {
        "outcome": "complete",
        "requests": first.requests,
        "not_modified": 0,
        "pages": first.pages,
        "records": 120,
        "produced": 120,
        "bad_pages": 0,
        "dead_letters": 0,
        "watermark": first.watermark,
        "error": None,
    }
    second = _pass(fetcher)  # nothing changed: every page answers 304
    again = store.passes[(source.identity, LAST_PASS_KEY)]
    assert (again["requests"], again["not_modified"], again["records"]) == (
        second.requests,
        second.pages + second.not_modified,
        0,
    )
    assert again["not_modified"] == first.pages and again["outcome"] == "complete"
