"""``spec.pagination``: how the fetcher gets from one page to the next, one model per strategy."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from restlake.contracts.model import SpecModel, field_error, model_rules
from restlake.contracts.values import JsonPath

# Generous on purpose: a real chain this long is rare, an endpoint that ignores its page parameter is not.
DEFAULT_MAX_PAGES = 10_000
MaxPages = Annotated[
    int,
    Field(
        ge=1,
        description=(
            "Pages per poll before the pass stops with an error (a safety bound against endpoints that "
            "never stop paging); raise it for longer chains."
        ),
    ),
]


class _Paged(SpecModel):
    max_pages: MaxPages = DEFAULT_MAX_PAGES
    total_path: JsonPath | None = Field(
        None, description="JSONPath to the total record count in the body, to stop without an extra request."
    )


_HAS_MORE = "JSONPath to a boolean in the body; false ends pagination (e.g. `$.has_more`)."
_IN = (
    "Where the pagination parameters go: query (the URL) or body (top-level keys of the JSON body; "
    "needs request.method POST)."
)


class LinkHeaderPagination(_Paged):
    """Follow the URL of the RFC 8288 ``Link`` header with the given rel."""

    type: Literal["linkHeader"] = Field(description="linkHeader: follow the `Link` header's rel URL.")
    rel: str = Field("next", min_length=1, description="Link relation of the next page.")


class NextUrlPagination(SpecModel):
    """Follow the next page's URL found in the body (DRF's `next`, HAL's `_links.next.href`)."""

    type: Literal["nextUrl"] = Field(description="nextUrl: follow the URL the body names for the next page.")
    next_url_path: JsonPath = Field(
        description="JSONPath to the next page's URL in the body, absolute or relative to the URL "
        "requested; null or absent ends pagination."
    )
    has_more_path: JsonPath | None = Field(None, description=_HAS_MORE)
    max_pages: MaxPages = DEFAULT_MAX_PAGES


class CursorPagination(_Paged):
    """Send the cursor the previous page returned (in its body, a header or its last record)."""

    model_config = model_rules(
        {
            "rule": "has(self.cursorPath) || has(self.cursorHeader) || has(self.cursorFromLastRecord)",
            "message": "cursorPath, cursorHeader or cursorFromLastRecord is required when type is cursor",
            "fieldPath": ".cursorPath",
        },
        {
            "rule": "(has(self.cursorPath) ? 1 : 0) + (has(self.cursorHeader) ? 1 : 0)"
            " + (has(self.cursorFromLastRecord) ? 1 : 0) <= 1",
            "message": "set exactly one of cursorPath, cursorHeader or cursorFromLastRecord",
            "fieldPath": ".cursorHeader",
        },
    )

    type: Literal["cursor"] = Field(description="cursor: send the cursor returned by the previous page.")
    cursor_path: JsonPath | None = Field(
        None, description="JSONPath to the next cursor in the body; null or absent ends pagination."
    )
    cursor_header: str | None = Field(
        None, min_length=1, description="Response header carrying the next cursor."
    )
    cursor_from_last_record: JsonPath | None = Field(
        None,
        description="JSONPath into the page's last record whose value is the next cursor (e.g. `$.id` "
        "for Stripe's starting_after); an empty page ends pagination.",
    )
    has_more_path: JsonPath | None = Field(None, description=_HAS_MORE)
    param: str = Field(
        "cursor",
        min_length=1,
        description="Query parameter that carries the cursor (cursor) or page (pageNumber).",
    )
    in_: Literal["query", "body"] = Field("query", alias="in", description=_IN)

    @model_validator(mode="after")
    def _one_cursor_source(self) -> CursorPagination:
        named = [
            alias
            for alias, value in (
                ("cursorPath", self.cursor_path),
                ("cursorHeader", self.cursor_header),
                ("cursorFromLastRecord", self.cursor_from_last_record),
            )
            if value is not None
        ]
        if not named:
            raise field_error(
                "cursorPath",
                "required when pagination.type is cursor (or cursorHeader, cursorFromLastRecord)",
            )
        if len(named) > 1:
            raise field_error(named[1], f"cannot be combined with {named[0]}; set exactly one")
        return self


class PageNumberPagination(_Paged):
    """Request page 1, 2, 3, ... until a page comes back short or empty."""

    model_config = model_rules(
        {
            "rule": "!has(self.sizeParam) || has(self.size)",
            "message": "size is required when sizeParam is set",
            "fieldPath": ".size",
        }
    )

    type: Literal["pageNumber"] = Field(description="pageNumber: request page 1, 2, 3, ...")
    param: str = Field(
        "page",
        min_length=1,
        description="Query parameter that carries the cursor (cursor) or page (pageNumber).",
    )
    size_param: str | None = Field(
        None, min_length=1, description="Query parameter that carries the page size."
    )
    size: int | None = Field(
        None, ge=1, le=100_000, description="Page size, at most 100000; a shorter page is the last one."
    )
    start_at: int = Field(1, ge=0, description="Number of the first page.")
    has_more_path: JsonPath | None = Field(None, description=_HAS_MORE)
    in_: Literal["query", "body"] = Field("query", alias="in", description=_IN)

    @model_validator(mode="after")
    def _size_with_param(self) -> PageNumberPagination:
        if self.size_param is not None and self.size is None:
            raise field_error("size", "required when sizeParam is set")
        return self


class OffsetPagination(_Paged):
    """Request offset 0, limit, 2*limit, ... until a page comes back short or empty."""

    type: Literal["offset"] = Field(description="offset: request offset 0, limit, 2*limit, ...")
    offset_param: str = Field("offset", min_length=1, description="Query parameter that carries the offset.")
    limit_param: str = Field("limit", min_length=1, description="Query parameter that carries the limit.")
    limit: int = Field(
        ge=1, le=100_000, description="Records per page, at most 100000; a shorter page is the last one."
    )
    has_more_path: JsonPath | None = Field(None, description=_HAS_MORE)
    in_: Literal["query", "body"] = Field("query", alias="in", description=_IN)


class NoPagination(SpecModel):
    """One request per poll."""

    type: Literal["none"] = Field(description="none: one request per poll.")


Pagination = Annotated[
    LinkHeaderPagination
    | NextUrlPagination
    | CursorPagination
    | PageNumberPagination
    | OffsetPagination
    | NoPagination,
    Field(discriminator="type"),
]
