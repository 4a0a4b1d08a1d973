"""``spec.parent``: a child source, whose request.url is filled in once per record of another source."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from restlake.contracts.model import SpecModel
from restlake.contracts.patterns import BIND_NAME, DNS1123_LABEL, URL_VARIABLE
from restlake.contracts.values import JsonPath, bounded_duration

_URL_VARIABLE_RE = re.compile(URL_VARIABLE)
BIND_MAX_ENTRIES = 16


def url_variables(url: str) -> list[str]:
    """The template variables of a URL in order of appearance, each once: ``{repo}`` gives ``repo``."""
    names = [m[1:-1] for m in _URL_VARIABLE_RE.findall(url)]
    return list(dict.fromkeys(names))


class Parent(SpecModel):
    """Fetch this source once per record of another source (a substream, a dependent resource).

    request.url is a template: each ``{name}`` in it is filled, URL-escaped, with the value the
    matching ``bind`` JSONPath finds in a parent record. The parent's records are read from Postgres
    (its ``sinks.postgres`` must stay enabled); children are fetched for every parent record at
    first, later only for parent records that are new or changed, and for all of them again every
    ``refreshEvery``. Each child URL keeps its own validators and watermark; all of them share this
    source's rate limit. A child record's envelope names the parent record it came from.
    """

    source: str = Field(
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Name of the parent IngestionSource (in the same namespace; in the same file or "
        "files for restlake run and restlake fetcher run).",
    )
    bind: dict[Annotated[str, Field(max_length=63, pattern=BIND_NAME)], JsonPath] = Field(
        min_length=1,
        max_length=BIND_MAX_ENTRIES,
        description="URL template variable -> JSONPath into a parent record, e.g. {repo: $.full_name} "
        "for request.url https://api.example.com/repos/{repo}/issues. Every {variable} of request.url "
        "must be bound, and every binding used. A parent record without a value is dead-lettered.",
    )
    refresh_every: bounded_duration("365d", "1m") | None = Field(  # type: ignore[valid-type]
        None,
        description="Fetch the children of every parent record again when their last fetch is older "
        "than this (at least 1m, at most 365d); absent: only new or changed parent records.",
    )
