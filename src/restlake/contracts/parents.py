"""Resolving ``spec.parent``: which source a child's records hang off, and where its records are read.

A child fetcher reads the parent's *current* records from the parent's Postgres table (rows whose
``source`` is the parent's identity): that table already holds the newest version of every parent
record with its content hash, so "new or changed since the children were last fetched" is a hash
comparison, and the child needs no access to the parent's API, topic or fetcher.

Two runtimes, one result (``ParentLink``):

* ``restlake run -f`` and ``restlake fetcher run -f``: the parent is found by name among the
  documents given (several documents in one file, or several files), in any order;
* Kubernetes: the operator finds the parent by name in the child's namespace and writes what the
  child's fetcher needs (the parent's identity and Postgres table) as annotations on the source
  document it renders (``PARENT_IDENTITY_ANNOTATION``, ``PARENT_TABLE_ANNOTATION``), as it does for
  the source's own identity. The fetcher pod therefore needs nothing beyond its own document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from restlake.contracts.patterns import PG_TABLE
from restlake.contracts.spec import IngestionSource
from restlake.contracts.values import Duration
from restlake.errors import SpecError

PARENT_IDENTITY_ANNOTATION = "restlake.io/parent-identity"
PARENT_TABLE_ANNOTATION = "restlake.io/parent-table"
FIELD = "spec.parent.source"


@dataclass(frozen=True)
class ParentLink:
    """What a child's fetcher needs of its parent: where its records are, and how to bind them."""

    name: str  # spec.parent.source
    identity: str  # the parent's Postgres `source` value (its identity)
    table: str  # the parent's Postgres table (spec.sinks.postgres.table)
    bind: dict[str, str]
    refresh_every: Duration | None = None


def _label(source: IngestionSource) -> str:
    return source.name


def link_to(child: IngestionSource, parent: IngestionSource) -> ParentLink:
    """The link of ``child`` to ``parent`` (the source its spec.parent names); refuses a parent whose
    records never reach Postgres, where the child reads them."""
    spec = child.spec.parent
    if spec is None:
        raise ValueError(f"{child.name} has no spec.parent: only a child source links to a parent")
    if not parent.spec.sinks.postgres.enabled:
        raise SpecError(
            _label(child),
            [
                (
                    FIELD,
                    f"names {parent.name!r}, whose sinks.postgres.enabled is false: a child reads its "
                    "parent's current records from Postgres; enable the parent's Postgres sink",
                )
            ],
        )
    return ParentLink(
        name=spec.source,
        identity=parent.identity,
        table=parent.spec.sinks.postgres.table,
        bind=dict(spec.bind),
        refresh_every=spec.refresh_every,
    )


def link_from_annotations(child: IngestionSource) -> ParentLink | None:
    """The link the operator rendered into the child's document, or None when it carries none."""
    spec = child.spec.parent
    annotations = child.metadata.annotations
    identity = annotations.get(PARENT_IDENTITY_ANNOTATION)
    if spec is None or identity is None:
        return None
    table = annotations.get(PARENT_TABLE_ANNOTATION, "raw.api_events")
    if not re.match(PG_TABLE, table):
        raise SpecError(
            _label(child),
            [
                (
                    f"metadata.annotations.{PARENT_TABLE_ANNOTATION}",
                    f"must be a schema.table name, got {table!r}",
                )
            ],
        )
    return ParentLink(
        name=spec.source,
        identity=identity,
        table=table,
        bind=dict(spec.bind),
        refresh_every=spec.refresh_every,
    )


def _same_scope(a: IngestionSource, b: IngestionSource) -> bool:
    return (a.metadata.namespace or "") == (b.metadata.namespace or "")


def resolve_parents(sources: Sequence[IngestionSource]) -> dict[str, ParentLink]:
    """``{child name: ParentLink}`` for every source with spec.parent among ``sources``.

    The parent is found by name among ``sources`` (same namespace), else in the annotations the
    operator renders; a missing parent, a parent with its Postgres sink off and a cycle are refused
    with a ``SpecError`` naming ``spec.parent.source``.
    """
    by_name = {(s.metadata.namespace or "", s.name): s for s in sources}
    links: dict[str, ParentLink] = {}
    for child in sources:
        spec = child.spec.parent
        if spec is None:
            continue
        parent = by_name.get((child.metadata.namespace or "", spec.source))
        if parent is not None:
            _refuse_cycle(child, by_name)
            links[child.name] = link_to(child, parent)
            continue
        rendered = link_from_annotations(child)
        if rendered is None:
            names = ", ".join(sorted(s.name for s in sources if s is not child and _same_scope(s, child)))
            raise SpecError(
                _label(child),
                [
                    (
                        FIELD,
                        f"names {spec.source!r}, which is not among the sources given"
                        + (f" ({names})" if names else "")
                        + ": put the parent in the same file (another YAML document) or pass its file "
                        "with another -f",
                    )
                ],
            )
        links[child.name] = rendered
    return links


def _refuse_cycle(child: IngestionSource, by_name: dict[tuple[str, str], IngestionSource]) -> None:
    namespace = child.metadata.namespace or ""
    chain = [child.name]
    current = child
    while current.spec.parent is not None:
        nxt = by_name.get((namespace, current.spec.parent.source))
        if nxt is None:
            return
        if nxt.name in chain:
            cycle = " -> ".join([*chain[chain.index(nxt.name) :], nxt.name])
            raise SpecError(
                _label(child),
                [(FIELD, f"makes a cycle of parents ({cycle}); a parent must not depend on its children")],
            )
        chain.append(nxt.name)
        current = nxt


def run_order(sources: Sequence[IngestionSource]) -> list[IngestionSource]:
    """``sources`` with every parent before its children (otherwise in the order given).

    ``restlake run --until-caught-up`` runs them in this order: a child's pass reads its parent's
    rows from Postgres, so the parent must have landed first. Call ``resolve_parents`` first (it
    refuses cycles).
    """
    by_name = {s.name: s for s in sources}
    ordered: list[IngestionSource] = []
    placed: set[str] = set()

    def place(source: IngestionSource, depth: int = 0) -> None:
        if source.name in placed or depth > len(sources):
            return
        parent = source.spec.parent
        if parent is not None and parent.source in by_name:
            place(by_name[parent.source], depth + 1)
        placed.add(source.name)
        ordered.append(source)

    for source in sources:
        place(source)
    return ordered
