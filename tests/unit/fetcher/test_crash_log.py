"""A crashed pass is logged with its traceback, redacted: the issue's ``api_key=<secret>`` in clear."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from restlake.contracts.spec import IngestionSource
from restlake.fetcher.logformat import JsonFormatter
from restlake.fetcher.poller import PassStats
from restlake.fetcher.service import FetcherService
from restlake.lineage import LineageEmitter

from ...openlineage_events import Recorder

SECRET = "Crash-Canary-51d0"


class _Producer:
    def flush(self, timeout: float) -> None:
        return None


class _Store:
    async def close(self) -> None:
        return None


def test_the_crash_log_and_the_fail_event_carry_the_traceback_without_the_secret(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RESTLAKE_SECRET_API_KEY", SECRET)
    source = IngestionSource.model_validate(
        {
            "apiVersion": "restlake.io/v1alpha1",
            "kind": "IngestionSource",
            "metadata": {"name": "orders"},
            "spec": {
                "request": {
                    "url": "http://127.0.0.1:8085/v1/items",
                    "auth": {
                        "type": "apiKey",
                        "in": "query",
                        "name": "api_key",
                        "secretRef": {"name": "api", "key": "key"},
                    },
                }
            },
        }
    )
    rec = Recorder()
    service = FetcherService(
        [source],
        producer=_Producer(),  # type: ignore[arg-type]
        state_store=_Store(),  # type: ignore[arg-type]
        lineage=LineageEmitter(rec),
    )
    service.settings = service.settings.model_copy(update={"ops_port": None})

    async def fetch_pass(session: object, stop: asyncio.Event) -> PassStats:
        url = f"http://127.0.0.1:8085/v1/items?api_key={SECRET}"  # noqa: F841 - a local a traceback may show
        raise RuntimeError(f"Exceeded 10 redirects: http://127.0.0.1:8085/v1/items?page=3&api_key={SECRET}")

    service.fetchers[0].fetch_pass = fetch_pass  # type: ignore[method-assign]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    caplog.set_level(logging.INFO)
    try:
        results = asyncio.run(service.run(once=True))
    finally:
        logging.getLogger().removeHandler(handler)
    crashed = [r for r in caplog.records if r.getMessage().startswith("fetch pass crashed")]
    assert len(crashed) == 1
    line = crashed[0].getMessage()
    assert "RuntimeError: Exceeded 10 redirects: http://127.0.0.1:8085/v1/items?page=3&api_key=***" in line
    assert "Traceback (most recent call last)" in line and "in fetch_pass" in line
    assert results["orders"][0].error is not None and "api_key=***" in results["orders"][0].error
    json_lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert any(x["message"].startswith("fetch pass crashed") for x in json_lines)
    fail = [e for e in rec.events if e["eventType"] == "FAIL"]
    assert len(fail) == 1 and "api_key=***" in fail[0]["run"]["facets"]["errorMessage"]["message"]
    assert SECRET not in caplog.text
    assert SECRET not in stream.getvalue()
    assert SECRET not in json.dumps(rec.events)
