"""The paginator interface: from one page, decide the request for the next one (or stop)."""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from multidict import CIMultiDictProxy
from yarl import URL

from restlake.fetcher.records import compile_path, is_missing

ParamPlace = Literal["query", "body"]


@dataclass(frozen=True)
class PageRequest:
    """One request to make: the URL (without query), its query parameters and, for POST, its JSON body."""

    url: URL
    params: dict[str, str] = field(default_factory=dict)
    # What identifies this page in envelopes and logs (a cursor, page number or offset).
    cursor: str | None = None
    method: str = "GET"
    body: dict[str, Any] | None = None

    def full_url(self) -> URL:
        return self.url.update_query(self.params) if self.params else self.url

    def identity(self, shown_url: str | None = None) -> str:
        """What tells two pages apart: the URL, and for POST also the body (one URL serves every page).

        ``shown_url`` replaces the URL (the redacted one, so no secret lands in state or logs).
        """
        url = shown_url if shown_url is not None else str(self.full_url())
        if self.method == "GET":
            return url
        body = json.dumps(self.body, sort_keys=True, separators=(",", ":")) if self.body is not None else ""
        return f"{self.method} {url} {body}"


@dataclass(frozen=True)
class Page:
    """What a paginator may look at to find the next page."""

    request: PageRequest
    headers: CIMultiDictProxy[str]
    body: Any
    records: list[Any]


class Paginator(abc.ABC):
    """Decides the next page. Implementations are pure: all state is in the requests they return.

    ``place`` says where the paginator's own parameters go: the query string, or top-level keys of
    the JSON body of a POST (Notion's ``start_cursor``, Elasticsearch's ``search_after``).
    ``has_more_path`` points at a boolean in the body; ``false`` ends the walk whatever else says.
    """

    def __init__(
        self,
        max_pages: int | None = None,
        *,
        place: ParamPlace = "query",
        has_more_path: str | None = None,
    ) -> None:
        self.max_pages = max_pages
        self.place = place
        self._has_more = compile_path(has_more_path) if has_more_path else None

    def first(
        self,
        url: URL,
        params: dict[str, str],
        *,
        method: str = "GET",
        body: dict[str, Any] | None = None,
    ) -> PageRequest:
        return PageRequest(url=url, params=dict(params), method=method, body=body)

    @abc.abstractmethod
    def next(self, page: Page) -> PageRequest | None:
        """The request for the page after ``page``, or None when ``page`` was the last one."""

    def says_no_more(self, page: Page) -> bool:
        """True when ``hasMorePath`` finds ``false``; absent or true leaves the decision to the paginator."""
        if self._has_more is None:
            return False
        value = self._has_more(page.body)
        if is_missing(value):
            return False
        return value is False or (isinstance(value, str) and value.lower() == "false")

    def param(self, request: PageRequest, name: str) -> str | None:
        """The current value of one of the paginator's parameters, wherever it is placed."""
        if self.place == "body":
            value = (request.body or {}).get(name)
            return None if value is None else str(value)
        return request.params.get(name)

    def with_params(self, request: PageRequest, values: dict[str, Any], cursor: str | None) -> PageRequest:
        """``request`` with the paginator's parameters set, in the query or in the body.

        In the body a value keeps its JSON type (a page size stays a number), in the query it is text.
        """
        if self.place == "body":
            return replace(request, body={**(request.body or {}), **values}, cursor=cursor)
        text = {name: str(value) for name, value in values.items()}
        return replace(request, params={**request.params, **text}, cursor=cursor)
