"""Prometheus metrics of a bronze checkpoint run, for a batch job: written to a file and pushed.

A run ends before any scrape could see it, so the metrics live in a registry of their own, are
written in the text format next to the results and, when ``RESTLAKE_QUALITY_PUSHGATEWAY_URL`` is
set, pushed to a Pushgateway with the grouping key ``source`` (a push replaces the source's group,
so a run's values never mix with the previous run's). Labels are the source and an outcome only:
expectation names and kwargs come from users and would make series unbounded.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile
from prometheus_client.exposition import basic_auth_handler, default_handler

from restlake.quality.settings import QualitySettings

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)


def run_registry(
    source: str,
    *,
    success: bool,
    passed: int,
    failed: int,
    rows: int,
    unexpected: int,
    finished_at: float,
    duration_s: float,
) -> CollectorRegistry:
    """A registry holding one run's values; ``success`` is False for a run that failed or errored."""
    registry = CollectorRegistry()
    expectations = Gauge(
        "restlake_quality_expectations",
        "Expectations of the last bronze checkpoint run, by result (passed, failed).",
        ["source", "result"],
        registry=registry,
    )
    expectations.labels(source, "passed").set(passed)
    expectations.labels(source, "failed").set(failed)
    per_source = (
        ("restlake_quality_rows_validated", "Bronze rows the last checkpoint run validated.", rows),
        (
            "restlake_quality_unexpected_values",
            "Unexpected values the last checkpoint run found, summed over its expectations.",
            unexpected,
        ),
        (
            "restlake_quality_last_run_success",
            "1 when every expectation of the last checkpoint run passed, else 0.",
            1 if success else 0,
        ),
        (
            "restlake_quality_last_run_timestamp_seconds",
            "Unix time the last checkpoint run finished.",
            finished_at,
        ),
        ("restlake_quality_last_run_duration_seconds", "Wall time of the last checkpoint run.", duration_s),
    )
    for name, documentation, value in per_source:
        Gauge(name, documentation, ["source"], registry=registry).labels(source).set(value)
    return registry


def _gateway_for_log(url: str) -> str:
    # Only scheme, host and port: user info or a query string may carry credentials.
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def publish(registry: CollectorRegistry, source: str, path: Path, settings: QualitySettings) -> bool | None:
    """Write the text file; push when a Pushgateway is set. None: no push asked; False: push failed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    if not settings.pushgateway_url:
        return None
    username = settings.pushgateway_username
    password = settings.pushgateway_password

    def handler(url: str, method: str, timeout: float | None, headers: Any, data: bytes) -> Any:
        if username is not None and password is not None:
            return basic_auth_handler(
                url, method, timeout, headers, data, username, password.get_secret_value()
            )
        return default_handler(url, method, timeout, headers, data)

    try:
        push_to_gateway(
            settings.pushgateway_url,
            job=settings.pushgateway_job,
            registry=registry,
            grouping_key={"source": source},
            timeout=settings.pushgateway_timeout,
            handler=handler,
        )
    except OSError as exc:
        # The verdict is in the results and the exit code; a Pushgateway outage must not change it.
        log.warning(
            "quality metrics not pushed source=%s gateway=%s error=%s",
            source,
            _gateway_for_log(settings.pushgateway_url),
            type(exc).__name__,
        )
        return False
    log.info(
        "quality metrics pushed source=%s gateway=%s", source, _gateway_for_log(settings.pushgateway_url)
    )
    return True
