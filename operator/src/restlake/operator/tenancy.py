"""Where a source outside the operator's namespace may point its overrides.

Its identity (``<namespace>.<name>``) already keeps its default topic, lake paths, checkpoint and
Postgres rows apart from other namespaces' sources. ``spec.kafka.topic`` and ``sinks.*.path`` are
explicit overrides that would otherwise let a source read another namespace's topic or append to
another namespace's Delta table, so they must stay inside what the namespace owns:

- a topic: ``<topic prefix><namespace>.<anything>``, the prefix its default topics have;
- a lake path: ``<namespace>/<anything>``, or ``<kind>/<namespace>.<anything>`` (bronze,
  quarantine), the prefix its default tables have.

Sources in the operator's own namespace are the administrators' and keep every override. Postgres
needs no rule here: every row carries the source's identity, and the upsert key includes it.
"""

from __future__ import annotations

from restlake.contracts.spec import IngestionSource
from restlake.errors import SpecError
from restlake.operator.settings import OperatorSettings


def foreign_overrides(source: IngestionSource, settings: OperatorSettings) -> list[tuple[str, str]]:
    """``(field path, message)`` for each override that leaves the source's namespace."""
    namespace = source.metadata.namespace or ""
    if not namespace or (settings.release_namespace and namespace == settings.release_namespace):
        return []
    problems: list[tuple[str, str]] = []
    spec = source.spec
    topic = spec.kafka.topic if spec.kafka is not None else None
    own_topics = f"{settings.topic_prefix}{namespace}."
    if topic and not topic.startswith(own_topics):
        problems.append(
            (
                "spec.kafka.topic",
                f"a source in namespace {namespace} may only use topics named {own_topics}<anything>, "
                f"got {topic!r}; leave it out for the default {source.topic(settings.topic_prefix)!r}",
            )
        )
    for kind, path in (("bronze", spec.sinks.bronze.path), ("quarantine", spec.sinks.quarantine.path)):
        if path is None:
            continue
        clean = path.strip("/")
        if clean.startswith(f"{namespace}/") or clean.startswith(f"{kind}/{namespace}."):
            continue
        problems.append(
            (
                f"spec.sinks.{kind}.path",
                f"a source in namespace {namespace} may only write under {namespace}/ or "
                f"{kind}/{namespace}.<anything> in the lake, got {path!r}",
            )
        )
    return problems


def refuse_foreign_overrides(source: IngestionSource, settings: OperatorSettings, origin: str) -> None:
    """Raise ``SpecError`` naming every override that leaves the source's namespace."""
    problems = foreign_overrides(source, settings)
    if problems:
        raise SpecError(origin, problems)
