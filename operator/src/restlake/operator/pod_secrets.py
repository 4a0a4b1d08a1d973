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

The pods read those Secrets as environment variables, fixed when a container starts, so a rotated
Secret (a new API token, a new Postgres password) used to reach no running pod until something else
restarted it. ``stamp_versions`` puts a digest of the Secrets' resourceVersions on each
Deployment's pod template: a Secret that changes, or one that appears, changes the digest, and the
reconcile that sees it (the update handler or the status timer) rolls the Deployment.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from restlake.kube.conditions import SECRET_MISSING, Condition
from restlake.operator.credentials import SecretLookup
from restlake.operator.render import content_hash

# On a Deployment's pod template: the digest of the versions of the Secrets its pods read.
VERSIONS_ANNOTATION = "restlake.io/secret-versions"


def references(deployment: Mapping[str, Any], *, optional: bool = False) -> Iterator[tuple[str, str]]:
    """Each Secret the Deployment's pods read, with what reads it (for the message); only the
    required ones unless ``optional``."""
    pod = deployment.get("spec", {}).get("template", {}).get("spec", {})
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        who = f"container {container.get('name', '?')}"
        for env in container.get("env", []):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref and (optional or not ref.get("optional")):
                yield ref["name"], f"env {env['name']} of {who}"
        for source in container.get("envFrom", []):
            ref = source.get("secretRef")
            if ref and (optional or not ref.get("optional")):
                yield ref["name"], f"envFrom of {who}"
    for volume in pod.get("volumes", []):
        ref = volume.get("secret")
        if ref and (optional or not ref.get("optional")):
            yield ref["secretName"], f"volume {volume.get('name', '?')}"


_REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def stamp_versions(deployment: dict[str, Any], lookup: SecretLookup) -> None:
    """Annotate ``deployment``'s pod template with a digest of the resourceVersions of every Secret
    its pods read (a missing one counts as absent), so that a rotated Secret rolls the pods."""
    names = sorted({name for name, _ in references(deployment, optional=True)})
    if not names:
        return
    versions = "\n".join(f"{name}={_resource_version(lookup(name))}" for name in names)
    template = deployment["spec"]["template"]
    annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[VERSIONS_ANNOTATION] = content_hash(versions)


def versions_of(deployment: Mapping[str, Any]) -> str | None:
    """The digest ``stamp_versions`` put on ``deployment``'s pod template, if any."""
    template = (deployment.get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("annotations") or {}).get(VERSIONS_ANNOTATION)


def content_without_stamp(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """What of ``deployment`` an apply sets, less the digest: its labels, annotations and spec. Two
    of them equal means a Deployment whose digest moved changed in nothing else."""
    meta = deployment.get("metadata") or {}
    spec = copy.deepcopy(deployment.get("spec") or {})
    template_meta = (spec.get("template") or {}).get("metadata") or {}
    (template_meta.get("annotations") or {}).pop(VERSIONS_ANNOTATION, None)
    annotations = {
        key: value
        for key, value in (meta.get("annotations") or {}).items()
        # Written by the Deployment controller as it rolls (which a new digest makes it do), not by an apply.
        if key != _REVISION_ANNOTATION
    }
    return {"labels": meta.get("labels") or {}, "annotations": annotations, "spec": spec}


def _resource_version(found: Mapping[str, Any] | None) -> str:
    if found is None:
        return "(absent)"
    return str((found.get("metadata") or {}).get("resourceVersion", ""))


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
