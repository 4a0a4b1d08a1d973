"""The paginator interface: from one page, decide the request for the next one (or stop)."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDictProxy
from yarl import URL


@dataclass(frozen=True)
class PageRequest:
    """One request to make: the URL (without query) and its query parameters."""

    url: URL
    params: dict[str, str] = field(default_factory=dict)
    # What identifies this page in envelopes and logs (a cursor, page number or offset).
    cursor: str | None = None

    def full_url(self) -> URL:
        return self.url.update_query(self.params) if self.params else self.url


@dataclass(frozen=True)
class Page:
    """What a paginator may look at to find the next page."""

    request: PageRequest
    headers: CIMultiDictProxy[str]
    body: Any
    records: list[Any]


class Paginator(abc.ABC):
    """Decides the next page. Implementations are pure: all state is in the requests they return."""

    def __init__(self, max_pages: int | None = None) -> None:
        self.max_pages = max_pages

    def first(self, url: URL, params: dict[str, str]) -> PageRequest:
        return PageRequest(url=url, params=dict(params))

    @abc.abstractmethod
    def next(self, page: Page) -> PageRequest | None:
        """The request for the page after ``page``, or None when ``page`` was the last one."""
