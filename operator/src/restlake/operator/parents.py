"""``spec.parent`` on Kubernetes: the parent is found by name in the child's namespace.

The child's fetcher reads its parent's current records from the parent's Postgres table, keyed by
the parent's identity. Both are facts about the *parent* object, so the operator looks them up and
renders them as annotations on the child's source document (``contracts.parents``); the fetcher pod
then needs nothing but its own ConfigMap and the Postgres DSN it already has.

Until the parent exists and can feed children (its Postgres sink on, no cycle), the child's
``ParentResolved`` condition is False with a reason saying which, and its fetcher is held at zero
replicas, as for a refused credential. The status timer reconciles every source again, so a parent
created after its child is picked up within one timer period.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from restlake.contracts.parents import (
    PARENT_IDENTITY_ANNOTATION,
    PARENT_TABLE_ANNOTATION,
    link_to,
)
from restlake.contracts.spec import IngestionSource, parse_source
from restlake.errors import SpecError
from restlake.kube.conditions import Condition

PARENT_RESOLVED = "ParentResolved"
NOT_FOUND = "ParentNotFound"
INVALID = "ParentInvalid"
SINK_DISABLED = "ParentPostgresSinkDisabled"
CYCLE = "ParentCycle"
FOUND = "ParentFound"

# The IngestionSource of that name in the child's namespace, or None when there is none.
SourceLookup = Callable[[str], Mapping[str, Any] | None]
# The identity the operator gives a source (``render.with_identity``).
WithIdentity = Callable[[IngestionSource], IngestionSource]

_HELD = "; the fetcher is held at zero replicas until it is resolved"


def _parse(body: Mapping[str, Any], namespace: str) -> IngestionSource:
    document = {k: v for k, v in body.items() if k != "status"}
    name = (body.get("metadata") or {}).get("name")
    return parse_source(json.loads(json.dumps(document)), f"{namespace}/{name}")


def resolve(
    source: IngestionSource, lookup: SourceLookup, with_identity: WithIdentity
) -> tuple[Condition | None, IngestionSource]:
    """The ``ParentResolved`` condition (None without spec.parent) and the source to render: with
    the parent's identity and table as annotations once resolved."""
    # Only the operator writes these: a user's own values (another tenant's identity, say) never
    # reach a fetcher, resolved or not.
    annotations = {
        k: v
        for k, v in source.metadata.annotations.items()
        if k not in (PARENT_IDENTITY_ANNOTATION, PARENT_TABLE_ANNOTATION)
    }
    source = source.model_copy(
        update={"metadata": source.metadata.model_copy(update={"annotations": annotations})}
    )
    spec = source.spec.parent
    if spec is None:
        return None, source
    namespace = source.metadata.namespace or ""
    where = f"spec.parent.source {spec.source!r}"
    body = lookup(spec.source)
    if body is None:
        return (
            Condition(
                PARENT_RESOLVED,
                "False",
                NOT_FOUND,
                f"{where} is not an IngestionSource in namespace {namespace}: create it{_HELD}",
            ),
            source,
        )
    try:
        parent = with_identity(_parse(body, namespace))
    except SpecError as exc:
        return Condition(PARENT_RESOLVED, "False", INVALID, f"{where} is invalid: {exc}{_HELD}"), source
    cycle = _cycle(source, parent, lookup, namespace)
    if cycle is not None:
        return (
            Condition(
                PARENT_RESOLVED,
                "False",
                CYCLE,
                f"{where} makes a cycle of parents ({cycle}); a parent must not depend on its "
                f"children{_HELD}",
            ),
            source,
        )
    try:
        link = link_to(source, parent)
    except SpecError as exc:
        message = "; ".join(m for _, m in exc.problems)
        return Condition(PARENT_RESOLVED, "False", SINK_DISABLED, f"{where} {message}{_HELD}"), source
    annotations = {
        **source.metadata.annotations,
        PARENT_IDENTITY_ANNOTATION: link.identity,
        PARENT_TABLE_ANNOTATION: link.table,
    }
    resolved = source.model_copy(
        update={"metadata": source.metadata.model_copy(update={"annotations": annotations})}
    )
    return (
        Condition(
            PARENT_RESOLVED,
            "True",
            FOUND,
            f"children of {spec.source}'s records, read from {link.table} (source {link.identity})",
        ),
        resolved,
    )


def _cycle(
    child: IngestionSource, parent: IngestionSource, lookup: SourceLookup, namespace: str
) -> str | None:
    """``a -> b -> a`` when following parents from ``child`` comes back to it, else None."""
    chain = [child.name, parent.name]
    current = parent
    # Bounded: a chain longer than this is a cycle somewhere above, or absurd either way.
    for _ in range(32):
        nxt = current.spec.parent
        if nxt is None:
            return None
        if nxt.source in chain:
            return " -> ".join([*chain[chain.index(nxt.source) :], nxt.source])
        body = lookup(nxt.source)
        if body is None:
            return None
        try:
            current = _parse(body, namespace)
        except SpecError:
            return None
        chain.append(current.name)
    return " -> ".join(chain)
