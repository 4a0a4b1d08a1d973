"""Which Kafka topics the operator created through the admin API, per source, and their clean-up.

A ConfigMap ``<release>-topics`` in the operator's own namespace holds one key per source,
``<namespace>.<name>`` (both DNS labels, so the key is a valid ConfigMap key), whose value is the JSON
list of its topics. It outlives the operator's pods, so a source deleted while no operator ran is
cleaned up by the next one to start (``sweep``), and nothing else's topics are ever touched: only
names the operator wrote down are deleted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from restlake.contracts.api_version import API_VERSION
from restlake.contracts.spec import KIND
from restlake.errors import TransientError

log = logging.getLogger(__name__)

TopicDeleter = Callable[..., list[str]]


class LedgerCluster(Protocol):
    """The API-server calls the ledger needs (``kube.Kube``)."""

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None: ...

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def merge(
        self, api_version: str, kind: str, name: str, namespace: str | None, patch: dict[str, Any]
    ) -> dict[str, Any]: ...


def key(namespace: str, name: str) -> str:
    return f"{namespace}.{name}"


class TopicLedger:
    def __init__(self, cluster: LedgerCluster, namespace: str, name: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = name

    def entries(self) -> dict[str, list[str]]:
        live = self.cluster.get("v1", "ConfigMap", self.name, self.namespace)
        data = (live or {}).get("data") or {}
        return {k: json.loads(v) for k, v in data.items()}

    def record(self, namespace: str, source: str, topics: list[str]) -> None:
        """Add ``topics`` to the source's entry; only topics the operator itself created belong here,
        never one that existed before (``spec.kafka.topic`` may name a topic others use)."""
        entry = key(namespace, source)
        live = self.cluster.get("v1", "ConfigMap", self.name, self.namespace)
        known = json.loads(((live or {}).get("data") or {}).get(entry) or "[]")
        value = json.dumps(sorted({*known, *topics}))
        if live is None:
            self.cluster.apply(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": self.name,
                        "namespace": self.namespace,
                        "labels": {"app.kubernetes.io/part-of": "restlake"},
                    },
                    "data": {entry: value},
                }
            )
        elif (live.get("data") or {}).get(entry) != value:
            # A merge patch, not apply: apply would drop every key this call does not name.
            self.cluster.merge("v1", "ConfigMap", self.name, self.namespace, {"data": {entry: value}})

    def forget(self, namespace: str, source: str) -> None:
        entry = key(namespace, source)
        live = self.cluster.get("v1", "ConfigMap", self.name, self.namespace)
        if live is not None and entry in (live.get("data") or {}):
            self.cluster.merge("v1", "ConfigMap", self.name, self.namespace, {"data": {entry: None}})


def release(
    ledger: TopicLedger | None,
    namespace: str,
    source: str,
    topics: list[str],
    *,
    delete: TopicDeleter,
    bootstrap: str,
    timeout: float,
) -> list[str]:
    """Delete a deleted source's topics and its ledger entry; returns the topics deleted.

    With a ledger only what it lists is deleted (and ``topics`` is ignored); the entry goes only
    after Kafka confirmed, so an unreachable broker leaves it for the next sweep.
    """
    if ledger is not None:
        listed = ledger.entries().get(key(namespace, source))
        if listed is None:
            return []
        topics = listed
    deleted = delete(bootstrap, topics, timeout=timeout)
    if ledger is not None:
        ledger.forget(namespace, source)
    log.info("released topics of deleted source source=%s/%s topics=%s", namespace, source, deleted)
    return deleted


def sweep(
    ledger: TopicLedger, *, delete: TopicDeleter, bootstrap: str, timeout: float
) -> dict[str, list[str]]:
    """Release the topics of every recorded source that no longer exists; returns them by entry."""
    released: dict[str, list[str]] = {}
    for entry, topics in ledger.entries().items():
        namespace, _, name = entry.partition(".")
        if ledger.cluster.get(API_VERSION, KIND, name, namespace) is not None:
            continue
        try:
            released[entry] = release(
                ledger, namespace, name, topics, delete=delete, bootstrap=bootstrap, timeout=timeout
            )
        except TransientError as exc:
            log.warning("topic sweep deferred source=%s reason=%s", entry, exc)
    return released
