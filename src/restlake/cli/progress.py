"""Live progress of `restlake run`, `restlake fetcher run --once` and `restlake backfill`.

The numbers are the counters the components already keep in this process: the fetcher's
Prometheus registry (pages, 304s, records confirmed by Kafka), the producer's per-topic sends,
and the stream job's module-level metrics (rows appended to bronze, merged into Postgres,
quarantined, Kafka lag). Nothing new is plumbed through the pipeline for the display.

It redraws in place on a terminal and is silent otherwise (a pipe, a file, CI), with ``--json``
and with ``--quiet``: stdout then carries exactly what it carried before.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

# Seconds of samples a rate is computed over: long enough to smooth micro-batches, short enough to react.
RATE_WINDOW_S = 10.0
REFRESH_PER_SECOND = 4


@dataclass
class OutputMode:
    """What the global ``--quiet``/``--verbose`` flags asked for."""

    quiet: bool = False
    verbose: bool = False


MODE = OutputMode()


@dataclass
class Counters:
    """One source's numbers at one instant; None where the component is not part of the command."""

    source: str
    pages: int | None = None
    not_modified: int | None = None
    records: int | None = None  # fetched and sent to Kafka
    produced: int | None = None  # confirmed by Kafka
    bronze_rows: int | None = None
    postgres_rows: int | None = None  # inserted or updated by the merge
    quarantined: int | None = None
    lag: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def moved(self) -> int:
        """The counter the rate follows: records sent while fetching, else rows committed."""
        if self.records is not None:
            return self.records
        return (self.bronze_rows or 0) + (self.postgres_rows or 0)


class ProgressView:
    """Turns successive snapshots into a table with a rate per source."""

    _COLUMNS = (
        "source",
        "pages",
        "304",
        "records",
        "produced",
        "bronze",
        "postgres",
        "quarantined",
        "lag",
        "rate",
    )

    def __init__(self, title: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.title = title
        self._clock = clock
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._first: dict[str, tuple[float, int]] = {}
        # Set for the last frame, the one left on screen: the rate over the whole command, not the
        # last seconds (which are often idle while the stream finishes).
        self.final = False

    def rate(self, counters: Counters) -> float | None:
        now = self._clock()
        samples = self._samples.setdefault(counters.source, deque())
        samples.append((now, counters.moved()))
        first = self._first.setdefault(counters.source, samples[0])
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW_S:
            samples.popleft()
        (t0, v0), (t1, v1) = first if self.final else samples[0], samples[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else None

    def render(self, snapshot: list[Counters]) -> Table:
        table = Table(title=self.title, title_justify="left", box=None, pad_edge=False, collapse_padding=True)
        for name in self._COLUMNS:
            table.add_column(name.upper(), justify="left" if name == "source" else "right", no_wrap=True)
        for c in snapshot:
            rate = self.rate(c)
            table.add_row(
                c.source,
                _n(c.pages),
                _n(c.not_modified),
                _n(c.records),
                _n(c.produced),
                _n(c.bronze_rows),
                _n(c.postgres_rows),
                _n(c.quarantined),
                _n(c.lag),
                "-" if rate is None else f"{rate:,.0f}/s",
            )
        return table


_CUMULATIVE = ("pages", "not_modified", "records", "produced", "bronze_rows", "postgres_rows", "quarantined")


def since(now: Counters, start: Counters | None) -> Counters:
    """``now`` minus ``start`` for every counter (lag is a level, kept as it is)."""
    if start is None:
        return now
    out = Counters(source=now.source, lag=now.lag, extra=dict(now.extra))
    for name in _CUMULATIVE:
        value, base = getattr(now, name), getattr(start, name)
        setattr(out, name, None if value is None else value - (base or 0))
    return out


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def wanted(console: Console, *, as_json: bool = False) -> bool:
    """Progress only for a person at a terminal: not for --json, --quiet, pipes or files."""
    return console.is_terminal and not as_json and not MODE.quiet


@contextmanager
def live(
    read: Callable[[], list[Counters]],
    title: str,
    *,
    as_json: bool = False,
    enabled: bool = True,
    console: Console | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Live | None]:
    """Redraw ``read()`` in place while the block runs; a no-op when progress is not wanted.

    Log lines written meanwhile go through the display (above it) instead of tearing it.
    """
    console = console or Console()
    if not enabled or not wanted(console, as_json=as_json):
        yield None
        return
    view = ProgressView(title, clock=clock)
    # Counters live as long as the process (a test session, a notebook): show this command's share.
    baseline = {c.source: c for c in read()}

    def renderable() -> Any:
        try:
            return view.render([since(c, baseline.get(c.source)) for c in read()])
        except Exception as exc:  # a counter read must never take the command down
            return f"{title}: progress unavailable ({type(exc).__name__})"

    display = Live(
        get_renderable=renderable,
        console=console,
        refresh_per_second=REFRESH_PER_SECOND,
        transient=False,
        redirect_stderr=False,
        redirect_stdout=False,
    )
    with display, _logs_through(console):
        try:
            yield display
        finally:
            view.final = True
            display.refresh()


@contextmanager
def rows_bar(title: str, *, console: Console | None = None) -> Iterator[Callable[[int, int], None]]:
    """A rows done/total bar with rate and time left (backfill); a no-op callback when not wanted."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = console or Console()
    if not wanted(console):
        yield lambda done, total: None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        refresh_per_second=REFRESH_PER_SECOND,
    )
    task = bar.add_task(title, total=None, rate="")

    def update(done: int, total: int) -> None:
        speed = bar.tasks[0].speed
        bar.update(task, completed=done, total=max(total, 1), rate=f"{speed:,.0f}/s" if speed else "")

    with bar, _logs_through(console):
        yield update


@contextmanager
def _logs_through(console: Console) -> Iterator[None]:
    """Point the root logger's terminal handlers at the live console for the duration."""
    swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and _is_tty(handler.stream):
            swapped.append((handler, handler.setStream(_ConsoleStream(console))))
    try:
        yield
    finally:
        for handler, stream in swapped:
            handler.setStream(stream)


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _ConsoleStream:
    """A file-like front of a rich Console: text printed above a live display, not through it."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def write(self, text: str) -> int:
        if text.strip():
            self._console.print(text.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        return None


# -- readers of the counters the components keep --------------------------------------------------


def _sample(registry: Any, name: str, labels: dict[str, str]) -> int:
    return int(registry.get_sample_value(name, labels) or 0)


def fetcher_counters(metrics: Any, producer: Any, source: str, topic: str) -> Counters:
    """A source's fetch side: 2xx pages and 304s from the fetcher's registry, records sent to its
    topic from the producer, records confirmed by Kafka from the registry."""
    r = metrics.registry
    return Counters(
        source=source,
        pages=_sample(r, "restlake_fetcher_requests_total", {"source": source, "status_class": "2xx"}),
        not_modified=_sample(r, "restlake_fetcher_not_modified_total", {"source": source}),
        records=producer.sent_to(topic),
        produced=_sample(r, "restlake_fetcher_records_produced_total", {"source": source}),
    )


def add_stream_counters(counters: Counters) -> Counters:
    """The stream job's side, from its module-level metrics (it runs in this process's driver)."""
    from prometheus_client import REGISTRY

    s = counters.source
    counters.bronze_rows = _sample(REGISTRY, "restlake_stream_bronze_rows_written_total", {"source": s})
    counters.postgres_rows = sum(
        _sample(REGISTRY, "restlake_stream_rows_merged_total", {"source": s, "op": op})
        for op in ("inserted", "updated")
    )
    counters.quarantined = _sample(REGISTRY, "restlake_stream_rows_quarantined_total", {"source": s})
    lag = [
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "restlake_stream_kafka_lag_records"
        for sample in metric.samples
        if sample.labels.get("source") == s
    ]
    counters.lag = int(sum(lag)) if lag else None
    return counters
