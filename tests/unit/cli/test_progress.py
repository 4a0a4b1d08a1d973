"""Live progress: drawn in place at a terminal, silent in a pipe, with --json and with --quiet."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import tempfile
import textwrap

from prometheus_client import CollectorRegistry
from rich.console import Console

from restlake.cli import progress
from restlake.cli.progress import Counters, ProgressView, live, since
from restlake.fetcher.metrics import FetcherMetrics

from ...ptyreader import run_on_pty


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Producer:
    def __init__(self) -> None:
        self.sent = {"restlake.orders": 250, "restlake.orders.dlq": 2}

    def sent_to(self, topic: str) -> int:
        return self.sent.get(topic, 0)


def _terminal() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=120, color_system=None), buffer


def test_fetcher_counters_come_from_the_registry_and_the_producer() -> None:
    metrics = FetcherMetrics(CollectorRegistry())
    metrics.requests.labels("orders", "2xx").inc(5)
    metrics.requests.labels("orders", "3xx").inc(2)
    metrics.not_modified.labels("orders").inc(2)
    metrics.records_produced.labels("orders").inc(200)
    counters = progress.fetcher_counters(metrics, _Producer(), "orders", "restlake.orders")
    assert (counters.pages, counters.not_modified, counters.records, counters.produced) == (5, 2, 250, 200)


def test_a_terminal_gets_a_table_with_every_counter_and_the_rate() -> None:
    clock = _Clock()
    view = ProgressView("restlake run orders", clock=clock)
    first = Counters(
        "orders", pages=1, not_modified=0, records=100, produced=0, bronze_rows=0, postgres_rows=0
    )
    view.rate(first)
    clock.now = 2.0
    now = Counters(
        "orders",
        pages=5,
        not_modified=1,
        records=1100,
        produced=1000,
        bronze_rows=900,
        postgres_rows=880,
        quarantined=20,
        lag=100,
    )
    console, buffer = _terminal()
    console.print(view.render([now]))
    lines = [line.rstrip() for line in buffer.getvalue().splitlines() if line.strip()]
    assert lines[0] == "restlake run orders"
    assert lines[1].split() == [
        "SOURCE",
        "PAGES",
        "304",
        "RECORDS",
        "PRODUCED",
        "BRONZE",
        "POSTGRES",
        "QUARANTINED",
        "LAG",
        "RATE",
    ]
    assert lines[2].split() == ["orders", "5", "1", "1,100", "1,000", "900", "880", "20", "100", "500/s"]


def test_the_live_display_redraws_in_place_and_shows_only_this_commands_share() -> None:
    console, buffer = _terminal()
    state = {"records": 40}  # 40 sent before the command began (an earlier run in this process)
    with live(lambda: [Counters("orders", records=state["records"])], "t", console=console) as display:
        assert display is not None
        state["records"] = 140
        display.refresh()
        state["records"] = 240
        display.refresh()
    out = buffer.getvalue()
    assert "\x1b[" in out  # cursor movement: the table is redrawn, not appended
    assert "200" in out  # 240 - 40: the last frame
    assert "240" not in out  # the counters before the command are not its progress


def test_nothing_is_drawn_in_a_pipe_with_json_or_with_quiet(monkeypatch) -> None:
    pipe = io.StringIO()
    with live(lambda: [Counters("orders", records=1)], "t", console=Console(file=pipe)) as display:
        assert display is None
    console, buffer = _terminal()
    with live(lambda: [Counters("orders")], "t", as_json=True, console=console) as display:
        assert display is None
    monkeypatch.setattr(progress.MODE, "quiet", True)
    with live(lambda: [Counters("orders")], "t", console=console) as display:
        assert display is None
    assert pipe.getvalue() == "" and buffer.getvalue() == ""


def test_log_lines_go_above_the_display_and_handlers_get_their_stream_back(monkeypatch) -> None:
    console, buffer = _terminal()

    class _TtyStream(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = _TtyStream()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    with live(lambda: [Counters("orders")], "t", console=console):
        logging.getLogger("restlake.test").warning("broker slow")
    assert "broker slow" in buffer.getvalue() and stream.getvalue() == ""
    assert handler.stream is stream


def test_since_subtracts_the_baseline_but_keeps_the_lag_level() -> None:
    now = Counters("s", records=10, bronze_rows=5, lag=7)
    assert since(now, Counters("s", records=4, bronze_rows=None, lag=3)) == Counters(
        "s", records=6, bronze_rows=5, lag=7
    )


def _pty_run(code: str, timeout: float = 30.0) -> bytes:
    """Run ``code`` with stdout on a pseudo-terminal; everything it wrote there."""
    with tempfile.TemporaryFile() as err:
        returncode, out = run_on_pty(
            [sys.executable, "-c", code], env={**os.environ, "COLUMNS": "120"}, stderr=err, timeout=timeout
        )
        err.seek(0)
        assert returncode == 0, err.read().decode(errors="replace")
    return out


_CHILD = textwrap.dedent(
    """
    import time
    from restlake.cli.progress import Counters, live
    n = {"v": 0}
    with live(lambda: [Counters("orders", records=n["v"])], "restlake run orders"):
        for i in range(1, 4):
            n["v"] = i * 1000
            time.sleep(0.4)
    print("summary: done")
    """
)


def test_on_a_pseudo_terminal_the_counts_update_in_place_and_the_summary_follows() -> None:
    out = _pty_run(_CHILD).decode()
    assert "restlake run orders" in out and "RECORDS" in out
    assert "3,000" in out  # the last state was drawn
    assert "\x1b[" in out  # redrawn in place (cursor movement), not one line per refresh
    assert out.rstrip().endswith("summary: done")


def test_in_a_pipe_the_same_program_prints_only_its_summary() -> None:
    result = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True)
    assert result.stdout == "summary: done\n"


def test_the_frame_left_on_screen_shows_the_rate_over_the_whole_command() -> None:
    clock = _Clock()
    view = ProgressView("t", clock=clock)
    for t, records in ((0.0, 0), (10.0, 1000), (20.0, 2000), (40.0, 2000)):  # idle at the end
        clock.now = t
        windowed = view.rate(Counters("s", records=records))
    assert windowed == 0.0
    view.final = True
    clock.now = 40.0
    assert view.rate(Counters("s", records=2000)) == 50.0
