"""Status reporters that the Backfill Job and the quality CronJob pods call, not the operator.

They live on the batch side (the ``restlake backfill run`` and ``restlake quality run`` commands
run them), not in the operator package: the operator only renders the pods, and the names both
sides share are in ``restlake.contracts.batch_pods``.

The operator renders those pods with the environment variables below (the Backfill's name, the
source's name, the namespace from the downward API) and a ServiceAccount that may only patch
``backfills/status`` and ``ingestionsources/status``. Outside such a pod (``restlake backfill`` on a
laptop) the variables are absent and the reporters do nothing. A failed status write is logged and
never fails the work being reported: the Job's own verdict and termination message are the record.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from restlake.contracts import backfill, batch_pods
from restlake.contracts.api_version import API_VERSION
from restlake.contracts.batch_pods import (
    ENV_SOURCE_NAME,
    ENV_SOURCE_NAMESPACE,
)
from restlake.contracts.spec import KIND
from restlake.errors import RestlakeError, TransientError
from restlake.kube import conditions
from restlake.settings import PodIdentity

log = logging.getLogger(__name__)

# The operator reads the Backfill summary from the termination message.
TERMINATION_LOG = Path(batch_pods.TERMINATION_LOG)
_TERMINATION_LIMIT = 4096  # the kubelet keeps at most this many bytes of the message

PASSED = "ExpectationsPassed"
FAILED = "ExpectationsFailed"


class StatusClient(Protocol):
    """The API-server calls the reporters make (``kube.Kube`` in a pod, a fake in unit tests)."""

    def merge_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> dict[str, Any]: ...

    def get_status(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None: ...

    def patch_status(self, body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]: ...


def _in_cluster() -> StatusClient:
    from restlake.kube.client import Kube

    return Kube.from_environment()


class BackfillProgressReporter:
    """``reporter(done, total)`` patches ``status.progress`` of a Backfill, at most every ``interval`` s.

    The first and the last (``done == total``) reports always go out; the ones between are
    throttled, so a backfill of millions of rows costs a handful of API calls.
    """

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        client: StatusClient | None = None,
        client_factory: Callable[[], StatusClient] = _in_cluster,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.interval = interval
        self._client = client
        self._client_factory = client_factory
        self._clock = clock
        self._last_sent: float | None = None
        self._last: tuple[int, int] | None = None
        self._disabled = False

    @classmethod
    def from_environment(
        cls, identity: PodIdentity | None = None, **kwargs: Any
    ) -> BackfillProgressReporter | None:
        """The reporter of the Backfill this pod runs for (``identity``, read from the environment
        when None); None outside such a pod."""
        pod = identity if identity is not None else PodIdentity()
        name, namespace = pod.backfill_name, pod.backfill_namespace
        if not name or not namespace:
            return None
        return cls(namespace, name, **kwargs)

    def _patch(self, status: dict[str, Any]) -> None:
        if self._disabled:
            return
        try:
            if self._client is None:
                self._client = self._client_factory()
            self._client.merge_status(API_VERSION, backfill.KIND, self.name, self.namespace, status)
        except RestlakeError as exc:
            log.warning(
                "backfill status not written backfill=%s namespace=%s error=%s",
                self.name,
                self.namespace,
                exc,
            )
        except Exception as exc:  # no kubeconfig or service account token: stop trying, keep working
            log.warning(
                "backfill status reporting disabled backfill=%s namespace=%s error=%s",
                self.name,
                self.namespace,
                exc,
            )
            self._disabled = True

    def __call__(self, done: int, total: int) -> None:
        self._last = (done, total)
        now = self._clock()
        due = self._last_sent is None or now - self._last_sent >= self.interval or done >= total
        if not due:
            return
        self._last_sent = now
        self._patch({"progress": {"rowsDone": max(done, 0), "rowsTotal": max(total, 0)}})

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Write the final progress and the run's JSON summary into ``status.summary``."""
        status: dict[str, Any] = {"summary": json.loads(json.dumps(dict(summary), default=str))}
        if self._last is not None:
            done, total = self._last
            status["progress"] = {"rowsDone": max(done, 0), "rowsTotal": max(total, done, 0)}
        self._patch(status)


def quality_condition(
    *, passed: bool, evaluated: int, unsuccessful: int, detail: str = ""
) -> conditions.Condition:
    """The ``QualityPassing`` condition of one quality run."""
    if passed:
        message = f"{evaluated} of {evaluated} expectations passed"
    else:
        message = f"{unsuccessful} of {evaluated} expectations failed"
    if detail:
        message = f"{message}: {detail}"
    return conditions.Condition(
        conditions.QUALITY_PASSING,
        "True" if passed else "False",
        PASSED if passed else FAILED,
        message[:4096],
    )


def report_quality(
    *,
    passed: bool,
    evaluated: int,
    unsuccessful: int,
    detail: str = "",
    source: str | None = None,
    namespace: str | None = None,
    client: StatusClient | None = None,
    identity: PodIdentity | None = None,
    now: str | None = None,
    attempts: int = 5,
) -> bool:
    """Set the source's ``QualityPassing`` condition; True when written.

    ``source``/``namespace`` default to ``RESTLAKE_SOURCE_NAME``/``RESTLAKE_SOURCE_NAMESPACE``
    (``identity``, read from the environment when None);
    without them (a local run) nothing is written. The other conditions are kept as they are, and
    ``lastTransitionTime`` moves only when the status flips. The write carries the resourceVersion
    it was computed from, so a concurrent operator write makes it re-read and retry instead of
    overwriting newer conditions.
    """
    pod = identity if identity is not None else PodIdentity()
    source = source or pod.source_name
    namespace = namespace or pod.source_namespace
    if not source or not namespace:
        log.debug("no source to report quality to (%s/%s unset)", ENV_SOURCE_NAME, ENV_SOURCE_NAMESPACE)
        return False
    condition = quality_condition(
        passed=passed, evaluated=evaluated, unsuccessful=unsuccessful, detail=detail
    )
    try:
        api = client or _in_cluster()
    except Exception as exc:  # no kubeconfig or service account token
        log.warning("quality not reported source=%s namespace=%s error=%s", source, namespace, exc)
        return False
    for attempt in range(1, attempts + 1):
        try:
            live = api.get_status(API_VERSION, KIND, source, namespace)
            if live is None:
                log.warning(
                    "quality not reported source=%s namespace=%s error=source not found", source, namespace
                )
                return False
            generation = live["metadata"].get("generation")
            previous = (live.get("status") or {}).get("conditions", [])
            merged = conditions.merge(
                previous, [condition], generation=generation, now=now or conditions.now_rfc3339()
            )
            api.patch_status(live, {"conditions": merged})
            log.info(
                "quality reported source=%s namespace=%s status=%s reason=%s",
                source,
                namespace,
                condition.status,
                condition.reason,
            )
            return True
        except TransientError as exc:
            log.info("quality report retried source=%s attempt=%d error=%s", source, attempt, exc)
            time.sleep(min(0.2 * attempt, 1.0))
        except RestlakeError as exc:
            log.warning("quality not reported source=%s namespace=%s error=%s", source, namespace, exc)
            return False
    log.warning(
        "quality not reported source=%s namespace=%s error=gave up after %d attempts",
        source,
        namespace,
        attempts,
    )
    return False


def write_termination_message(summary: Mapping[str, Any], path: Path = TERMINATION_LOG) -> bool:
    """Write ``summary`` as the container's termination message when running in a pod; True if written.

    Outside a container the file does not exist and nothing is written (creating it under /dev
    would need root and mean nothing). A summary over the kubelet's 4 KiB limit is not truncated
    into invalid JSON: the operator then falls back to the log tail, which ends with the summary.
    """
    text = json.dumps(dict(summary), sort_keys=True, default=str)
    if not path.exists() or len(text.encode()) > _TERMINATION_LIMIT:
        return False
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        log.warning("termination message not written path=%s error=%s", path, exc)
        return False
    return True
