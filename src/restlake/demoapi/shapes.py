"""Page bodies shaped like well-known APIs (not their data): DRF, HAL, Stripe, Notion, JSON Lines, CSV.

Each builder is pure: from the dataset and the request's parameters to the body, the ids on the
page and extra headers, so the server adds validators, faults and counters in one place.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from restlake.demoapi.dataset import Dataset
from restlake.demoapi.pagination import (
    BadRequest,
    Cursor,
    after_cursor,
    count,
    decode_cursor,
    encode_cursor,
    window,
)

JSONL = "application/x-ndjson"
CSV = "text/csv"
CSV_COLUMNS = ("id", "created_at", "updated_at", "name", "status", "amount", "tags", "owner_login")


@dataclass(frozen=True)
class ShapedPage:
    body: bytes
    ids: list[int]
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def drf_page(ds: Dataset, url: URL, page: int, page_size: int, since_ms: int | None) -> ShapedPage:
    """Django REST framework's page-number pagination: ``count``, absolute ``next``, ``results``."""
    total = count(ds, since_ms)
    ids = window(ds, since_ms, (page - 1) * page_size, page_size)
    nxt = str(url.update_query(page=str(page + 1))) if page * page_size < total else None
    prev = str(url.update_query(page=str(page - 1))) if page > 1 else None
    body = f'{{"count":{total},"next":{json.dumps(nxt)},"previous":{json.dumps(prev)},"results":'
    return ShapedPage(f"{body}{ds.records_json(ids)}}}".encode(), ids)


def hal_page(ds: Dataset, url: URL, page: int, size: int, since_ms: int | None) -> ShapedPage:
    """HAL: records under ``_embedded.items``, links under ``_links`` as paths relative to the host."""
    total = count(ds, since_ms)
    ids = window(ds, since_ms, (page - 1) * size, size)
    relative = URL(url.path_qs)

    def href(target: int) -> str:
        return json.dumps({"href": str(relative.update_query(page=str(target), size=str(size)))})

    links = f'"self":{href(page)}'
    if page * size < total:
        links += f',"next":{href(page + 1)}'
    body = (
        f'{{"_embedded":{{"items":{ds.records_json(ids)}}},"_links":{{{links}}},'
        f'"page":{{"number":{page},"size":{size},"totalElements":{total}}}}}'
    )
    return ShapedPage(body.encode(), ids)


def stripe_page(ds: Dataset, limit: int, starting_after: str | None) -> ShapedPage:
    """Stripe's list: ``data`` in id order, ``has_more``; the next request names the last id seen."""
    last_id = 0
    if starting_after is not None:
        if not starting_after.isdigit():
            raise BadRequest(f"starting_after must be the id of a record, got {starting_after!r}")
        last_id = int(starting_after)
    ids, following = after_cursor(ds, Cursor(since_ms=None, last_id=last_id), limit)
    has_more = json.dumps(following is not None)
    body = f'{{"object":"list","url":"/v1/stripe/items","has_more":{has_more},"data":{ds.records_json(ids)}}}'
    return ShapedPage(body.encode(), ids)


def notion_query(ds: Dataset, query: Mapping[str, Any], max_page_size: int) -> ShapedPage:
    """Notion's database query: ``start_cursor``/``page_size`` in the POST body, ``has_more`` back."""
    size = query.get("page_size", 100)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise BadRequest(f"page_size must be a positive integer, got {size!r}")
    start = query.get("start_cursor")
    if start is not None and not isinstance(start, str):
        raise BadRequest(f"start_cursor must be a string, got {start!r}")
    cursor = decode_cursor(start) if start else Cursor(since_ms=None, last_id=0)
    ids, following = after_cursor(ds, cursor, min(size, max_page_size))
    next_cursor = json.dumps(encode_cursor(following) if following else None)
    has_more = json.dumps(following is not None)
    body = (
        f'{{"object":"list","results":{ds.records_json(ids)},'
        f'"next_cursor":{next_cursor},"has_more":{has_more}}}'
    )
    return ShapedPage(body.encode(), ids)


def jsonl_page(ds: Dataset, page: int, per_page: int, since_ms: int | None) -> ShapedPage:
    """One record per line; a short or empty page is the last one."""
    ids = window(ds, since_ms, (page - 1) * per_page, per_page)
    body = "".join(ds.record_json(i) + "\n" for i in ids)
    return ShapedPage(body.encode(), ids, content_type=JSONL)


def csv_page(ds: Dataset, page: int, per_page: int, since_ms: int | None) -> ShapedPage:
    """A header row, then one row per record (tags joined by ``;``, the owner flattened)."""
    ids = window(ds, since_ms, (page - 1) * per_page, per_page)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for record in ds.records(ids):
        writer.writerow(
            [
                record["id"],
                record["created_at"],
                record["updated_at"],
                record["name"],
                record["status"],
                record["amount"],
                ";".join(record["tags"]),
                record["owner"]["login"],
            ]
        )
    return ShapedPage(out.getvalue().encode(), ids, content_type=CSV)
