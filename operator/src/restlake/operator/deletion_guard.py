"""Keep a source's topics from being created again after its deletion released them.

Without a finalizer (see handlers.source_gone), the DELETED watch event and a status-timer tick or
an update handler already under way for the same source run side by side: the tick read the source
while it still existed, the deletion handler then deleted its topics, and the tick's reconcile
created them again a second later, orphaned (seen on kind). Kubernetes garbage-collects the
children such a late reconcile re-applies, through their owner reference to the deleted object;
nothing collects a topic made through the Kafka admin API.

So within the operator process, the handlers that may create topics and the one that deletes them
take the source's lock (by UID: a source deleted and created again under its name is another
object), and once its deletion has been handled the others find it gone and do nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

# UIDs of handled deletions remembered: a tick can only be late by one reconcile, so a bounded
# memory of the most recent deletions is enough.
_REMEMBERED = 4096


class DeletionGuard:
    def __init__(self, remembered: int = _REMEMBERED) -> None:
        self._mutex = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._held: dict[str, int] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._remembered = remembered

    @contextmanager
    def live(self, uid: str) -> Iterator[bool]:
        """Hold the source's lock; yields False when its deletion has been handled already."""
        with self._hold(uid) as lock, lock:
            with self._mutex:
                alive = uid not in self._gone
            yield alive

    @contextmanager
    def deleting(self, uid: str) -> Iterator[None]:
        """Hold the source's lock, waiting for a reconcile under way, and mark it gone for good."""
        with self._hold(uid) as lock, lock:
            with self._mutex:
                self._gone[uid] = None
                self._gone.move_to_end(uid)
                while len(self._gone) > self._remembered:
                    self._gone.popitem(last=False)
            yield

    def gone(self, uid: str) -> bool:
        with self._mutex:
            return uid in self._gone

    @contextmanager
    def _hold(self, uid: str) -> Iterator[threading.Lock]:
        # One lock per UID while someone holds or waits for it; dropped after, so that the dict
        # does not grow with every source the operator ever saw.
        with self._mutex:
            lock = self._locks.setdefault(uid, threading.Lock())
            self._held[uid] = self._held.get(uid, 0) + 1
        try:
            yield lock
        finally:
            with self._mutex:
                self._held[uid] -= 1
                if not self._held[uid]:
                    del self._held[uid]
                    del self._locks[uid]
