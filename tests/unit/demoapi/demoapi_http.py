"""A plain HTTP GET against the demo API that returns error responses instead of raising."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    """(status, headers, body) of ``GET url``, for 2xx/3xx and 4xx/5xx alike."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()
