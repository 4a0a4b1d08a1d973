"""Switchable faults: each kind observable, fail_next exact, draws reproducible, admin never faulted."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from restlake.demoapi import DatasetConfig, DemoApiConfig, DemoApiHandle, FaultConfig, running_demo_api
from restlake.demoapi.faults import FaultInjector, FaultKind

from .demoapi_http import http_get

CONFIG = DemoApiConfig(dataset=DatasetConfig(initial_records=50))
PAGE = "/v1/link/items?per_page=5"


@pytest.fixture
def api() -> Iterator[DemoApiHandle]:
    with running_demo_api(CONFIG) as handle:
        yield handle


def test_fail_next_is_exact_and_skips_admin(api: DemoApiHandle) -> None:
    good = http_get(api.url(PAGE))[2]
    api.set_faults(fail_next=3, error_status=502)
    statuses = []
    for _ in range(5):
        statuses.append(http_get(api.url(PAGE))[0])
        assert api.state()["tick"] == 0  # admin calls in between neither fail nor count
        assert http_get(api.url("/healthz"))[0] == 200
    assert statuses == [502, 502, 502, 200, 200]
    assert http_get(api.url(PAGE))[2] == good
    faults = api.state()["faults"]
    assert faults["injected"]["fail_next"] == 3 and faults["fail_next_left"] == 0


def test_fail_next_from_config_at_start() -> None:
    config = CONFIG.model_copy(update={"faults": FaultConfig(fail_next=2)})
    with running_demo_api(config) as handle:
        status, headers, body = http_get(handle.url(PAGE))
        assert status == 503 and headers["Retry-After"] == "1"
        assert json.loads(body)["error"] == "injected_fault"
        assert [http_get(handle.url(PAGE))[0] for _ in range(2)] == [503, 200]


def test_error_rate_is_reproducible_per_seed(api: DemoApiHandle) -> None:
    def run(seed: int) -> list[int]:
        api.set_faults(error_rate=0.3, error_status=500, seed=seed)
        return [http_get(api.url(PAGE))[0] for _ in range(40)]

    first, again, other = run(1), run(1), run(2)
    assert first == again
    assert first != other
    assert set(first) == {200, 500} and 4 <= first.count(500) <= 24
    # The server's draws are the injector's: sequence numbers 0..39 under seed 1.
    injector = FaultInjector(FaultConfig(error_rate=0.3, error_status=500, seed=1))
    expected = [500 if injector.plan().error_status else 200 for _ in range(40)]
    assert first == expected


def test_truncated_body(api: DemoApiHandle) -> None:
    full = http_get(api.url(PAGE))[2]
    api.set_faults(truncate_rate=1.0)
    status, headers, body = http_get(api.url(PAGE))
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert body == full[: len(full) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_wrong_content_type(api: DemoApiHandle) -> None:
    api.set_faults(wrong_content_type_rate=1.0)
    status, headers, body = http_get(api.url(PAGE))
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body.startswith(b"<!DOCTYPE html>")


def test_bad_utf8(api: DemoApiHandle) -> None:
    api.set_faults(bad_utf8_rate=1.0)
    status, _, body = http_get(api.url(PAGE))
    assert status == 200
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    assert json.loads(body.decode("utf-8", errors="replace"))  # only the encoding is broken


def test_slow_then_clear(api: DemoApiHandle) -> None:
    api.set_faults(slow_rate=1.0, slow_seconds=0.3)
    started = time.monotonic()
    assert http_get(api.url(PAGE))[0] == 200
    assert time.monotonic() - started >= 0.3
    api.clear_faults()
    started = time.monotonic()
    assert http_get(api.url(PAGE))[0] == 200
    assert time.monotonic() - started < 0.3
    assert api.state()["faults"]["injected"]["slow"] == 1


def test_injected_counts_and_304_untouched(api: DemoApiHandle) -> None:
    etag = http_get(api.url(PAGE))[1]["ETag"]
    api.set_faults(truncate_rate=1.0)
    assert http_get(api.url(PAGE), {"If-None-Match": etag})[0] == 304  # no body to break
    http_get(api.url(PAGE))
    assert api.state()["faults"]["injected"][FaultKind.TRUNCATE] == 1


def test_bad_fault_config_is_400(api: DemoApiHandle) -> None:
    for payload in (b'{"error_rate": 2}', b'{"bogus": 1}', b"not json"):
        request = urllib.request.Request(api.url("/_admin/faults"), data=payload, method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 400
