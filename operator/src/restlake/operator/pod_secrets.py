"""Secrets a source's pods cannot start without, looked up before the pods are left waiting on them.

A pod whose environment names a Secret that does not exist stays in CreateContainerConfigError,
and its Deployment says no more than "0/1 replicas available". The user's own Secrets are checked
by ``credentials`` (existence and consent label) before anything is rendered; the rendered pods
also read the operator's own (the Postgres DSN, the Spark cluster's shared secret, the lake's keys,
the lineage receiver's token), which must exist in every namespace that holds sources: with
``watchAllNamespaces`` each of those namespaces needs its own copy. This names the missing one, and
who reads it, in the component's condition.

Only metadata is read (``Kube.metadata``), as for the label check; an ``optional`` reference is
not required.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from restlake.kube.conditions import SECRET_MISSING, Condition
from restlake.operator.credentials import SecretLookup


def references(deployment: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Each required Secret the Deployment's pods read, with what reads it (for the message)."""
    pod = deployment.get("spec", {}).get("template", {}).get("spec", {})
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        who = f"container {container.get('name', '?')}"
        for env in container.get("env", []):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                yield ref["name"], f"env {env['name']} of {who}"
        for source in container.get("envFrom", []):
            ref = source.get("secretRef")
            if ref and not ref.get("optional"):
                yield ref["name"], f"envFrom of {who}"
    for volume in pod.get("volumes", []):
        ref = volume.get("secret")
        if ref and not ref.get("optional"):
            yield ref["secretName"], f"volume {volume.get('name', '?')}"


def condition(
    kind: str, deployment: Mapping[str, Any] | None, namespace: str, lookup: SecretLookup
) -> Condition | None:
    """``kind`` (FetcherReady, StreamReady) False when a Secret its pods read is missing; else None."""
    if deployment is None:
        return None
    readers: dict[str, list[str]] = {}
    for name, who in references(deployment):
        readers.setdefault(name, []).append(who)
    missing = sorted(name for name in readers if lookup(name) is None)
    if not missing:
        return None
    named = "; ".join(f"Secret {name} (read by {', '.join(readers[name])})" for name in missing)
    return Condition(
        kind,
        "False",
        SECRET_MISSING,
        f"{named} does not exist in namespace {namespace}: the pods cannot start until it does "
        "(the operator's Secrets must be copied into every namespace that holds sources)",
    )
