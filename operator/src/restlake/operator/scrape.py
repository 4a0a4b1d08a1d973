"""Figures for the status from Prometheus /metrics: events produced and last fetch from the fetcher,
Kafka lag from the stream job's driver."""

from __future__ import annotations

import datetime as dt
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

# Names exported by restlake.fetcher.metrics and, for the lag, by restlake.jobs.spark.metrics (one
# series per topic partition, summed here). A test checks both modules still export them.
RECORDS_PRODUCED = "restlake_fetcher_records_produced"
LAST_SUCCESS = "restlake_fetcher_last_success_timestamp_seconds"
CONSUMER_LAG = "restlake_stream_kafka_lag_records"


@dataclass(frozen=True)
class Figures:
    """What the metrics said; None where a metric was absent."""

    events_produced: int | None = None
    last_fetch_time: str | None = None
    consumer_lag: int | None = None

    def merged(self, other: Figures) -> Figures:
        """These figures, with what ``other`` measured where these have none."""
        return Figures(
            events_produced=self.events_produced
            if self.events_produced is not None
            else other.events_produced,
            last_fetch_time=self.last_fetch_time or other.last_fetch_time,
            consumer_lag=self.consumer_lag if self.consumer_lag is not None else other.consumer_lag,
        )

    def status(self) -> dict[str, int | str]:
        """The status fields to patch: only those that were measured, so absence keeps the old value."""
        out: dict[str, int | str] = {}
        if self.events_produced is not None:
            out["eventsProduced"] = self.events_produced
        if self.last_fetch_time is not None:
            out["lastFetchTime"] = self.last_fetch_time
        if self.consumer_lag is not None:
            out["consumerLag"] = self.consumer_lag
        return out


def parse(text: str, source: str) -> Figures:
    """Sum the source's samples (a counter may be split by label); ignore other sources' series."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("source", source) != source:
                continue
            if sample.name in (RECORDS_PRODUCED, RECORDS_PRODUCED + "_total", CONSUMER_LAG):
                key = CONSUMER_LAG if sample.name == CONSUMER_LAG else RECORDS_PRODUCED
                totals[key] = totals.get(key, 0.0) + sample.value
            elif sample.name == LAST_SUCCESS:
                totals[LAST_SUCCESS] = max(totals.get(LAST_SUCCESS, 0.0), sample.value)
    last = totals.get(LAST_SUCCESS)
    return Figures(
        events_produced=int(totals[RECORDS_PRODUCED]) if RECORDS_PRODUCED in totals else None,
        last_fetch_time=(
            dt.datetime.fromtimestamp(last, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if last else None
        ),
        consumer_lag=max(0, int(totals[CONSUMER_LAG])) if CONSUMER_LAG in totals else None,
    )


def scrape(url: str, source: str, *, timeout: float) -> Figures:
    """GET ``url`` and parse it; an unreachable pod (scaled to zero, starting) yields no figures."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.debug("metrics unavailable source=%s url=%s error=%s", source, url, exc)
        return Figures()
    return parse(text, source)
