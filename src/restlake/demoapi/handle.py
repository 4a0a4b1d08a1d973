"""Run a demo API inside the current process, on a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import Dataset
from restlake.demoapi.faults import FaultConfig
from restlake.demoapi.server import build_app, start_site

log = logging.getLogger(__name__)


class DemoApiHandle:
    """A running demo API, steered through its admin endpoints (so every call is thread-safe)."""

    def __init__(self, base_url: str, config: DemoApiConfig) -> None:
        self.base_url = base_url
        self.config = config

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _call(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url(path), data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"{method} {path} -> {exc.code}: {exc.read().decode(errors='replace')}"
            ) from exc

    def tick(self, n: int = 1) -> dict[str, Any]:
        """Advance the virtual clock by ``n`` ticks; returns the admin state after it."""
        return self._call("POST", f"/_admin/tick?n={n}")

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/_admin/state")

    def requests(self, *, clear: bool = False) -> list[str]:
        """The listing requests seen, oldest first, as ``"GET /v1/...?query"``; ``clear`` empties the log."""
        return list(self._call("GET", "/_admin/requests" + ("?clear=1" if clear else ""))["requests"])

    def set_faults(self, faults: FaultConfig | None = None, **fields: Any) -> dict[str, Any]:
        """Replace the fault config (a FaultConfig or its fields); the fault sequence restarts at 0."""
        config = faults or FaultConfig.model_validate(fields)
        return self._call("POST", "/_admin/faults", config.model_dump())

    def clear_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "/_admin/faults")

    def touch_org(self, repo: str, issue: int | None = None) -> dict[str, Any]:
        """Revise one repository of the organisation listing, or one issue of it (its number)."""
        query = f"repo={repo}" + (f"&issue={issue}" if issue is not None else "")
        return self._call("POST", f"/_admin/orgs/touch?{query}")

    def dataset(self, at_tick: int | None = None) -> Dataset:
        """An independent replica of the served data at ``at_tick`` (default: the server's tick now)."""
        replica = Dataset(self.config.dataset)
        replica.advance(self.state()["tick"] if at_tick is None else at_tick)
        return replica


@contextmanager
def running_demo_api(config: DemoApiConfig | None = None, host: str = "127.0.0.1") -> Iterator[DemoApiHandle]:
    """Serve ``config`` on a free port of ``host`` for the duration of the ``with`` block."""
    config = config or DemoApiConfig()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="restlake-demo-api", daemon=True)
    thread.start()
    try:
        runner, base_url = asyncio.run_coroutine_threadsafe(
            start_site(build_app(config), host, 0), loop
        ).result(timeout=30)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        raise
    log.info("demo api started in thread", extra={"base_url": base_url})
    try:
        yield DemoApiHandle(base_url, config)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        log.info("demo api stopped", extra={"base_url": base_url})
