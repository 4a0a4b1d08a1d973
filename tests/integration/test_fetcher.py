"""The fetcher against the demo API and the real broker: retries, bad pages, auth, exact topic contents."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import aiohttp
import pytest

from restlake.contracts.spec import IngestionSource, load_source
from restlake.demoapi.auth import AuthConfig
from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.handle import running_demo_api
from restlake.fetcher.client import RetryPolicy
from restlake.fetcher.poller import PassStats, SourceFetcher
from restlake.fetcher.producer import EnvelopeProducer
from restlake.kafka_admin import ensure_topic
from restlake.runtime.demo import retarget

from .kafka_topic import read_topic

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST_RETRIES = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


def _topic_keys(bootstrap: str, topic: str) -> list[str]:
    return [key or "" for key, _ in read_topic(bootstrap, topic)]


def _fetch(source: IngestionSource, bootstrap: str, topic: str) -> PassStats:
    ensure_topic(bootstrap, topic, partitions=3)
    fetcher = SourceFetcher(source, EnvelopeProducer(bootstrap), topic, policy=FAST_RETRIES)

    async def one_pass() -> PassStats:
        async with aiohttp.ClientSession() as session:
            return await fetcher.fetch_pass(session)

    return asyncio.run(one_pass())


def test_retries_5xx_and_publishes_each_record_once(stack) -> None:
    config = DemoApiConfig(dataset=DatasetConfig(seed=5, initial_records=120, growth_per_tick=0))
    with running_demo_api(config) as api:
        api.set_faults(fail_next=2, error_status=503)
        source = retarget(load_source(EXAMPLES / "demo-cursor.yaml"), api.base_url)
        topic = f"it.fetch.retry.{uuid.uuid4().hex[:8]}"
        stats = _fetch(source, stack.kafka_bootstrap, topic)
        expected_ids = [str(r["id"]) for r in api.dataset().snapshot()]
    assert stats.complete and stats.error is None
    assert (stats.records, stats.produced, stats.pages) == (120, 120, 3)
    keys = _topic_keys(stack.kafka_bootstrap, topic)
    assert len(keys) == 120
    assert sorted(k.split("/")[1] for k in keys) == sorted(expected_ids)


def test_truncated_pages_are_retried_then_recorded_without_producing(stack) -> None:
    config = DemoApiConfig(dataset=DatasetConfig(seed=5, initial_records=80, growth_per_tick=0))
    with running_demo_api(config) as api:
        api.set_faults(truncate_rate=1.0)
        source = retarget(load_source(EXAMPLES / "demo-link.yaml"), api.base_url)
        topic = f"it.fetch.bad.{uuid.uuid4().hex[:8]}"
        stats = _fetch(source, stack.kafka_bootstrap, topic)
        served = api.state()
    assert not stats.complete
    assert stats.bad_pages == 1
    assert stats.error is not None and "malformed JSON" in stats.error
    assert (stats.records, stats.produced) == (0, 0)
    assert served["listing_requests"] == FAST_RETRIES.max_attempts  # retried, then gave up
    assert _topic_keys(stack.kafka_bootstrap, topic) == []


def test_bearer_token_is_sent_and_never_logged(stack, monkeypatch, caplog) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    config = DemoApiConfig(
        dataset=DatasetConfig(seed=1, initial_records=10, growth_per_tick=0),
        auth=AuthConfig(bearer_token=token),
    )
    auth = {"type": "bearer", "secretRef": {"name": "demo-token", "key": "token"}}
    source = _with_auth(load_source(EXAMPLES / "demo-link.yaml"), auth)
    caplog.set_level(logging.DEBUG)
    with running_demo_api(config) as api:
        source = retarget(source, api.base_url)
        topic = f"it.fetch.auth.{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv("RESTLAKE_SECRET_DEMO_TOKEN_TOKEN", "wrong-" + token)
        refused = _fetch(source, stack.kafka_bootstrap, topic)
        monkeypatch.setenv("RESTLAKE_SECRET_DEMO_TOKEN_TOKEN", token)
        accepted = _fetch(source, stack.kafka_bootstrap, topic)
    assert not refused.complete and refused.error is not None and "HTTP 401" in refused.error
    assert accepted.complete and accepted.records == 10
    assert token not in caplog.text
    assert token not in repr(source) and token not in (refused.error or "")


def _with_auth(source: IngestionSource, auth: dict) -> IngestionSource:
    request = source.spec.request.model_validate(
        {**source.spec.request.model_dump(by_alias=True), "auth": auth}
    )
    return source.model_copy(update={"spec": source.spec.model_copy(update={"request": request})})


def _values(bootstrap: str, topic: str) -> list[bytes]:
    return [value for _, value in read_topic(bootstrap, topic)]


SECRET_CASES = {
    # kind: (demo-api auth config fields, spec auth, env secrets) with SECRET where the secret goes
    "bearer": ({"bearer_token": "SECRET"}, {"type": "bearer", "secretRef": {"name": "s", "key": "token"}}),
    "apiKeyQuery": (
        {"api_key_name": "api_key", "api_key_value": "SECRET"},
        {"type": "apiKey", "in": "query", "name": "api_key", "secretRef": {"name": "s", "key": "token"}},
    ),
    "oauth2": (
        {"oauth_client_id": "restlake", "oauth_client_secret": "SECRET"},
        {
            "type": "oauth2ClientCredentials",
            "tokenUrl": "http://127.0.0.1:1/oauth/token",
            "clientId": "restlake",
            "clientSecretRef": {"name": "s", "key": "token"},
        },
    ),
    # The demo API has no basic auth: the request is refused, and the refusal must not leak either.
    "basic": (
        {"bearer_token": "unrelated-token"},
        {
            "type": "basic",
            "username": "ingest",
            "passwordSecretRef": {"name": "s", "key": "token"},
        },
    ),
}


@pytest.mark.parametrize("kind", list(SECRET_CASES))
def test_no_secret_reaches_logs_errors_events_or_metrics(stack, monkeypatch, caplog, kind) -> None:
    from prometheus_client import generate_latest

    from restlake.fetcher.metrics import FetcherMetrics

    secret = f"sek-{uuid.uuid4().hex}"
    server_auth, spec_auth = SECRET_CASES[kind]
    config = DemoApiConfig(
        dataset=DatasetConfig(seed=1, initial_records=60, growth_per_tick=0, update_fraction=1.0),
        auth=AuthConfig(**{k: (secret if v == "SECRET" else v) for k, v in server_auth.items()}),
    )
    monkeypatch.setenv("RESTLAKE_SECRET_S_TOKEN", secret)
    caplog.set_level(logging.DEBUG)
    metrics = FetcherMetrics()
    with running_demo_api(config) as api:
        if kind == "oauth2":
            spec_auth = {**spec_auth, "tokenUrl": f"{api.base_url}/oauth/token"}
        source = _with_auth(retarget(load_source(EXAMPLES / "demo-link.yaml"), api.base_url), spec_auth)
        topic = f"it.fetch.secret.{kind.lower()}.{uuid.uuid4().hex[:8]}"
        ensure_topic(stack.kafka_bootstrap, topic, partitions=1)
        ensure_topic(stack.kafka_bootstrap, topic + ".dlq", partitions=1)
        producer = EnvelopeProducer(stack.kafka_bootstrap)
        fetcher = SourceFetcher(source, producer, topic, policy=FAST_RETRIES, metrics=metrics)

        async def one_pass() -> PassStats:
            async with aiohttp.ClientSession() as session:
                return await fetcher.fetch_pass(session)

        api.set_faults(fail_next=1)  # a retry, logged
        first = asyncio.run(one_pass())
        api.tick(1)
        api.set_faults(truncate_rate=1.0)  # a bad page: error, log line and dead-letter event
        second = asyncio.run(one_pass())
    if kind == "basic":
        assert first.error is not None and "HTTP 401" in first.error
    else:
        assert first.complete and first.records == 60
        assert second.dead_letters == 1 and "malformed JSON" in (second.error or "")
    texts = [
        caplog.text,
        repr(source),
        repr(fetcher),
        str(first.as_dict()),
        str(second.as_dict()),
        generate_latest(metrics.registry).decode(),
        *(v.decode() for v in _values(stack.kafka_bootstrap, topic + ".dlq")),
    ]
    if first.records:
        texts += [v.decode() for v in _values(stack.kafka_bootstrap, topic)]
    for text in texts:
        assert secret not in text
    if kind == "apiKeyQuery":
        assert "api_key=***" in caplog.text or "api_key" not in caplog.text
