"""Follow the next page's URL named in the body: DRF's ``next``, HAL's ``_links.next.href``.

The URL is resolved against the URL requested, so a relative link (HAL's usual ``/orders?page=2``)
works. A link to another origin is refused: the request would carry the source's credentials to a
host the spec never named.
"""

from __future__ import annotations

from dataclasses import replace

from yarl import URL

from restlake.errors import PermanentError
from restlake.fetcher.page_errors import PageError
from restlake.fetcher.pagination.base import Page, PageRequest, Paginator
from restlake.fetcher.records import compile_path, is_missing


class CrossOriginLinkError(PermanentError, PageError):
    """A next-page link points at another scheme, host or port than the page it was found on."""

    reason = "cross_origin_link"


def origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme, (url.host or "").lower(), url.port)


class NextUrlPaginator(Paginator):
    def __init__(
        self, *, next_url_path: str, has_more_path: str | None = None, max_pages: int | None = None
    ) -> None:
        super().__init__(max_pages, has_more_path=has_more_path)
        self.next_url_path = next_url_path
        self._path = compile_path(next_url_path)

    def next(self, page: Page) -> PageRequest | None:
        if self.says_no_more(page):
            return None
        target = self._path(page.body)
        if is_missing(target) or not isinstance(target, str) or not target.strip():
            return None
        current = page.request.full_url()
        try:
            nxt = current.join(URL(target.strip()))
        except ValueError as exc:
            raise CrossOriginLinkError(f"nextUrlPath {self.next_url_path!r} found no URL: {exc}") from exc
        if origin(nxt) != origin(current):
            raise CrossOriginLinkError(
                f"the next page's URL (nextUrlPath {self.next_url_path!r}) is on "
                f"{nxt.scheme}://{nxt.host}:{nxt.port}, not on the origin of the page it came from; "
                "refused so the source's credentials stay with its own origin"
            )
        # The link carries its own query; a POST source keeps its method and body on every page.
        return replace(page.request, url=nxt.with_query(None), params=dict(nxt.query), cursor=str(nxt))
