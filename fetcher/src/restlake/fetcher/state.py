"""Fetch state (validators per page URL, continuations, the incremental watermark) kept in Postgres.

Rows of ``raw.fetch_state (source, key, value jsonb)``:

* ``page:<sha256 of the page URL>`` → ``{"url", "etag", "last_modified", "next", "max_cursor"}``:
  the validators of a page as last delivered, the request for the page after it (so a 304 can still
  walk on) and the largest incremental cursor on it (so a 304 still counts towards the watermark);
* ``parent:<digest of a parent key>`` → ``{"key", "hash", "fetched_at"}`` (child sources only,
  ``spec.parent``): the content hash of the parent record its children were last fetched for. The
  child URL's own pages and watermark live under the scope ``<child identity>#<digest>``
  (``fanout.state_scope``), in rows of the same shape as a source's;
* ``watermark`` → ``{"value": "<largest cursor delivered by a complete pass>", "boundary": [...]}``:
  ``boundary`` holds digests of the idempotency keys of the records whose cursor *is* the
  watermark. APIs answer ``since=<watermark>`` inclusively, so every pass gets those records again;
  a record whose key is in the boundary was already delivered unchanged and is not published
  twice. Absent (older state, or more than ``MAX_BOUNDARY`` records share the watermark) means no
  skipping, which only costs duplicates the stream drops anyway;
* ``window`` → ``{"start", "next", "done"}``: a windowed first load (``incremental.window``): where
  the next window starts, committed in the same transaction as the watermark of the window that
  ended there, so a crash resumes at the window where it stopped (``restlake.fetcher.windows``);
* ``pass:last`` and ``pass:complete`` → ``PassSummary``: what the last pass (and the last complete
  one) did and when, for ``restlake status``. Written after the pass, never read by the fetcher.

Nothing is written until Kafka has confirmed every record the written state vouches for; the
poller guarantees that ordering, this module only makes each write atomic.
"""

from __future__ import annotations

import abc
import hashlib
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from pydantic import SecretStr
from yarl import URL

from restlake.errors import TransientError
from restlake.fetcher.pagination.base import PageRequest
from restlake.postgres.errors import translate
from restlake.postgres.lazy_connection import LazyConnection
from restlake.redaction import redact

log = logging.getLogger(__name__)

PAGE_PREFIX = "page:"
PARENT_PREFIX = "parent:"
# Records sharing the watermark's cursor value that are remembered; above this, none are (a
# timestamp shared by that many records is a bulk import, re-sent once per pass at worst).
MAX_BOUNDARY = 10_000


def boundary_digest(idempotency_key: str) -> str:
    """64 bits of BLAKE2b: a short, stable stand-in for an idempotency key in the stored boundary."""
    return hashlib.blake2b(idempotency_key.encode("utf-8"), digest_size=8).hexdigest()


WATERMARK_KEY = "watermark"
# Every row of raw.fetch_state is written this way: the newest value wins, with its time.
_UPSERT = (
    "INSERT INTO raw.fetch_state (source, key, value) VALUES (%s, %s, %s) "
    "ON CONFLICT (source, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
)
WINDOW_KEY = "window"
LAST_PASS_KEY = "pass:last"
LAST_COMPLETE_PASS_KEY = "pass:complete"
# The PassStats fields a pass summary keeps: enough for a status line, small enough for every pass.
PASS_SUMMARY_FIELDS = (
    "requests",
    "not_modified",
    "pages",
    "records",
    "produced",
    "bad_pages",
    "dead_letters",
    "watermark",
    "error",
)


def pass_summary(stats: Any, outcome: str, finished_at: datetime) -> dict[str, Any]:
    """The stored form of one pass: ``outcome`` (complete, stopped, error), its end and its counts."""
    summary: dict[str, Any] = {"outcome": outcome, "finished_at": finished_at.isoformat()}
    summary.update({name: getattr(stats, name, None) for name in PASS_SUMMARY_FIELDS})
    if summary["error"]:
        summary["error"] = redact(str(summary["error"]))
    return summary


def parent_key(key: str) -> str:
    """Row key of a parent mark: a digest of the parent record's external id."""
    return PARENT_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def page_key(url: str) -> str:
    """Row key of a page: a digest, so a long URL cannot exceed an index entry."""
    return PAGE_PREFIX + hashlib.sha256(url.encode("utf-8")).hexdigest()[:40]


def request_to_json(request: PageRequest | None) -> dict[str, Any] | None:
    if request is None:
        return None
    # Pairs, not an object: jsonb reorders object keys, and the query order is part of the page URL.
    value: dict[str, Any] = {
        "url": str(request.url),
        "params": list(request.params.items()),
        "cursor": request.cursor,
    }
    if request.method != "GET":
        value.update(method=request.method, body=request.body)
    return value


def request_from_json(value: dict[str, Any] | None) -> PageRequest | None:
    if not value:
        return None
    raw = value.get("params") or []
    params = {str(k): str(v) for k, v in (raw.items() if isinstance(raw, dict) else raw)}
    return PageRequest(
        url=URL(value["url"]),
        params=params,
        cursor=value.get("cursor"),
        method=str(value.get("method") or "GET"),
        body=value.get("body"),
    )


@dataclass
class PageState:
    """What the fetcher knows about one page URL after delivering it."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    next: dict[str, Any] | None = None
    max_cursor: str | None = None

    @property
    def key(self) -> str:
        return page_key(self.url)

    @property
    def has_validators(self) -> bool:
        return bool(self.etag or self.last_modified)

    def conditional_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> PageState:
        return cls(
            url=str(value["url"]),
            etag=value.get("etag"),
            last_modified=value.get("last_modified"),
            next=value.get("next"),
            max_cursor=value.get("max_cursor"),
        )


@dataclass
class SourceState:
    """One source's state as loaded at the start of a pass."""

    pages: dict[str, PageState] = field(default_factory=dict)
    watermark: str | None = None
    boundary: frozenset[str] = frozenset()  # digests of the records whose cursor is the watermark
    window: dict[str, Any] | None = None  # a windowed first load's progress (WindowProgress.as_json)

    def page(self, url: str) -> PageState | None:
        return self.pages.get(page_key(url))


def _pass_keys(summary: dict[str, Any]) -> list[str]:
    complete = summary.get("outcome") == "complete"
    return [LAST_PASS_KEY, LAST_COMPLETE_PASS_KEY] if complete else [LAST_PASS_KEY]


def _capped(boundary: frozenset[str] | None) -> frozenset[str]:
    return boundary if boundary is not None and len(boundary) <= MAX_BOUNDARY else frozenset()


class StateStore(abc.ABC):
    """Where fetch state lives. Implementations make each ``commit`` atomic."""

    @abc.abstractmethod
    async def load(self, source: str) -> SourceState: ...

    @abc.abstractmethod
    async def commit(
        self,
        source: str,
        pages: list[PageState],
        *,
        watermark: str | None = None,
        boundary: frozenset[str] | None = None,
        keep_only: set[str] | None = None,
        window: dict[str, Any] | None = None,
    ) -> None:
        """Upsert ``pages`` (and the watermark with its boundary, and the window progress, if given);
        with ``keep_only``, drop other page rows."""

    async def record_pass(self, source: str, summary: dict[str, Any]) -> None:  # noqa: B027
        """Keep ``summary`` (``pass_summary``) as the last pass, and as the last complete one if it was.

        Best effort: the pass is over and its state committed, so a failure here is logged, not raised.
        """

    async def load_parent_marks(self, source: str) -> dict[str, dict[str, Any]]:
        """A child source's parent marks (``parent:`` rows) as ``{parent key: value}``."""
        raise NotImplementedError(f"{type(self).__name__} keeps no parent marks")

    async def commit_parent_marks(self, source: str, marks: list[dict[str, Any]]) -> None:
        """Upsert parent marks (each a ``{"key", ...}`` value); the caller has confirmed delivery."""
        raise NotImplementedError(f"{type(self).__name__} keeps no parent marks")

    async def ping(self) -> None:  # noqa: B027 - reachable by default; only remote stores override
        """Raise ``TransientError`` when the store cannot be reached."""

    async def close(self) -> None:
        return None


class MemoryStateStore(StateStore):
    """State in this process only: for tests and for runs that must not remember anything."""

    def __init__(self) -> None:
        self.data: dict[str, SourceState] = {}
        self.passes: dict[tuple[str, str], dict[str, Any]] = {}
        self.parent_marks: dict[str, dict[str, dict[str, Any]]] = {}

    async def record_pass(self, source: str, summary: dict[str, Any]) -> None:
        for key in _pass_keys(summary):
            self.passes[(source, key)] = dict(summary)

    async def load_parent_marks(self, source: str) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.parent_marks.get(source, {}).items()}

    async def commit_parent_marks(self, source: str, marks: list[dict[str, Any]]) -> None:
        stored = self.parent_marks.setdefault(source, {})
        for mark in marks:
            stored[str(mark["key"])] = dict(mark)

    async def load(self, source: str) -> SourceState:
        state = self.data.get(source, SourceState())
        return SourceState(
            pages={k: PageState.from_json(v.as_json()) for k, v in state.pages.items()},
            watermark=state.watermark,
            boundary=state.boundary,
            window=dict(state.window) if state.window is not None else None,
        )

    async def commit(
        self,
        source: str,
        pages: list[PageState],
        *,
        watermark: str | None = None,
        boundary: frozenset[str] | None = None,
        keep_only: set[str] | None = None,
        window: dict[str, Any] | None = None,
    ) -> None:
        state = self.data.setdefault(source, SourceState())
        if window is not None:
            state.window = dict(window)
        for page in pages:
            state.pages[page.key] = PageState.from_json(page.as_json())
        if watermark is not None:
            state.watermark = watermark
            state.boundary = _capped(boundary)
        if keep_only is not None:
            state.pages = {k: v for k, v in state.pages.items() if k in keep_only}


class PostgresStateStore(StateStore):
    """State in ``raw.fetch_state``, through one connection shared by every source of the process.

    The connection is opened lazily and re-opened after a failure (``LazyConnection``), so a
    Postgres restart costs one failed commit (the pass is then retried with the old state), never
    the process.
    """

    def __init__(self, dsn: str | SecretStr, *, connect_timeout: float = 10.0) -> None:
        self._pg = LazyConnection(dsn, connect_timeout=connect_timeout)

    def __repr__(self) -> str:
        return "PostgresStateStore(dsn=SecretStr('**********'))"

    async def load(self, source: str) -> SourceState:
        try:
            async with self._pg.session() as conn, conn.transaction():
                cur = await conn.execute(
                    "SELECT key, value FROM raw.fetch_state WHERE source = %s", (source,)
                )
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise translate(exc, f"loading fetch state of {source}") from None
        state = SourceState()
        for key, value in rows:
            if key == WATERMARK_KEY:
                state.watermark = value.get("value")
                state.boundary = frozenset(value.get("boundary") or ())
            elif key == WINDOW_KEY:
                state.window = value
            elif key.startswith(PAGE_PREFIX):
                state.pages[key] = PageState.from_json(value)
        return state

    async def commit(
        self,
        source: str,
        pages: list[PageState],
        *,
        watermark: str | None = None,
        boundary: frozenset[str] | None = None,
        keep_only: set[str] | None = None,
        window: dict[str, Any] | None = None,
    ) -> None:
        rows = [(source, page.key, Jsonb(page.as_json())) for page in pages]
        if window is not None:
            rows.append((source, WINDOW_KEY, Jsonb(window)))
        if watermark is not None:
            value: dict[str, Any] = {"value": watermark}
            kept = _capped(boundary)
            if kept:
                value["boundary"] = sorted(kept)
            rows.append((source, WATERMARK_KEY, Jsonb(value)))
        try:
            async with self._pg.session() as conn, conn.transaction(), conn.cursor() as cur:
                if rows:
                    await cur.executemany(_UPSERT, rows)
                if keep_only is not None:
                    await cur.execute(
                        "DELETE FROM raw.fetch_state WHERE source = %s AND key LIKE %s "
                        "AND NOT (key = ANY(%s))",
                        (source, PAGE_PREFIX + "%", sorted(keep_only)),
                    )
        except psycopg.Error as exc:
            raise translate(exc, f"saving fetch state of {source}") from None

    async def _upsert(self, rows: list[tuple[str, str, Jsonb]]) -> None:
        """Upsert ``rows`` in one transaction; a failure is raised as psycopg's error."""
        async with self._pg.session() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(_UPSERT, rows)

    async def record_pass(self, source: str, summary: dict[str, Any]) -> None:
        try:
            await self._upsert([(source, key, Jsonb(summary)) for key in _pass_keys(summary)])
        except psycopg.Error as exc:
            log.warning(
                "pass summary not saved (status will show the previous one): %s",
                translate(exc, f"saving the pass summary of {source}"),
                extra={"source": source},
            )

    async def load_parent_marks(self, source: str) -> dict[str, dict[str, Any]]:
        try:
            async with self._pg.session() as conn, conn.transaction():
                cur = await conn.execute(
                    "SELECT value FROM raw.fetch_state WHERE source = %s AND key LIKE %s",
                    (source, PARENT_PREFIX + "%"),
                )
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise translate(exc, f"loading parent marks of {source}") from None
        return {str(value["key"]): value for (value,) in rows}

    async def commit_parent_marks(self, source: str, marks: list[dict[str, Any]]) -> None:
        if not marks:
            return
        rows = [(source, parent_key(str(mark["key"])), Jsonb(mark)) for mark in marks]
        try:
            await self._upsert(rows)
        except psycopg.Error as exc:
            raise translate(exc, f"saving parent marks of {source}") from None

    @property
    def dsn(self) -> SecretStr:
        """The database the state lives in; a child source reads its parent's records there too."""
        return self._pg.dsn

    async def ping(self) -> None:
        try:
            async with self._pg.session() as conn:
                await conn.execute("SELECT 1")
                await conn.rollback()
        except psycopg.Error as exc:
            raise translate(exc, "checking the fetch state database") from None
        except OSError as exc:
            raise TransientError(f"fetch state database unreachable: {type(exc).__name__}") from None

    async def close(self) -> None:
        await self._pg.close()
