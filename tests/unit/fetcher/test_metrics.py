"""A source's counters exist at 0 from the moment its fetcher is created, every bounded label included."""

from __future__ import annotations

from prometheus_client import generate_latest

from restlake.contracts.spec import IngestionSource, parse_source
from restlake.fetcher.metrics import (
    BAD_PAGE_REASONS,
    MISSING_ID_ACTIONS,
    PAGINATION_STOPS,
    PASS_OUTCOMES,
    RECORD_REJECT_REASONS,
    STATUS_CLASSES,
    FetcherMetrics,
)
from restlake.fetcher.poller import SourceFetcher


def _source(name: str) -> IngestionSource:
    document = {
        "apiVersion": "restlake.io/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": name},
        "spec": {"request": {"url": "https://api.example.test/items"}},
    }
    return parse_source(document, "test")


def test_a_fresh_source_exports_every_counter_at_zero() -> None:
    metrics = FetcherMetrics()
    # No producer: creating the fetcher is what starts the source, before it sends anything.
    SourceFetcher(_source("orders"), None, "restlake.orders", metrics=metrics)  # type: ignore[arg-type]
    value = metrics.registry.get_sample_value
    for name in (
        "restlake_fetcher_retries_total",
        "restlake_fetcher_dead_letters_total",
        "restlake_fetcher_circuit_open_total",
        "restlake_fetcher_rate_limit_wait_seconds_total",
        "restlake_fetcher_not_modified_total",
        "restlake_fetcher_records_produced_total",
        "restlake_fetcher_delivery_errors_total",
        "restlake_fetcher_future_cursor_total",
        "restlake_fetcher_pass_duration_seconds_count",
    ):
        assert value(name, {"source": "orders"}) == 0.0, name
    for reason in BAD_PAGE_REASONS:
        assert value("restlake_fetcher_bad_pages_total", {"source": "orders", "reason": reason}) == 0.0
    for status in STATUS_CLASSES:
        assert value("restlake_fetcher_requests_total", {"source": "orders", "status_class": status}) == 0.0
    for outcome in PASS_OUTCOMES:
        assert value("restlake_fetcher_passes_total", {"source": "orders", "outcome": outcome}) == 0.0
    for reason in RECORD_REJECT_REASONS:
        assert value("restlake_fetcher_rejected_records_total", {"source": "orders", "reason": reason}) == 0.0
    for reason in PAGINATION_STOPS:
        assert value("restlake_fetcher_pagination_stops_total", {"source": "orders", "reason": reason}) == 0.0
    for action in MISSING_ID_ACTIONS:
        assert value("restlake_fetcher_missing_id_total", {"source": "orders", "action": action}) == 0.0
    # Absent until a pass succeeds: RestlakeNoSuccessfulFetch reads the absence as "never".
    assert value("restlake_fetcher_last_success_timestamp_seconds", {"source": "orders"}) is None
    # Bounded: the label sets above, 8 single counters and the histogram's count; the watermark gauge
    # only once there is a timestamp watermark.
    exported = generate_latest(metrics.registry).decode()
    names = [line.split("{")[0] for line in exported.splitlines() if line.startswith("restlake_")]
    counted = [n for n in names if not n.endswith(("_bucket", "_sum", "_created"))]
    labelled = (
        BAD_PAGE_REASONS,
        STATUS_CLASSES,
        PASS_OUTCOMES,
        RECORD_REJECT_REASONS,
        PAGINATION_STOPS,
        MISSING_ID_ACTIONS,
    )
    assert len(counted) == sum(len(labels) for labels in labelled) + 8 + 1
