"""Builds the paginator a source's ``spec.pagination`` asks for."""

from __future__ import annotations

from typing import Any, Literal

from restlake.errors import ConfigError
from restlake.fetcher.pagination.base import Paginator
from restlake.fetcher.pagination.cursor import CursorPaginator
from restlake.fetcher.pagination.link_header import LinkHeaderPaginator
from restlake.fetcher.pagination.next_url import NextUrlPaginator
from restlake.fetcher.pagination.offset import OffsetPaginator
from restlake.fetcher.pagination.page_number import PageNumberPaginator
from restlake.fetcher.pagination.single import SinglePagePaginator


def make_paginator(spec: Any) -> Paginator:
    """``spec`` is the source's pagination model (``spec.pagination``), or None for a single page."""
    if spec is None:
        return SinglePagePaginator()
    kind = spec.type
    max_pages = getattr(spec, "max_pages", None)
    total_path = getattr(spec, "total_path", None)
    has_more_path = getattr(spec, "has_more_path", None)
    place: Literal["query", "body"] = getattr(spec, "in_", "query")
    if kind == "linkHeader":
        return LinkHeaderPaginator(rel=spec.rel, max_pages=max_pages)
    if kind == "nextUrl":
        return NextUrlPaginator(
            next_url_path=spec.next_url_path, has_more_path=has_more_path, max_pages=max_pages
        )
    if kind == "cursor":
        return CursorPaginator(
            param=spec.param,
            cursor_path=spec.cursor_path,
            cursor_header=spec.cursor_header,
            cursor_from_last_record=spec.cursor_from_last_record,
            has_more_path=has_more_path,
            place=place,
            max_pages=max_pages,
        )
    if kind == "pageNumber":
        return PageNumberPaginator(
            param=spec.param,
            start_at=spec.start_at,
            size=spec.size,
            size_param=spec.size_param,
            total_path=total_path,
            has_more_path=has_more_path,
            place=place,
            max_pages=max_pages,
        )
    if kind == "offset":
        return OffsetPaginator(
            limit=spec.limit,
            offset_param=spec.offset_param,
            limit_param=spec.limit_param,
            total_path=total_path,
            has_more_path=has_more_path,
            place=place,
            max_pages=max_pages,
        )
    if kind == "none":
        return SinglePagePaginator(max_pages=max_pages)
    raise ConfigError(f"spec.pagination.type: unknown pagination type {kind!r}")
