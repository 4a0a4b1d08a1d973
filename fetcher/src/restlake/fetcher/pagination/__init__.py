"""Pagination strategies, one module each behind the ``Paginator`` interface, built by ``make_paginator``."""

from restlake.fetcher.pagination.base import Page, PageRequest, Paginator
from restlake.fetcher.pagination.factory import make_paginator

__all__ = ["Page", "PageRequest", "Paginator", "make_paginator"]
