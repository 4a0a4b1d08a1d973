"""``?page=N`` pagination; stops on an empty or short page, or when a declared total is reached."""

from __future__ import annotations

from yarl import URL

from restlake.fetcher.pagination.base import Page, PageRequest, Paginator
from restlake.fetcher.records import compile_path, scalar_text


class PageNumberPaginator(Paginator):
    def __init__(
        self,
        *,
        param: str = "page",
        start_at: int = 1,
        size: int | None = None,
        size_param: str | None = None,
        total_path: str | None = None,
        max_pages: int | None = None,
    ) -> None:
        super().__init__(max_pages)
        self.param = param
        self.start_at = start_at
        self.size = size
        self.size_param = size_param
        self._total = compile_path(total_path) if total_path else None

    def first(self, url: URL, params: dict[str, str]) -> PageRequest:
        first = dict(params)
        first[self.param] = str(self.start_at)
        if self.size and self.size_param:
            first[self.size_param] = str(self.size)
        return PageRequest(url=url, params=first, cursor=str(self.start_at))

    def next(self, page: Page) -> PageRequest | None:
        if not page.records or (self.size and len(page.records) < self.size):
            return None
        current = int(page.request.params.get(self.param, self.start_at))
        if self._total is not None:
            total = scalar_text(self._total(page.body))
            if total is not None and self.size and (current - self.start_at + 1) * self.size >= int(total):
                return None
        nxt = current + 1
        return PageRequest(
            url=page.request.url, params={**page.request.params, self.param: str(nxt)}, cursor=str(nxt)
        )
