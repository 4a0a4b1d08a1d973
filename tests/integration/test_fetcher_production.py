"""Production behaviour of the fetcher against the demo API, the real broker and real Postgres.

Conditional requests (also across a restart), incremental watermarks with lookback, advertised rate
limits, every fault class with its dead-letter event, SIGKILL mid-pagination, the ops endpoints and
secrets that never leak.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import yaml

from restlake.contracts.spec import IngestionSource, parse_source
from restlake.demoapi.auth import AuthConfig
from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.handle import DemoApiHandle, running_demo_api
from restlake.demoapi.ratelimit import RateLimitConfig
from restlake.fetcher.client import RetryPolicy
from restlake.fetcher.metrics import FetcherMetrics
from restlake.fetcher.poller import PassStats, SourceFetcher
from restlake.fetcher.producer import EnvelopeProducer
from restlake.fetcher.service import FetcherService
from restlake.fetcher.settings import FetcherSettings
from restlake.fetcher.state import PostgresStateStore
from restlake.kafka_admin import ensure_topic
from restlake.postgres import migrations

from .kafka_topic import read_topic

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REPO_ROOT = Path(__file__).resolve().parents[2]
FAST_RETRIES = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


# -- helpers -------------------------------------------------------------------------------------


def _source(example: str, api: DemoApiHandle, name: str, **spec: Any) -> IngestionSource:
    """``examples/<example>.yaml`` pointed at ``api``, renamed, with ``spec`` keys (camelCase) merged in."""
    doc = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    doc["metadata"]["name"] = name
    path = doc["spec"]["request"]["url"].split("/v1/", 1)[1]
    doc["spec"]["request"]["url"] = f"{api.base_url}/v1/{path}"
    doc["spec"]["rateLimit"] = {"requestsPerSecond": 200, "burst": 50}
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(doc["spec"].get(key), dict):
            doc["spec"][key] = {**doc["spec"][key], **value}
        else:
            doc["spec"][key] = value
    return parse_source(doc, f"test:{name}")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _state_rows(dsn: str, source: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT key, value FROM raw.fetch_state WHERE source = %s", (source,)).fetchall()
    return dict(rows)


@pytest.fixture(scope="module")
def env(stack):
    migrations.apply(stack.pg_dsn)
    producer = EnvelopeProducer(stack.kafka_bootstrap)
    yield stack, producer
    producer.flush(30)


def _fetch(
    env: Any, source: IngestionSource, *, metrics: FetcherMetrics | None = None, **kwargs: Any
) -> tuple[PassStats, SourceFetcher]:
    """One pass by a brand-new fetcher with a brand-new state store (as after a process restart)."""
    stack, producer = env
    topic = source.topic()
    ensure_topic(stack.kafka_bootstrap, topic, partitions=3)
    ensure_topic(stack.kafka_bootstrap, topic + ".dlq", partitions=1)
    kwargs.setdefault("policy", FAST_RETRIES)

    async def one_pass() -> tuple[PassStats, SourceFetcher]:
        store = PostgresStateStore(stack.pg_dsn)
        fetcher = SourceFetcher(source, producer, topic, state_store=store, metrics=metrics, **kwargs)
        try:
            async with aiohttp.ClientSession() as session:
                return await fetcher.fetch_pass(session), fetcher
        finally:
            await store.close()

    return asyncio.run(one_pass())


def _ids(env: Any, source: IngestionSource) -> list[str]:
    return [key.split("/")[1] for key, _ in read_topic(env[0].kafka_bootstrap, source.topic())]


# -- conditional requests, every pagination kind, across restarts ---------------------------------


# After new records arrive, link and cursor pages keep their bodies except the last one; page-number
# and offset pages carry the total in every body, so every page really changed.
@pytest.mark.parametrize(
    ("example", "pages", "unchanged_after_tick"),
    [("demo-link", 3, 2), ("demo-cursor", 3, 2), ("demo-pages", 3, 0), ("demo-offset", 3, 0)],
)
def test_every_pagination_kind_then_304s_after_restart_then_only_changed_pages(
    env, example, pages, unchanged_after_tick
) -> None:
    config = DemoApiConfig(
        dataset=DatasetConfig(seed=21, initial_records=120, growth_per_tick=5, update_fraction=0.0)
    )
    with running_demo_api(config) as api:
        source = _source(example, api, _name(f"cond-{example.removeprefix('demo-')}"))
        first, _ = _fetch(env, source)
        all_ids = {str(r["id"]) for r in api.dataset().snapshot()}
        # A restart: new fetcher, new connection; validators and continuations come from Postgres.
        second, _ = _fetch(env, source)
        served_304 = api.state()["not_modified"]
        api.tick(1)  # five new records, nothing revised: only the last page changes
        third, _ = _fetch(env, source)
        new_ids = {str(r["id"]) for r in api.dataset().snapshot()} - all_ids
    assert (first.complete, first.records, first.produced, first.pages) == (True, 120, 120, pages)
    assert (second.complete, second.records, second.pages, second.not_modified) == (True, 0, 0, pages)
    assert served_304 == pages
    assert third.complete and third.not_modified == unchanged_after_tick
    # Changed pages come again whole: the last one (ids 101-125) or, with totals, all of them.
    assert third.records == 125 - 50 * unchanged_after_tick
    ids = _ids(env, source)
    assert len(new_ids) == 5
    assert set(ids) == all_ids | new_ids
    assert len(ids) == 120 + third.records
    keys = _state_rows(env[0].pg_dsn, source.name)
    assert len([k for k in keys if k.startswith("page:")]) == pages


def test_304_on_page_one_does_not_hide_a_change_on_page_two(env) -> None:
    config = DemoApiConfig(
        dataset=DatasetConfig(seed=4, initial_records=100, growth_per_tick=0, update_fraction=0.05)
    )
    with running_demo_api(config) as api:
        source = _source("demo-link", api, _name("cond-deep"))
        _fetch(env, source)
        before = {r["id"]: r["updated_at"] for r in api.dataset().snapshot()}
        api.tick(1)
        after = {r["id"]: r["updated_at"] for r in api.dataset().snapshot()}
        changed = {i for i in after if after[i] != before[i]}
        stats, _ = _fetch(env, source)
    changed_pages = {(i - 1) // 50 for i in changed}
    assert changed, "the tick should revise some records"
    assert stats.complete
    assert stats.not_modified == 2 - len(changed_pages)
    assert stats.records == 50 * len(changed_pages)
    second_pass = Counter(_ids(env, source)) - Counter(str(i) for i in before)
    assert {str(i) for i in changed} <= set(second_pass)
    assert sum(second_pass.values()) == stats.records


# -- incremental ---------------------------------------------------------------------------------


def test_incremental_watermark_with_lookback_picks_up_updates_after_tick(env) -> None:
    config = DemoApiConfig(
        dataset=DatasetConfig(seed=8, initial_records=150, growth_per_tick=7, update_fraction=0.04)
    )
    incremental = {"param": "since", "cursorPath": "$.updated_at", "lookback": "2m"}
    with running_demo_api(config) as api:
        source = _source("demo-cursor", api, _name("incr"), incremental=incremental)
        first, _ = _fetch(env, source)
        snapshot = list(api.dataset().snapshot())
        watermark = max(r["updated_at"] for r in snapshot)
        api.tick(1)
        later = list(api.dataset().snapshot())
        second, _ = _fetch(env, source)
    from datetime import datetime, timedelta

    def ts(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    since = ts(watermark) - timedelta(minutes=2)
    expected = sorted(str(r["id"]) for r in later if ts(r["updated_at"]) >= since)
    changed = {str(r["id"]) for r in later} - {str(r["id"]) for r in snapshot} | {
        str(r["id"]) for r, old in zip(later, snapshot, strict=False) if r != old
    }
    # Records still at the old watermark and unchanged were delivered by the first pass: the
    # second one sees them again (since is inclusive) but does not publish them twice.
    at_old_mark = {str(r["id"]) for r in snapshot if r["updated_at"] == watermark}
    unchanged_at_mark = at_old_mark - changed
    assert first.complete and first.records == 150 and first.watermark == watermark
    assert second.complete
    assert second.watermark == max(r["updated_at"] for r in later)
    assert changed and changed <= set(expected)
    # Partitions interleave in the topic: the second pass's ids are all ids minus one of each first-pass id.
    second_pass = Counter(_ids(env, source)) - Counter(str(r["id"]) for r in snapshot)
    assert sorted(second_pass.elements()) == sorted(set(expected) - unchanged_at_mark)
    assert second.records == len(expected)
    assert second.skipped == len(unchanged_at_mark)
    state = _state_rows(env[0].pg_dsn, source.name)
    newest_mark = max(r["updated_at"] for r in later)
    assert state["watermark"]["value"] == newest_mark
    assert len(state["watermark"]["boundary"]) == sum(r["updated_at"] == newest_mark for r in later)


def test_records_at_the_watermark_are_not_published_again(env) -> None:
    """``since`` is inclusive: every pass re-reads the records at the watermark. Unchanged ones were
    delivered and are skipped (a revised one has another idempotency key, so it is not)."""
    config = DemoApiConfig(dataset=DatasetConfig(seed=9, initial_records=80, growth_per_tick=6))
    incremental = {"param": "since", "cursorPath": "$.updated_at", "lookback": "0s"}
    with running_demo_api(config) as api:
        source = _source("demo-cursor", api, _name("edge"), incremental=incremental)
        first, _ = _fetch(env, source)
        records = list(api.dataset().snapshot())
        mark = max(r["updated_at"] for r in records)
        at_mark = sorted(str(r["id"]) for r in records if r["updated_at"] == mark)
        second, _ = _fetch(env, source)  # nothing changed: the records at the mark come back
        api.tick(1)
        third, _ = _fetch(env, source)
        after = list(api.dataset().snapshot())
    assert at_mark, "the dataset has records at the watermark"
    assert (first.records, first.produced, first.skipped) == (80, 80, 0)
    assert (second.records, second.produced, second.skipped) == (len(at_mark), 0, len(at_mark))
    new_or_revised = {str(r["id"]) for r in after if r["updated_at"] > mark}
    assert third.produced == len(new_or_revised) and third.skipped == len(at_mark)
    # In Kafka: every record once, plus once more for each new or revised one, and nothing else.
    counts = Counter(_ids(env, source))
    assert counts == Counter([str(r["id"]) for r in records] + sorted(new_or_revised))


# -- rate limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ietf", [False, True])
def test_zero_429s_when_the_api_advertises_its_budget(env, ietf) -> None:
    config = DemoApiConfig(
        dataset=DatasetConfig(seed=2, initial_records=200, growth_per_tick=0),
        rate_limit=RateLimitConfig(requests_per_second=8, burst=3, ietf_headers=ietf),
    )
    metrics = FetcherMetrics()
    with running_demo_api(config) as api:
        # The spec allows far more than the server: only the server's headers can keep it polite.
        source = _source(
            "demo-offset",
            api,
            _name("rl"),
            rateLimit={"requestsPerSecond": 100, "burst": 20},
            pagination={"limit": 20},
        )
        stats, _ = _fetch(env, source, metrics=metrics)
        served = api.state()
    assert stats.complete and stats.records == 200
    assert served["rate_limited"] == 0
    assert served["listing_requests"] == stats.requests == 10
    waited = metrics.rate_limit_wait.labels(source.name)._value.get()
    assert waited > 0.3  # 10 requests against 3 + 8/s cannot go out back to back


# -- faults --------------------------------------------------------------------------------------

FAULTS = {
    "5xx": ({"error_rate": 1.0, "error_status": 503}, "http_5xx", "HttpStatusError", 3),
    "timeout": ({"slow_rate": 1.0, "slow_seconds": 2.0}, "timeout", "RequestTimeoutError", 3),
    "truncated": ({"truncate_rate": 1.0}, "malformed_json", "BadPageError", 3),
    "wrong_content_type": ({"wrong_content_type_rate": 1.0}, "wrong_content_type", "BadPageError", 3),
    "bad_utf8": ({"bad_utf8_rate": 1.0}, "bad_encoding", "BadPageError", 3),
    "oversized": ({}, "oversized_body", "BadPageError", 3),
    "401": ({}, "http_4xx", "HttpClientError", 1),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_is_retried_then_dead_lettered_without_advancing_state(env, fault, monkeypatch) -> None:
    faults, reason, error_class, attempts = FAULTS[fault]
    token = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("RESTLAKE_SECRET_FAULT_TOKEN_TOKEN", token)
    config = DemoApiConfig(
        dataset=DatasetConfig(seed=9, initial_records=80, growth_per_tick=0, update_fraction=1.0),
        auth=AuthConfig(bearer_token=token),
    )
    incremental = {"param": "since", "cursorPath": "$.updated_at"}
    with running_demo_api(config) as api:
        source = _source(
            "demo-link",
            api,
            _name(f"fault-{fault.replace('_', '-').lower()}"),
            incremental=incremental,
            request={
                "timeout": "1s",
                "auth": {"type": "bearer", "secretRef": {"name": "fault-token", "key": "token"}},
            },
        )
        good, _ = _fetch(env, source)
        state_before = _state_rows(env[0].pg_dsn, source.name)
        api.tick(1)  # every record revised: every page changes, so the next pass really fetches
        if fault == "401":
            monkeypatch.setenv("RESTLAKE_SECRET_FAULT_TOKEN_TOKEN", "revoked-" + token)
        if faults:
            api.set_faults(**faults)
        requests_before = api.state()["listing_requests"]
        metrics = FetcherMetrics()
        bad, _ = _fetch(
            env, source, metrics=metrics, max_body_bytes=1024 if fault == "oversized" else 1 << 26
        )
        requests = api.state()["listing_requests"] - requests_before
    assert good.complete and good.records == 80
    assert not bad.complete and bad.bad_pages == 1 and bad.dead_letters == 1
    assert (bad.records, bad.produced) == (0, 0)
    assert requests == attempts  # retried (or, for a refused credential, not), then given up
    state_after = _state_rows(env[0].pg_dsn, source.name)
    # Validators and watermark stay; only the pass summary (for `restlake status`) records the failure.
    assert state_after.pop("pass:last")["outcome"] == "error"
    assert state_before.pop("pass:last")["outcome"] == "complete"
    assert state_after == state_before
    assert metrics.bad_pages.labels(source.name, reason)._value.get() == 1
    dead = read_topic(env[0].kafka_bootstrap, source.topic() + ".dlq")
    assert len(dead) == 1
    event = json.loads(dead[0][1])
    assert (event["source"], event["reason"], event["error_class"], event["attempts"]) == (
        source.name,
        reason,
        error_class,
        attempts,
    )
    assert event["url"].startswith(f"{api.base_url}/v1/link/items?")
    if reason in ("malformed_json", "wrong_content_type", "bad_encoding"):
        assert event["body_sha256"] and event["body_bytes"] > 0 and event["body_excerpt"]
    assert token not in json.dumps(event)
    assert len(_ids(env, source)) == 80  # only the good pass's records


# -- SIGKILL mid-pagination ----------------------------------------------------------------------


def _fetcher_process(source_file: Path, stack: Any, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "restlake.fetcher", "run", "--once", "--no-ops", "-f", str(source_file)],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "RESTLAKE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "RESTLAKE_PG_DSN": stack.pg_dsn,
            "RESTLAKE_FETCHER_CHECKPOINT_PAGES": "2",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _write_source(source: IngestionSource, path: Path) -> Path:
    path.write_text(yaml.safe_dump(source.model_dump(mode="json", by_alias=True, exclude_none=True)))
    return path


def test_sigkill_mid_pagination_then_restart_covers_every_record_with_stable_keys(env, tmp_path) -> None:
    stack = env[0]
    config = DemoApiConfig(dataset=DatasetConfig(seed=13, initial_records=200, growth_per_tick=0))
    with running_demo_api(config) as api:
        source = _source("demo-link", api, _name("kill"), request={"params": {"per_page": "20"}})
        source_file = _write_source(source, tmp_path / "kill.yaml")
        api.set_faults(slow_rate=1.0, slow_seconds=0.4)
        proc = _fetcher_process(source_file, stack)
        deadline = time.monotonic() + 30
        while api.state()["listing_requests"] < 6 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        killed_at = api.state()["listing_requests"]
        api.clear_faults()
        restarted = _fetcher_process(source_file, stack)
        out, err = restarted.communicate(timeout=60)
        assert restarted.returncode == 0, err[-3000:]
        expected = {str(r["id"]) for r in api.dataset().snapshot()}
    assert 6 <= killed_at < 10  # really killed mid-pass (10 pages)
    summary = json.loads(out.strip().splitlines()[-1])[source.name][0]
    assert summary["complete"] and summary["not_modified"] >= 2  # checkpointed pages were not refetched
    assert summary["pages"] + summary["not_modified"] == 10
    keys = [k for k, _ in read_topic(stack.kafka_bootstrap, source.topic())]
    by_id: dict[str, set[str]] = {}
    for key in keys:
        by_id.setdefault(key.split("/")[1], set()).add(key)
    assert set(by_id) == expected  # every record, nothing foreign
    assert all(len(v) == 1 for v in by_id.values())  # a repeat has the very same key: dedup downstream
    assert len(keys) >= 200


# -- service, ops endpoints, graceful shutdown ----------------------------------------------------


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_service_runs_many_sources_and_serves_metrics_health_and_readiness(env) -> None:
    stack, _ = env
    config = DemoApiConfig(dataset=DatasetConfig(seed=5, initial_records=60, growth_per_tick=0))
    with running_demo_api(config) as api:
        sources = [
            _source(ex, api, _name(f"svc-{ex[5:]}"), poll={"interval": "1s", "jitter": 0.2})
            for ex in (
                "demo-link",
                "demo-cursor",
            )
        ]
        producer = EnvelopeProducer(stack.kafka_bootstrap)
        settings = FetcherSettings(ops_port=0, per_host_limit=2, checkpoint_pages=1)
        service = FetcherService(
            sources,
            producer=producer,
            state_store=PostgresStateStore(stack.pg_dsn),
            settings=settings,
            kafka_bootstrap=stack.kafka_bootstrap,
            create_topics=True,
            topic_prefix="restlake.",
        )

        async def scenario() -> tuple[dict, list[tuple[int, str]]]:
            task = asyncio.create_task(service.run())
            while not all(len(v) >= 2 for v in service.results.values()):
                await asyncio.sleep(0.1)
                assert not task.done(), task
            assert service.ops is not None and service.ops.base_url is not None
            base = service.ops.base_url
            probes = [
                await asyncio.to_thread(_get, f"{base}{p}") for p in ("/healthz", "/readyz", "/metrics")
            ]
            service.request_stop()
            return await asyncio.wait_for(task, 20), probes

        results, probes = asyncio.run(scenario())
    (health, _), (ready, ready_body), (metrics_status, text) = probes
    assert (health, ready, metrics_status) == (200, 200, 200)
    assert json.loads(ready_body)["checks"] == {"kafka": True, "state_store": True}
    for source in sources:
        first, second = results[source.name][:2]
        assert (first.complete, first.records) == (True, 60)
        assert (second.complete, second.records, second.not_modified) == (True, 0, 2)
        name = source.name
        assert f'restlake_fetcher_requests_total{{source="{name}",status_class="2xx"}} 2.0' in text
        assert f'restlake_fetcher_not_modified_total{{source="{name}"}}' in text
        assert f'restlake_fetcher_records_produced_total{{source="{name}"}} 60.0' in text
        assert f'restlake_fetcher_last_success_timestamp_seconds{{source="{name}"}}' in text
    assert "/v1/" not in text  # no URL ever becomes a label


def test_sigterm_finishes_the_page_flushes_and_saves_state(env, tmp_path) -> None:
    stack = env[0]
    config = DemoApiConfig(dataset=DatasetConfig(seed=14, initial_records=200, growth_per_tick=0))
    with running_demo_api(config) as api:
        source = _source("demo-link", api, _name("term"), request={"params": {"per_page": "20"}})
        source_file = _write_source(source, tmp_path / "term.yaml")
        api.set_faults(slow_rate=1.0, slow_seconds=0.4)
        proc = _fetcher_process(source_file, stack)
        deadline = time.monotonic() + 30
        while api.state()["listing_requests"] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, err[-3000:]  # --once and the pass did not finish: exit 1, cleanly
    summary = json.loads(out.strip().splitlines()[-1])[source.name][0]
    assert summary["stopped"] and summary["error"] is None
    assert summary["produced"] == summary["records"] == 20 * summary["pages"]
    pages = [k for k in _state_rows(stack.pg_dsn, source.name) if k.startswith("page:")]
    assert len(pages) == summary["pages"]  # every delivered page's validators were saved
    assert len(_ids(env, source)) == summary["records"]
