"""The IngestionSource specs the cases point at the bundled demo API, and demo API lifecycles."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from restlake.contracts.spec import IngestionSource, parse_source
from restlake.demoapi.process import start_demo_api_process, stop_demo_api_process

# Large enough that the client-side budget never throttles the benchmark (the demo API sets none).
# The spec caps a rate at 1000 requests/s: at 100+ records a page, far above what the fetcher moves.
UNTHROTTLED = {"requestsPerSecond": 1000, "burst": 1000}


def demo_document(
    name: str,
    base_url: str,
    *,
    per_page: int = 1000,
    incremental: bool = False,
    partitions: int | None = None,
) -> dict[str, Any]:
    """A link-header source over /v1/link/items (the way GitHub-style APIs page)."""
    spec: dict[str, Any] = {
        "request": {"url": f"{base_url}/v1/link/items", "params": {"per_page": str(per_page)}},
        "records": {"path": "$", "idPath": "$.id", "versionPath": "$.updated_at"},
        "pagination": {"type": "linkHeader", "rel": "next", "maxPages": 1_000_000},
        "poll": {"interval": "1s", "jitter": 0},
        "rateLimit": UNTHROTTLED,
    }
    if incremental:
        # Only records updated since the last watermark; lookback 0: the demo API is consistent.
        spec["incremental"] = {"param": "since", "cursorPath": "$.updated_at", "lookback": "0s"}
    if partitions is not None:
        spec["kafka"] = {"partitions": partitions}
    return {
        "apiVersion": "restlake.io/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": name},
        "spec": spec,
    }


def demo_source(name: str, base_url: str, **kwargs: Any) -> IngestionSource:
    return parse_source(demo_document(name, base_url, **kwargs), f"bench:{name}")


def write_source(path: Path, document: dict[str, Any]) -> Path:
    # JSON is YAML: `restlake run -f` reads it as it is.
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


@contextlib.contextmanager
def demo_api(args: Sequence[str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The demo API in its own process (own GIL), stopped on exit."""
    proc, base_url = start_demo_api_process(list(args), timeout=120.0)
    try:
        yield proc, base_url
    finally:
        stop_demo_api_process(proc)
