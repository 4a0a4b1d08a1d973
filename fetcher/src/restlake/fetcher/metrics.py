"""Prometheus metrics of the fetcher. Labels are bounded: source names and fixed reason codes, no URLs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Bad-page reasons: the closed set used as the ``reason`` label (and in dead-letter events).
BAD_PAGE_REASONS = (
    "malformed_json",
    "malformed_jsonl",
    "malformed_csv",
    "wrong_content_type",
    "oversized_body",
    "bad_encoding",
    "no_record_list",
    "http_5xx",
    "http_4xx",
    "timeout",
    "connection",
    "circuit_open",
    "rate_limited",
    "unexpected_304",
    "cross_origin_link",
    "bad_pagination",
    "missing_id",
    "other",
)
# The status classes a request ends in; 1xx never ends one (aiohttp handles it).
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "error")
# crashed: the pass raised something unexpected (a bug); error: it stopped on a handled failure.
PASS_OUTCOMES = ("complete", "stopped", "error", "crashed")
# Records the fetcher could not publish as they came: sent to the DLQ instead, by reason.
RECORD_REJECT_REASONS = ("oversized_record", "unserializable_record")
# Why a pass stopped paging before the chain ended.
PAGINATION_STOPS = ("max_pages", "repeated_page")
# What became of a record whose idPath is missing or null (spec.records.onMissingId).
MISSING_ID_ACTIONS = ("hash", "quarantine", "fail")


def status_class(status: int | None) -> str:
    """``2xx`` … ``5xx``, or ``error`` when no response came back."""
    if status is None:
        return "error"
    return f"{status // 100}xx"


class FetcherMetrics:
    """Every metric of the fetcher, in one registry (its own by default, so tests do not collide)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "restlake_fetcher_requests_total",
            "HTTP requests sent, by status class (error: no response).",
            ["source", "status_class"],
            registry=r,
        )
        self.not_modified = Counter(
            "restlake_fetcher_not_modified_total", "304 Not Modified answers.", ["source"], registry=r
        )
        self.rate_limit_wait = Counter(
            "restlake_fetcher_rate_limit_wait_seconds_total",
            "Seconds spent waiting for the client-side or server-advertised budget.",
            ["source"],
            registry=r,
        )
        self.retries = Counter("restlake_fetcher_retries_total", "Requests retried.", ["source"], registry=r)
        self.records_produced = Counter(
            "restlake_fetcher_records_produced_total",
            "Records confirmed by Kafka.",
            ["source"],
            registry=r,
        )
        self.delivery_errors = Counter(
            "restlake_fetcher_delivery_errors_total",
            "Records Kafka did not confirm (the pass did not advance state).",
            ["source"],
            registry=r,
        )
        self.last_success = Gauge(
            "restlake_fetcher_last_success_timestamp_seconds",
            "Unix time the last complete pass finished.",
            ["source"],
            registry=r,
        )
        self.bad_pages = Counter(
            "restlake_fetcher_bad_pages_total",
            "Pages given up on after retries, by reason.",
            ["source", "reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "restlake_fetcher_dead_letters_total", "Dead-letter events published.", ["source"], registry=r
        )
        self.passes = Counter(
            "restlake_fetcher_passes_total", "Fetch passes, by outcome.", ["source", "outcome"], registry=r
        )
        self.pass_seconds = Histogram(
            "restlake_fetcher_pass_duration_seconds",
            "Duration of one fetch pass.",
            ["source"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
            registry=r,
        )
        # Exported so alerts can say "no success for N intervals" per source without knowing specs.
        self.poll_interval = Gauge(
            "restlake_fetcher_poll_interval_seconds",
            "The source's configured poll interval (spec.poll.interval).",
            ["source"],
            registry=r,
        )
        self.circuit_open = Counter(
            "restlake_fetcher_circuit_open_total",
            "Requests refused locally because the endpoint's circuit was open.",
            ["source"],
            registry=r,
        )

        self.rejected_records = Counter(
            "restlake_fetcher_rejected_records_total",
            "Records not published to the topic but dead-lettered, by reason (e.g. over the message limit).",
            ["source", "reason"],
            registry=r,
        )
        self.pagination_stops = Counter(
            "restlake_fetcher_pagination_stops_total",
            "Passes stopped with pages left: maxPages reached, or a page identical to the previous one.",
            ["source", "reason"],
            registry=r,
        )
        self.missing_id = Counter(
            "restlake_fetcher_missing_id_total",
            "Records whose idPath was missing or null, by what was done (spec.records.onMissingId).",
            ["source", "action"],
            registry=r,
        )
        self.future_cursor = Counter(
            "restlake_fetcher_future_cursor_total",
            "Records whose cursor lay beyond now + incremental.maxFutureSkew (not used for the watermark).",
            ["source"],
            registry=r,
        )
        # A timestamp, not an age: an age set once per pass would freeze between passes; dashboards and
        # alerts take ``time() - this``, which is negative for a watermark in the future.
        self.watermark_timestamp = Gauge(
            "restlake_fetcher_watermark_timestamp_seconds",
            "Unix time of the source's timestamp watermark (incremental sources with timestamp cursors).",
            ["source"],
            registry=r,
        )

    def init_source(self, source: str) -> None:
        """Export every counter of ``source`` at 0, each label of the bounded sets included.

        A labelled counter has no series until its first increment, so ``rate()`` of retries or of a
        bad-page reason that never happened is "no data" rather than 0, and an alert on it cannot tell
        a healthy source from one that is not scraped. ``last_success`` is left unset on purpose: its
        absence is what "never succeeded" looks like to RestlakeNoSuccessfulFetch.
        """
        for counter in (
            self.not_modified,
            self.rate_limit_wait,
            self.retries,
            self.records_produced,
            self.delivery_errors,
            self.dead_letters,
            self.circuit_open,
            self.future_cursor,
        ):
            counter.labels(source)
        for reason in RECORD_REJECT_REASONS:
            self.rejected_records.labels(source, reason)
        for reason in PAGINATION_STOPS:
            self.pagination_stops.labels(source, reason)
        for action in MISSING_ID_ACTIONS:
            self.missing_id.labels(source, action)
        for status in STATUS_CLASSES:
            self.requests.labels(source, status)
        for reason in BAD_PAGE_REASONS:
            self.bad_pages.labels(source, reason)
        for outcome in PASS_OUTCOMES:
            self.passes.labels(source, outcome)
        self.pass_seconds.labels(source)
