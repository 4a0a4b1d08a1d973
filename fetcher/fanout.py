"""Fan-out planning for a child source (``spec.parent``): which parent records get a child fetch, and
the URL each one gets. Pure functions: no I/O, so every rule is a unit test.

A parent record is *due* when

* its children were never fetched (no mark in the child's state: a new parent record);
* its content hash differs from the one its children were last fetched for (a changed record);
* ``parent.refreshEvery`` is set and its children were last fetched longer ago than that.

Everything else is left alone: an unchanged parent record costs nothing, not even a 304.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from restlake.contracts.patterns import URL_VARIABLE
from restlake.fetcher.records import compile_path, is_missing, scalar_text

NEW, CHANGED, REFRESH = "new", "changed", "refresh"


@dataclass(frozen=True)
class ParentRow:
    """One current parent record, as the parent's Postgres table holds it."""

    external_id: str
    content_hash: str
    payload: Any


@dataclass(frozen=True)
class ParentMark:
    """What the child's state remembers per parent record: the content hash its children were last
    fetched for, and when. Written only after Kafka confirmed those children."""

    key: str
    content_hash: str
    fetched_at: datetime

    def as_json(self) -> dict[str, str]:
        return {"key": self.key, "hash": self.content_hash, "fetched_at": self.fetched_at.isoformat()}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ParentMark:
        return cls(
            key=str(value["key"]),
            content_hash=str(value["hash"]),
            fetched_at=datetime.fromisoformat(str(value["fetched_at"])),
        )


@dataclass
class FanoutPlan:
    """The parent records to fetch children for (with why), and how many were left alone."""

    due: list[tuple[ParentRow, str]] = field(default_factory=list)
    unchanged: int = 0

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, reason in self.due:
            counts[reason] = counts.get(reason, 0) + 1
        return counts


def plan(
    rows: Iterable[ParentRow],
    marks: Mapping[str, ParentMark],
    *,
    now: datetime,
    refresh_every: timedelta | None = None,
) -> FanoutPlan:
    """Which of ``rows`` (the parent's current records) get a child fetch this pass, in row order."""
    result = FanoutPlan()
    for row in rows:
        mark = marks.get(row.external_id)
        if mark is None:
            result.due.append((row, NEW))
        elif mark.content_hash != row.content_hash:
            result.due.append((row, CHANGED))
        elif refresh_every is not None and now - mark.fetched_at >= refresh_every:
            result.due.append((row, REFRESH))
        else:
            result.unchanged += 1
    return result


def parent_digest(external_id: str) -> str:
    """A short stable stand-in for a parent key in state keys and scopes (ids may be long or odd)."""
    return hashlib.blake2b(external_id.encode("utf-8"), digest_size=10).hexdigest()


def state_scope(child_identity: str, parent_key: str) -> str:
    """The fetch-state scope of one child URL: its validators, continuations and watermark live
    under ``<child identity>#<parent key digest>``, apart from every other parent record's."""
    return f"{child_identity}#{parent_digest(parent_key)}"


class MissingBindValue(ValueError):
    """A parent record has no usable value for a bound URL variable; that record is dead-lettered."""

    def __init__(self, variable: str, path: str, parent_key: str) -> None:
        super().__init__(
            f"parent record {parent_key!r} has no scalar value at spec.parent.bind.{variable} "
            f"({path}); its children cannot be fetched (request.url needs {{{variable}}})"
        )
        self.variable = variable
        self.path = path


class UrlBinder:
    """Fills ``{variable}`` in request.url from a parent record, each value URL-path-escaped.

    Escaped with no safe characters, so a value can never add a path segment (``a/b`` becomes
    ``a%2Fb``), a query parameter or a fragment: the parent's data chooses a value, not a URL.
    """

    def __init__(self, template: str, bind: Mapping[str, str]) -> None:
        self.template = template
        self.bind = dict(bind)
        self._paths: dict[str, Callable[[Any], Any]] = {k: compile_path(v) for k, v in bind.items()}
        self._variable = re.compile(URL_VARIABLE)

    def url(self, row: ParentRow) -> str:
        values: dict[str, str] = {}
        for variable, path in self._paths.items():
            found = path(row.payload)
            text = None if is_missing(found) else scalar_text(found)
            if text is None or text == "":
                raise MissingBindValue(variable, self.bind[variable], row.external_id)
            values[variable] = quote(text, safe="")
        return self._variable.sub(lambda m: values[m.group(0)[1:-1]], self.template)
