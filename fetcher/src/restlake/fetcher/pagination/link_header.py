"""RFC 8288 ``Link: <…>; rel="next"`` pagination (GitHub, GitLab, many others)."""

from __future__ import annotations

import re
from dataclasses import replace

from yarl import URL

from restlake.fetcher.pagination.base import Page, PageRequest, Paginator

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_REL = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)


def parse_link_header(value: str) -> dict[str, str]:
    """``rel`` → target. A link may carry several space-separated rels (RFC 8288 §3.3)."""
    links: dict[str, str] = {}
    for target, params in _LINK.findall(value):
        rel = _REL.search(params)
        if not rel:
            continue
        for name in (rel.group(1) or rel.group(2)).split():
            links.setdefault(name.lower(), target)
    return links


class LinkHeaderPaginator(Paginator):
    def __init__(self, *, rel: str = "next", max_pages: int | None = None) -> None:
        super().__init__(max_pages)
        self.rel = rel.lower()

    def next(self, page: Page) -> PageRequest | None:
        target = None
        for value in page.headers.getall("Link", []):
            target = parse_link_header(value).get(self.rel) or target
        if not target:
            return None
        # The next link carries its own query (and may point to another path); resolve it against
        # the URL actually requested so relative links work too.
        nxt = page.request.full_url().join(URL(target))
        return replace(page.request, url=nxt.with_query(None), params=dict(nxt.query), cursor=str(nxt))
