"""The demo API as a child process (the CLI path), and the real-time clock."""

from __future__ import annotations

import json
import time
import urllib.request

from restlake.demoapi import DatasetConfig, DemoApiConfig, running_demo_api, start_demo_api_process
from restlake.demoapi.config import realtime_growth
from restlake.demoapi.process import stop_demo_api_process


def _json(url: str, method: str = "GET") -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_process_serves_cli_config_and_stops_cleanly() -> None:
    proc, base_url = start_demo_api_process(
        ["--records", "321", "--seed", "4", "--growth-per-tick", "9", "--fail-next", "1"]
    )
    try:
        assert base_url.startswith("http://127.0.0.1:")
        state = _json(f"{base_url}/_admin/state")
        assert state["total_records"] == 321 and state["dataset"]["seed"] == 4
        assert state["faults"]["fail_next_left"] == 1
        assert _json(f"{base_url}/_admin/tick?n=2", method="POST")["total_records"] == 339
    finally:
        assert stop_demo_api_process(proc) == 0


def test_realtime_growth_rate() -> None:
    assert realtime_growth(600) == (10, 1.0)
    growth, seconds = realtime_growth(30)
    assert (growth, seconds) == (1, 2.0)
    growth, seconds = realtime_growth(1000)
    assert growth == 17 and abs(growth / seconds * 60 - 1000) < 1e-9


def test_realtime_clock_ticks_by_itself() -> None:
    config = DemoApiConfig(
        dataset=DatasetConfig(initial_records=10, growth_per_tick=2, tick_seconds=1.0), realtime=True
    )
    with running_demo_api(config) as api:
        deadline = time.monotonic() + 5
        while (state := api.state())["ticks_auto"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state["ticks_auto"] >= 1 and state["total_records"] == 10 + 2 * state["tick"]
