"""Fetch state (validators per page URL, continuations, the incremental watermark) kept in Postgres.

Rows of ``raw.fetch_state (source, key, value jsonb)``:

* ``page:<sha256 of the page URL>`` → ``{"url", "etag", "last_modified", "next", "max_cursor"}``:
  the validators of a page as last delivered, the request for the page after it (so a 304 can still
  walk on) and the largest incremental cursor on it (so a 304 still counts towards the watermark);
* ``watermark`` → ``{"value": "<largest cursor delivered by a complete pass>", "boundary": [...]}``:
  ``boundary`` holds digests of the idempotency keys of the records whose cursor *is* the
  watermark. APIs answer ``since=<watermark>`` inclusively, so every pass gets those records again;
  a record whose key is in the boundary was already delivered unchanged and is not published
  twice. Absent (older state, or more than ``MAX_BOUNDARY`` records share the watermark) means no
  skipping, which only costs duplicates the stream drops anyway.
* ``window`` → ``{"start", "next", "done"}``: a windowed first load (``incremental.window``): where
  the next window starts, committed in the same transaction as the watermark of the window that
  ended there, so a crash resumes at the window where it stopped (``restlake.fetcher.windows``).

Nothing is written until Kafka has confirmed every record the written state vouches for; the
poller guarantees that ordering, this module only makes each write atomic.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from pydantic import SecretStr
from yarl import URL

from restlake.errors import TransientError
from restlake.fetcher.pagination.base import PageRequest
from restlake.postgres.errors import translate

log = logging.getLogger(__name__)

PAGE_PREFIX = "page:"
# Records sharing the watermark's cursor value that are remembered; above this, none are (a
# timestamp shared by that many records is a bulk import, re-sent once per pass at worst).
MAX_BOUNDARY = 10_000


def boundary_digest(idempotency_key: str) -> str:
    """64 bits of BLAKE2b: a short, stable stand-in for an idempotency key in the stored boundary."""
    return hashlib.blake2b(idempotency_key.encode("utf-8"), digest_size=8).hexdigest()


WATERMARK_KEY = "watermark"
WINDOW_KEY = "window"


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

    async def ping(self) -> None:  # noqa: B027 - reachable by default; only remote stores override
        """Raise ``TransientError`` when the store cannot be reached."""

    async def close(self) -> None:
        return None


class MemoryStateStore(StateStore):
    """State in this process only: for tests and for runs that must not remember anything."""

    def __init__(self) -> None:
        self.data: dict[str, SourceState] = {}

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

    The connection is opened lazily and re-opened after a failure, so a Postgres restart costs one
    failed commit (the pass is then retried with the old state), never the process.
    """

    def __init__(self, dsn: str | SecretStr, *, connect_timeout: float = 10.0) -> None:
        self._dsn = dsn if isinstance(dsn, SecretStr) else SecretStr(dsn)
        self._connect_timeout = connect_timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return "PostgresStateStore(dsn=SecretStr('**********'))"

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._dsn.get_secret_value(), connect_timeout=int(self._connect_timeout)
            )
        return self._conn

    async def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def load(self, source: str) -> SourceState:
        async with self._lock:
            try:
                conn = await self._connection()
                async with conn.transaction():
                    cur = await conn.execute(
                        "SELECT key, value FROM raw.fetch_state WHERE source = %s", (source,)
                    )
                    rows = await cur.fetchall()
            except psycopg.Error as exc:
                await self._drop()
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
        async with self._lock:
            try:
                conn = await self._connection()
                async with conn.transaction(), conn.cursor() as cur:
                    if rows:
                        await cur.executemany(
                            "INSERT INTO raw.fetch_state (source, key, value) VALUES (%s, %s, %s) "
                            "ON CONFLICT (source, key) DO UPDATE "
                            "SET value = EXCLUDED.value, updated_at = now()",
                            rows,
                        )
                    if keep_only is not None:
                        await cur.execute(
                            "DELETE FROM raw.fetch_state WHERE source = %s AND key LIKE %s "
                            "AND NOT (key = ANY(%s))",
                            (source, PAGE_PREFIX + "%", sorted(keep_only)),
                        )
            except psycopg.Error as exc:
                await self._drop()
                raise translate(exc, f"saving fetch state of {source}") from None

    async def ping(self) -> None:
        async with self._lock:
            try:
                conn = await self._connection()
                await conn.execute("SELECT 1")
                await conn.rollback()
            except psycopg.Error as exc:
                await self._drop()
                raise translate(exc, "checking the fetch state database") from None
            except OSError as exc:
                await self._drop()
                raise TransientError(f"fetch state database unreachable: {type(exc).__name__}") from None

    async def close(self) -> None:
        async with self._lock:
            await self._drop()
