"""Reading one 2xx page inside its request's retry loop: its records, their ids, where it leads.

Everything that can make a 2xx page unusable is checked as the page client's ``inspect`` hook, so
such a page is retried, then dead-lettered, like a malformed body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from restlake.fetcher.client import Response
from restlake.fetcher.page_errors import BadPageError, PageError
from restlake.fetcher.pagination import Page, PageRequest, Paginator
from restlake.fetcher.records import RecordExtractor, line_of


@dataclass(frozen=True)
class ReadPage:
    """A page's records and the request for the page after it (None: it was the last)."""

    records: list[Any]
    following: PageRequest | None
    # Where the page leads is refused (a next link on another origin), not the page: its records
    # flow and the walk ends there.
    refused: PageError | None = None


class PageReader:
    """The ``inspect`` hook of one page request; :meth:`page_of` gives the reading it accepted."""

    def __init__(
        self,
        request: PageRequest,
        extractor: RecordExtractor,
        paginator: Paginator,
        *,
        id_path: str | None,
        fail_on_missing_id: bool,
    ) -> None:
        self.request = request
        self.extractor = extractor
        self.paginator = paginator
        self.id_path = id_path
        self.fail_on_missing_id = fail_on_missing_id
        self._accepted: tuple[Response, ReadPage] | None = None

    def __call__(self, response: Response) -> None:
        self._accepted = None
        self._accepted = (response, self.read(response))

    def page_of(self, response: Response) -> ReadPage:
        """The reading of an accepted ``response`` (read now if the hook did not see it)."""
        accepted = self._accepted
        if accepted is not None and accepted[0] is response:
            return accepted[1]
        return self.read(response)

    def read(self, response: Response) -> ReadPage:
        """The page's records and where it leads; raises ``BadPageError`` when it cannot be used."""
        try:
            records = self.extractor.records(response.body)
        except ValueError as exc:
            raise BadPageError(str(exc), reason="no_record_list", status=response.status) from exc
        if self.fail_on_missing_id:
            self._refuse_missing_ids(records, response.status)
        try:
            following = self.paginator.next(Page(self.request, response.headers, response.body, records))
        except (ValueError, TypeError, ArithmeticError) as exc:
            # e.g. int() of a totalPath value that is not a number: the page cannot say what follows.
            raise BadPageError(
                f"pagination value in the page is unusable: {type(exc).__name__}: {exc}",
                reason="bad_pagination",
                status=response.status,
            ) from exc
        except PageError as exc:  # a paginator's refusal of where the page leads (CrossOriginLinkError)
            return ReadPage(records, None, refused=exc)
        return ReadPage(records, following)

    def _refuse_missing_ids(self, records: list[Any], status: int) -> None:
        absent = [i for i, r in enumerate(records) if self.extractor.external_id(r) in (None, "")]
        if not absent:
            return
        lines = [line_of(records, i) for i in absent[:10]]
        where = f" (lines {', '.join(map(str, lines))})" if None not in lines else ""
        raise BadPageError(
            f"{len(absent)} of {len(records)} record(s) have no value at records.idPath "
            f"{self.id_path!r}{where} (records.onMissingId: fail; set it to "
            "quarantine or hash to accept such records)",
            reason="missing_id",
            status=status,
        )
