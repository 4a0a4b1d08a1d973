"""``?offset=O&limit=N`` pagination; stops on an empty or short page, or at a declared total."""

from __future__ import annotations

from yarl import URL

from restlake.fetcher.pagination.base import Page, PageRequest, Paginator
from restlake.fetcher.records import compile_path, scalar_text


class OffsetPaginator(Paginator):
    def __init__(
        self,
        *,
        limit: int,
        offset_param: str = "offset",
        limit_param: str = "limit",
        total_path: str | None = None,
        max_pages: int | None = None,
    ) -> None:
        super().__init__(max_pages)
        self.limit = limit
        self.offset_param = offset_param
        self.limit_param = limit_param
        self._total = compile_path(total_path) if total_path else None

    def first(self, url: URL, params: dict[str, str]) -> PageRequest:
        first = {**params, self.offset_param: "0", self.limit_param: str(self.limit)}
        return PageRequest(url=url, params=first, cursor="0")

    def next(self, page: Page) -> PageRequest | None:
        if len(page.records) < self.limit:
            return None
        nxt = int(page.request.params.get(self.offset_param, "0")) + len(page.records)
        if self._total is not None:
            total = scalar_text(self._total(page.body))
            if total is not None and nxt >= int(total):
                return None
        return PageRequest(
            url=page.request.url, params={**page.request.params, self.offset_param: str(nxt)}, cursor=str(nxt)
        )
