"""API-server calls of the operator and the batch pods: server-side apply, get, status, discovery.

Built on the ``kubernetes`` client's transport (auth, TLS, kubeconfig or in-cluster config) but with
plain REST paths, so a CRD installed after the operator started (Strimzi, the Prometheus Operator) is
seen without restarting: discovery answers are cached only for ``discovery_ttl`` seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from restlake.errors import PermanentError, RestlakeError, TransientError

log = logging.getLogger(__name__)

# Statuses worth retrying: conflicts, throttling, and the API server being unwell.
_TRANSIENT = frozenset({409, 429, 500, 502, 503, 504})


class NotFoundError(PermanentError):
    """The object, or the API group it lives in, does not exist (HTTP 404)."""


@dataclass(frozen=True)
class Kind:
    """Where a kind is served: its REST plural and whether it is namespaced."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, name: str, namespace: str | None) -> str:
        return f"{self.collection(namespace, name)}/{name}"

    def collection(self, namespace: str | None, name: str = "*") -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced:
            if namespace is None:
                raise PermanentError(f"{self.kind} {name} is namespaced but no namespace was given")
            base += f"/namespaces/{namespace}"
        return f"{base}/{self.plural}"


def _error(status: int, body: bytes | None, reason: str | None, what: str) -> RestlakeError:
    try:
        detail = json.loads(body or b"{}").get("message") or reason
    except (ValueError, AttributeError):
        detail = reason
    message = f"{what}: HTTP {status}: {detail}"
    if status in _TRANSIENT:
        return TransientError(message)
    if status == 404:
        return NotFoundError(message)
    return PermanentError(message)


class Kube:
    """A thread-safe, synchronous client; kopf runs sync handlers in its executor threads."""

    def __init__(
        self, api: client.ApiClient, *, field_manager: str = "restlake", discovery_ttl: float = 30.0
    ) -> None:
        self.api = api
        # Names the owner of the fields that ``apply`` sets: the operator passes its own; the
        # batch pods only patch status, which records no field manager.
        self.field_manager = field_manager
        self.discovery_ttl = discovery_ttl
        self._kinds: dict[str, tuple[float, dict[str, Kind]]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, *, field_manager: str = "restlake") -> Kube:
        """In-cluster service account when in a pod, else $KUBECONFIG / ~/.kube/config."""
        try:
            config.load_incluster_config()
            configuration = client.Configuration.get_default_copy()
        except config.ConfigException:
            configuration = client.Configuration()
            config.load_kube_config(client_configuration=configuration)
        return cls(client.ApiClient(configuration), field_manager=field_manager)

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str | None = None,
        accept: str = "application/json",
    ) -> Any:
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            # The generated client's own request path (auth headers, token refresh, TLS), without its
            # typed models: the operator handles kinds the client was not generated for.
            method, url, headers, payload, _ = self.api.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(
                method, url, header_params=headers, body=payload, _request_timeout=30
            )
            data = response.read()
        except (ApiException, HTTPError) as exc:
            raise TransientError(f"{what}: {exc}") from None
        if not 200 <= response.status < 300:
            raise _error(response.status, data, response.reason, what)
        return json.loads(data or b"null")

    def kinds(self, api_version: str) -> dict[str, Kind]:
        """Kinds served under ``api_version`` (empty when the group/version is not served)."""
        with self._lock:
            cached = self._kinds.get(api_version)
            if cached is not None and time.monotonic() - cached[0] < self.discovery_ttl:
                return cached[1]
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            listing = self._call("GET", path, what=f"discover {api_version}")
        except NotFoundError:
            listing = {"resources": []}
        found = {
            r["kind"]: Kind(api_version, r["kind"], r["name"], bool(r.get("namespaced")))
            for r in listing.get("resources", [])
            if "/" not in r["name"]  # subresources such as deployments/status
        }
        with self._lock:
            self._kinds[api_version] = (time.monotonic(), found)
        return found

    def served(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves ``kind`` (e.g. whether a CRD is installed)."""
        return kind in self.kinds(api_version)

    def _kind(self, api_version: str, kind: str) -> Kind:
        found = self.kinds(api_version).get(kind)
        if found is None:
            raise PermanentError(f"the API server does not serve {kind} in {api_version}")
        return found

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` as field manager ``restlake-operator``; returns the live object.

        ``force`` takes over fields another manager set (a `kubectl edit` of a rendered Deployment):
        the source is the truth, as with any operator.
        """
        meta = obj["metadata"]
        kind = self._kind(obj["apiVersion"], obj["kind"])
        return self._call(
            "PATCH",
            kind.path(meta["name"], meta.get("namespace")),
            what=f"apply {obj['kind']} {meta.get('namespace')}/{meta['name']}",
            body=obj,
            query=[("fieldManager", self.field_manager), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    def patch_status(self, body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Merge ``status`` into ``body``'s status subresource, only if ``body`` is still current.

        The object's ``resourceVersion`` goes with the patch, so a status computed from a stale
        read (a reconcile wrote in between) fails with 409, a ``TransientError``, instead of
        overwriting newer conditions.
        """
        meta = body["metadata"]
        kind = self._kind(body["apiVersion"], body["kind"])
        return self._call(
            "PATCH",
            kind.path(meta["name"], meta.get("namespace")) + "/status",
            what=f"patch status of {body['kind']} {meta.get('namespace')}/{meta['name']}",
            body={"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status},
            content_type="application/merge-patch+json",
        )

    def merge(
        self, api_version: str, kind: str, name: str, namespace: str | None, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """JSON merge patch of the object itself (a ``None`` value removes a key)."""
        found = self._kind(api_version, kind)
        return self._call(
            "PATCH",
            found.path(name, namespace),
            what=f"patch {kind} {namespace}/{name}",
            body=patch,
            content_type="application/merge-patch+json",
        )

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        """The live object, or None when it (or its kind) does not exist."""
        if not self.served(api_version, kind):
            return None
        found = self._kind(api_version, kind)
        try:
            return self._call("GET", found.path(name, namespace), what=f"get {kind} {namespace}/{name}")
        except NotFoundError:
            return None

    def metadata(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> dict[str, Any] | None:
        """Only the object's metadata (``PartialObjectMetadata``), or None when it does not exist.

        How the operator looks at Secrets: their labels, never their data, which the API server
        leaves out of the response.
        """
        found = self._kind(api_version, kind)
        try:
            return self._call(
                "GET",
                found.path(name, namespace),
                what=f"get metadata of {kind} {namespace}/{name}",
                accept="application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            )
        except NotFoundError:
            return None

    def get_status(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> dict[str, Any] | None:
        """The object read through its status subresource (what a status-only role may read)."""
        found = self._kind(api_version, kind)
        try:
            return self._call(
                "GET",
                found.path(name, namespace) + "/status",
                what=f"get status of {kind} {namespace}/{name}",
            )
        except NotFoundError:
            return None

    def merge_status(
        self, api_version: str, kind: str, name: str, namespace: str | None, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge ``status`` into the status subresource unconditionally.

        Only for keys nobody else writes (a Backfill's ``progress`` and ``summary``); conditions go
        through ``patch_status``, which refuses to overwrite a newer object.
        """
        found = self._kind(api_version, kind)
        return self._call(
            "PATCH",
            found.path(name, namespace) + "/status",
            what=f"patch status of {kind} {namespace}/{name}",
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    def list(
        self, api_version: str, kind: str, namespace: str | None, *, label_selector: str
    ) -> list[dict[str, Any]]:
        """The objects of ``kind`` in ``namespace`` matching ``label_selector`` (empty if not served)."""
        if not self.served(api_version, kind):
            return []
        found = self._kind(api_version, kind)
        listing = self._call(
            "GET",
            found.collection(namespace),
            what=f"list {kind} in {namespace} ({label_selector})",
            query=[("labelSelector", label_selector)],
        )
        return list(listing.get("items") or [])

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        """Delete the object, its dependents in the background; False when it was already gone."""
        if not self.served(api_version, kind):
            return False
        found = self._kind(api_version, kind)
        try:
            self._call(
                "DELETE",
                found.path(name, namespace),
                what=f"delete {kind} {namespace}/{name}",
                query=[("propagationPolicy", "Background")],
            )
        except NotFoundError:
            return False
        return True
