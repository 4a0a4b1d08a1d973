"""Query-parameter parsing, opaque cursors, Link headers, and page selection over a Dataset.

Two orders exist: without ``since``, id ascending (a page is an id range, O(page)); with
``since``, (updated_at, id) ascending over the records updated at or after it, answered from the
dataset's tick index. ``until`` (link, pages and offset listings) ends that range before the records
updated at or after it, for clients that read time windows ``[since, until)``.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass

from yarl import URL

from restlake.demoapi.dataset import Dataset, Position
from restlake.demoapi.timestamps import parse_iso


class BadRequest(ValueError):
    """Invalid client input; answered with 400 and the message in a JSON body."""


def parse_int(
    query: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None
) -> int:
    """An integer parameter: above ``maximum`` is clamped (as GitHub does), below ``minimum`` is a 400."""
    raw = query.get(name)
    if raw is None:
        return default
    text = raw.strip()
    if not text.isdigit() and not (text.startswith("-") and text[1:].isdigit()):
        raise BadRequest(f"{name} must be an integer, got {raw!r}")
    if len(text) > 18:
        raise BadRequest(f"{name} is too large")
    value = int(text)
    if value < minimum:
        raise BadRequest(f"{name} must be >= {minimum}, got {value}")
    return value if maximum is None else min(value, maximum)


def parse_since(query: Mapping[str, str], name: str = "since") -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return parse_iso(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an ISO-8601 timestamp, got {raw!r}") from exc


def parse_range(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    """``since`` (inclusive) and ``until`` (exclusive), for time windows; ``until`` alone means since
    the beginning. Both order the listing by (updated_at, id), as ``since`` alone does."""
    since, until = parse_since(query), parse_since(query, "until")
    if until is not None and since is None:
        since = 0
    if since is not None and until is not None and until < since:
        raise BadRequest(
            f"until must not be before since, got since={query.get('since')!r} until={query['until']!r}"
        )
    return since, until


# -- cursors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended. ``since_ms`` None means id order, else since order."""

    since_ms: int | None
    last_id: int = 0
    position: Position = (0, 0)


def encode_cursor(cursor: Cursor) -> str:
    if cursor.since_ms is None:
        text = f"v1:i:{cursor.last_id}"
    else:
        text = f"v1:s:{cursor.since_ms}:{cursor.position[0]}:{cursor.position[1]}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> Cursor:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        parts = text.split(":")
        if parts[:2] == ["v1", "i"] and len(parts) == 3:
            return Cursor(since_ms=None, last_id=_non_negative(parts[2]))
        if parts[:2] == ["v1", "s"] and len(parts) == 5:
            return Cursor(since_ms=int(parts[2]), position=(_non_negative(parts[3]), _non_negative(parts[4])))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadRequest("invalid cursor")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


# -- page selection ------------------------------------------------------------------------------


def count(ds: Dataset, since_ms: int | None, until_ms: int | None = None) -> int:
    if since_ms is None:
        return ds.total
    if until_ms is None:
        return ds.since_count(since_ms)
    # Records updated at or after until are exactly those since_count(until) counts.
    return ds.since_count(since_ms) - ds.since_count(until_ms)


def window(
    ds: Dataset, since_ms: int | None, offset: int, limit: int, until_ms: int | None = None
) -> list[int]:
    """Ids of the records at ``offset`` .. ``offset + limit`` in the order of the query."""
    if since_ms is None:
        return list(range(offset + 1, min(offset + limit, ds.total) + 1))
    start = ds.since_seek(since_ms, offset)
    found = ds.since_scan(start, limit)
    if until_ms is not None:
        end = ds.since_start(until_ms)  # the first position updated at or after until: excluded
        found = [(record_id, position) for record_id, position in found if position < end]
    return [record_id for record_id, _ in found]


def after_cursor(ds: Dataset, cursor: Cursor, limit: int) -> tuple[list[int], Cursor | None]:
    """The page after ``cursor`` and the cursor of the page after it (None at the end)."""
    if cursor.since_ms is None:
        ids = list(range(cursor.last_id + 1, min(cursor.last_id + limit, ds.total) + 1))
        more = bool(ids) and ids[-1] < ds.total
        return ids, Cursor(since_ms=None, last_id=ids[-1]) if more else None
    tick, pos = cursor.position
    found = ds.since_scan((tick, pos + 1), limit + 1)
    page, rest = found[:limit], found[limit:]
    ids = [record_id for record_id, _ in page]
    return ids, Cursor(since_ms=cursor.since_ms, position=page[-1][1]) if rest else None


def start_cursor(ds: Dataset, since_ms: int | None) -> Cursor:
    """A cursor just before the first record of the query's order (a first page has no cursor)."""
    if since_ms is None:
        return Cursor(since_ms=None, last_id=0)
    tick, pos = ds.since_start(since_ms)
    # after_cursor scans from position + 1, so step one back; -1 is only ever used that way.
    return Cursor(since_ms=since_ms, position=(tick, pos - 1))


def last_page(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def link_header(url: URL, page: int, per_page: int, last: int) -> str:
    """GitHub-style Link header with absolute URLs; other query parameters (since, …) are kept."""

    def link(target: int, rel: str) -> str:
        return f'<{url.update_query(page=str(target), per_page=str(per_page))}>; rel="{rel}"'

    parts = []
    if page > 1:
        parts += [link(min(page - 1, last), "prev"), link(1, "first")]
    if page < last:
        parts.append(link(page + 1, "next"))
    parts.append(link(last, "last"))
    return ", ".join(parts)
