"""`restlake demo`: the bundled demo API → Kafka → Spark → bronze + Postgres, with the counts checked."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from yarl import URL

from restlake.contracts.envelope import content_hash
from restlake.contracts.spec import IngestionSource, load_source
from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.handle import DemoApiHandle, running_demo_api
from restlake.runtime.local import LocalRunner, RunSummary, resolve_endpoints
from restlake.runtime.status import shown_path
from restlake.settings import StackSettings
from restlake.stack.jars import spark_jars

if TYPE_CHECKING:
    from restlake.jobs.spark.settings import SparkSettings

DEFAULT_DEMO_SOURCE = Path("examples/demo-link.yaml")


def retarget(source: IngestionSource, base_url: str) -> IngestionSource:
    """The same source with its request URL moved to ``base_url`` (scheme, host and port)."""
    # Spliced as text: a child source's URL template ({owner}, {repo}) must keep its braces, which
    # a URL object would percent-encode.
    url = source.spec.request.url
    parts = urlsplit(url)
    path_onwards = url[len(f"{parts.scheme}://{parts.netloc}") :]
    new = str(URL(base_url).origin()) + path_onwards
    request = source.spec.request.model_copy(update={"url": new})
    spec = source.spec.model_copy(update={"request": request})
    return source.model_copy(update={"spec": spec})


def expected_versions(api: DemoApiHandle, ticks: list[int]) -> tuple[int, int]:
    """(distinct ids at the last tick, distinct record versions seen over ``ticks``) per the dataset."""
    versions: set[tuple[int, str]] = set()
    ids = 0
    for tick in ticks:
        records = list(api.dataset(tick).snapshot())
        ids = len(records)
        versions.update((r["id"], content_hash(r)) for r in records)
    return ids, len(versions)


def run_demo(
    echo: Callable[[str], Any] = print,
    *,
    source_file: Path = DEFAULT_DEMO_SOURCE,
    initial_records: int = 2_000,
    growth_per_tick: int = 150,
    update_fraction: float = 0.05,
    watch: Callable[[LocalRunner, str], AbstractContextManager[Any]] | None = None,
    spark_settings: SparkSettings | None = None,
) -> bool:
    """Three rounds: initial load, a re-run over unchanged data, a run after the API changed.

    Returns True when Postgres and bronze hold exactly what the API served.
    """
    started = time.monotonic()
    echo("restlake demo: starting the local stack (Kafka KRaft, PostgreSQL, Spark local mode) ...")
    endpoints = resolve_endpoints()
    lake = shown_path(endpoints.lake_root) if "://" not in endpoints.lake_root else endpoints.lake_root
    echo(f"  kafka {endpoints.kafka_bootstrap} · postgres on loopback · lake {lake}")
    config = DemoApiConfig(
        dataset=DatasetConfig(
            seed=42,
            initial_records=initial_records,
            growth_per_tick=growth_per_tick,
            update_fraction=update_fraction,
        )
    )
    ok = True
    with running_demo_api(config) as api:
        source = retarget(load_source(source_file), api.base_url)
        echo(
            f"  demo API at {api.base_url} serving {api.state()['total_records']} records; "
            f"source {source.name!r}"
        )
        runner = LocalRunner(
            source, endpoints, jars=spark_jars(StackSettings().state_dir), spark_settings=spark_settings
        )
        try:
            ticks = [api.state()["tick"]]
            rounds: list[tuple[str, RunSummary]] = []

            def round_(title: str) -> None:
                # `watch` draws live progress at a terminal (the CLI's); the library stays display-free.
                with watch(runner, title) if watch is not None else nullcontext():
                    rounds.append((title, runner.run_until_caught_up()))

            round_("initial load")
            round_("re-run, API unchanged")
            api.tick(1)
            ticks.append(api.state()["tick"])
            round_("after the API changed (new + updated records)")
        finally:
            runner.close()
        want_rows, want_versions = expected_versions(api, ticks)
    for title, summary in rounds:
        s = summary.as_dict()
        echo(
            f"- {title}: {s['requests']} requests ({s['not_modified']} answered 304 Not Modified), "
            f"fetched {s['records_fetched']} records → "
            f"bronze {s['bronze_rows']} rows, postgres {s['postgres_rows']} rows, "
            f"quarantined {s['quarantined']} ({s['seconds']:.1f}s)"
        )
    last = rounds[-1][1]
    checks = [
        ("postgres rows == distinct records the API serves", last.postgres_rows, want_rows),
        ("bronze rows == distinct record versions served", last.bronze_rows, want_versions),
        ("quarantined == 0", last.quarantined, 0),
        ("re-run over unchanged data added nothing", rounds[1][1].bronze_rows, rounds[0][1].bronze_rows),
    ]
    for label, got, want in checks:
        mark = "ok  " if got == want else "FAIL"
        ok &= got == want
        echo(f"  [{mark}] {label}: {got} (expected {want})")
    echo(f"restlake demo {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s")
    echo('  the stack keeps running: eval "$(.venv/bin/restlake stack env)"; make stack-down stops it')
    echo(f"  where the source stands: .venv/bin/restlake status {source.name}")
    return ok
