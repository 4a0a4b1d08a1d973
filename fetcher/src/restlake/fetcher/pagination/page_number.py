"""``page=N`` pagination; stops on an empty or short page, a declared total or has-more false."""

from __future__ import annotations

from typing import Any

from yarl import URL

from restlake.fetcher.pagination.base import Page, PageRequest, Paginator, ParamPlace
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
        has_more_path: str | None = None,
        place: ParamPlace = "query",
        max_pages: int | None = None,
    ) -> None:
        super().__init__(max_pages, place=place, has_more_path=has_more_path)
        self.param_name = param
        self.start_at = start_at
        self.size = size
        self.size_param = size_param
        self._total = compile_path(total_path) if total_path else None

    def first(
        self,
        url: URL,
        params: dict[str, str],
        *,
        method: str = "GET",
        body: dict[str, Any] | None = None,
    ) -> PageRequest:
        start = super().first(url, params, method=method, body=body)
        values: dict[str, Any] = {self.param_name: self.start_at}
        if self.size and self.size_param:
            values[self.size_param] = self.size
        return self.with_params(start, values, str(self.start_at))

    def next(self, page: Page) -> PageRequest | None:
        if not page.records or (self.size and len(page.records) < self.size) or self.says_no_more(page):
            return None
        current = int(self.param(page.request, self.param_name) or self.start_at)
        if self._total is not None:
            total = scalar_text(self._total(page.body))
            if total is not None and self.size and (current - self.start_at + 1) * self.size >= int(total):
                return None
        nxt = current + 1
        return self.with_params(page.request, {self.param_name: nxt}, str(nxt))
