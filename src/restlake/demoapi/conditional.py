"""ETag / Last-Modified validators and the RFC 9110 rules for answering 304."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from restlake.demoapi.timestamps import parse_http_date


def strong_etag(*parts: bytes) -> str:
    """A strong validator: equal parts (i.e. byte-identical representations) give equal tags."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return f'"{digest.hexdigest()}"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison, as If-None-Match requires: ``W/`` prefixes are ignored."""
    candidates = [c.strip() for c in if_none_match.split(",")]
    if "*" in candidates:
        return True
    bare = etag.removeprefix("W/")
    return any(c.removeprefix("W/") == bare for c in candidates)


def is_not_modified(headers: Mapping[str, str], etag: str, last_modified_ms: int) -> bool:
    """True when the client's copy is current. If-None-Match, when present, overrides If-Modified-Since."""
    inm = headers.get("If-None-Match")
    if inm is not None:
        return etag_matches(inm, etag)
    ims = headers.get("If-Modified-Since")
    if ims is None:
        return False
    since = parse_http_date(ims)
    # HTTP-dates have whole seconds; compare at that resolution.
    return since is not None and since >= last_modified_ms // 1000 * 1000
