"""librdkafka's log lines through Python logging, one place for every confluent-kafka client.

Without a ``logger`` in its configuration librdkafka writes ``%3|…|FAIL|…`` lines straight to
file descriptor 2, past every handler, redaction and level: a broker restart fills a terminal
(and test output) with one line per reconnect attempt. ``client_config`` adds a logger that
hands each line to the component's Python logger (``<component>.librdkafka``), turns a refused
or dropped broker connection into a warning (it heals by itself; the client retries), and lets
an identical line through once per ``interval`` with a count of those it held back.

confluent-kafka delivers these lines from ``poll()``/``flush()`` (or the admin client's calls),
on whichever thread calls them, hence the lock.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

# Seconds between two emissions of the same line (facility + text without its timings).
DEFAULT_INTERVAL_S = 10.0
# What librdkafka says while a broker is down or restarting: transient, so a warning, not an error.
_CONNECTIVITY = re.compile(
    r"Connection refused|Connect to .* failed|brokers are down|Disconnected|"
    r"Connection reset|timed out|Broker transport failure|Failed to resolve",
    re.IGNORECASE,
)
_CONNECTIVITY_FACILITIES = frozenset({"FAIL", "ERROR"})
# Warnings librdkafka heals by itself while a broker starts (the idempotent producer asks for its
# producer id again): information, not something to act on; `make demo` showed them on every start.
_SELF_HEALING = {"GETPID": re.compile(r"retrying", re.IGNORECASE)}
# Timings ("after 12ms", "in 3ms") differ between otherwise identical lines.
_NUMBERS = re.compile(r"\d+")


class LibrdkafkaLog:
    """A ``logger`` for confluent-kafka: maps levels, rate-limits repeats, keeps Python's handlers."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        # line key -> (monotonic time of its last emission, lines held back since)
        self._last: dict[str, tuple[float, int]] = {}

    def log(self, level: int, msg: str, *args: object) -> None:
        """Called by confluent-kafka as ``log(level, "%s [%s] %s", facility, client name, text)``."""
        facility = str(args[0]) if args else ""
        text = str(args[-1]) if args else msg
        if facility in _CONNECTIVITY_FACILITIES and level > logging.WARNING and _CONNECTIVITY.search(text):
            level = logging.WARNING
        elif facility in _SELF_HEALING and _SELF_HEALING[facility].search(text):
            level = min(level, logging.INFO)
        if not self.logger.isEnabledFor(level):
            return
        key = f"{facility}|{_NUMBERS.sub('#', text)}"
        now = self._clock()
        with self._lock:
            last, held = self._last.get(key, (None, 0))
            if last is not None and now - last < self.interval:
                self._last[key] = (last, held + 1)
                return
            self._last[key] = (now, 0)
            if len(self._last) > 1024:  # a client that logs many distinct lines must not grow this forever
                self._last = {key: (now, 0)}
        suffix = ""
        if held and last is not None:
            suffix = f" ({held} similar line(s) in the last {now - last:.0f}s not shown)"
        fmt = f"{msg}%s"  # confluent-kafka's own format, plus the held-back count
        self.logger.log(level, fmt, *args, suffix, extra={"librdkafka_facility": facility})


def client_config(conf: Mapping[str, Any], logger: logging.Logger | str) -> dict[str, Any]:
    """``conf`` with librdkafka's lines routed to ``<logger>.librdkafka``.

    A ``logger`` already in ``conf`` (a test's, a caller's) is kept.
    """
    named = logging.getLogger(logger) if isinstance(logger, str) else logger
    out = dict(conf)
    out.setdefault("logger", LibrdkafkaLog(named.getChild("librdkafka")))
    return out
