"""No pagination: the endpoint returns everything in one response."""

from __future__ import annotations

from restlake.fetcher.pagination.base import Page, PageRequest, Paginator


class SinglePagePaginator(Paginator):
    def next(self, page: Page) -> PageRequest | None:
        return None
