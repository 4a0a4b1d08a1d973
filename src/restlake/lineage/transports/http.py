"""Run events posted to an OpenLineage HTTP receiver (Marquez or any other: ``POST /api/v1/lineage``)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from pydantic import SecretStr

from restlake.errors import TransientError


class HttpTransport:
    def __init__(self, url: str, endpoint: str, api_key: SecretStr | None, timeout: float) -> None:
        self.target = f"{url.rstrip('/')}/{endpoint.lstrip('/')}"
        self._api_key = api_key
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HttpTransport({self.target!r})"

    def emit(self, event: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        request = urllib.request.Request(
            self.target, data=json.dumps(event).encode(), headers=headers, method="POST"
        )
        try:
            # stdlib, not aiohttp: emission runs in a worker thread and must work in the Spark driver too.
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except OSError as exc:  # URLError and HTTPError are OSErrors; the message never holds the key
            raise TransientError(f"posting an OpenLineage event to {self.target} failed: {exc}") from exc
        if status >= 300:
            raise TransientError(f"posting an OpenLineage event to {self.target} answered {status}")
