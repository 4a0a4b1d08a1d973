"""A response body read under the fetcher's limits: a size cap, the content type its format allows,
the declared charset, and parsed as ``records.format`` says (one JSON document, JSON Lines or CSV).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from restlake.fetcher.page_errors import BadPageError
from restlake.fetcher.records import LineFormatError, parse_lines

# Bodies above this are refused: a runaway endpoint must not take the fetcher's memory with it.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024

# Content types a line format may arrive with; servers label JSON Lines and CSV inconsistently.
_LINE_TYPES = {
    "jsonl": ("json", "ndjson", "jsonl", "text/plain", "octet-stream"),
    "csv": ("csv", "text/plain", "octet-stream"),
}


async def read_body(resp: aiohttp.ClientResponse, max_bytes: int, fmt: str = "json") -> tuple[Any, int]:
    """The body parsed per ``records.format``: one JSON document, or the records of a jsonl/csv body."""
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        raise BadPageError(
            f"body of {declared} bytes exceeds the {max_bytes}-byte cap",
            reason="oversized_body",
            status=resp.status,
        )
    raw = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        raw += chunk
        if len(raw) > max_bytes:
            raise BadPageError(
                f"body exceeds the {max_bytes}-byte cap",
                reason="oversized_body",
                status=resp.status,
                raw=bytes(raw),
            )
    ctype = resp.headers.get("Content-Type", "")
    accepted = _LINE_TYPES.get(fmt, ("json",))
    if raw and not any(kind in ctype.lower() for kind in accepted) and (fmt == "json" or ctype):
        raise BadPageError(
            f"expected a {fmt} content type ({', '.join(accepted)}), got {ctype or 'none'!r}",
            reason="wrong_content_type",
            status=resp.status,
            raw=bytes(raw),
        )
    if not raw:
        return None, 0

    def unusable(message: str, reason: str) -> BadPageError:
        return BadPageError(message, reason=reason, status=resp.status, raw=bytes(raw))

    try:
        text = raw.decode(resp.charset or "utf-8")
    except (UnicodeDecodeError, LookupError) as exc:
        raise unusable(f"body is not valid {resp.charset or 'utf-8'} text: {exc}", "bad_encoding") from exc
    if fmt != "json":
        try:
            return parse_lines(text, fmt), len(raw)
        except LineFormatError as exc:
            raise unusable(f"malformed {fmt} body at {exc}", f"malformed_{fmt}") from exc
    try:
        return json.loads(text), len(raw)
    except json.JSONDecodeError as exc:
        raise unusable(f"malformed JSON at byte {exc.pos}: {exc.msg}", "malformed_json") from exc
    except RecursionError as exc:
        raise unusable("JSON nested deeper than the parser allows", "malformed_json") from exc
    except ValueError as exc:  # Python's int-string limit: a number of thousands of digits
        raise unusable(f"JSON holds a value Python refuses to parse: {exc}", "malformed_json") from exc
