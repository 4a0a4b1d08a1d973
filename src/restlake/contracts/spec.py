"""The IngestionSource resource: one pydantic model read by `restlake run -f`, the operator and the CRD.

Its spec is assembled here from the parts in ``restlake.contracts.source`` (one module per concern:
auth, request, records, pagination, incremental, parent, polling, schema, quality, sinks, kafka,
egress, resources), with the rules that span several of them. YAML keys are camelCase (the
Kubernetes convention), Python attributes snake_case. Every model forbids unknown keys, so a typo is
an error naming its path. The CRD in ``crds/`` is generated from these models
(``restlake.contracts.crd``), so descriptions are the user documentation and cross-field rules come
with a CEL twin in ``x-kubernetes-validations`` that the API server enforces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, model_validator
from pydantic.alias_generators import to_snake

from restlake.contracts.api_version import API_GROUP, API_VERSION, ApiVersion
from restlake.contracts.documents import read_documents
from restlake.contracts.maintenance import Maintenance
from restlake.contracts.metadata import ObjectMeta
from restlake.contracts.model import SpecModel, field_error, model_rules
from restlake.contracts.patterns import URL_VARIABLE
from restlake.contracts.problems import problems_of, short, type_word
from restlake.contracts.source.auth import SecretRef
from restlake.contracts.source.egress import Egress
from restlake.contracts.source.incremental import Incremental
from restlake.contracts.source.kafka import DEAD_LETTER_SUFFIX, Kafka
from restlake.contracts.source.pagination import CursorPagination, NextUrlPagination, NoPagination, Pagination
from restlake.contracts.source.parent import Parent, url_variables
from restlake.contracts.source.polling import Poll, RateLimit
from restlake.contracts.source.quality import Quality
from restlake.contracts.source.records import Records
from restlake.contracts.source.request import Request
from restlake.contracts.source.resources import Resources
from restlake.contracts.source.schema import SchemaSpec
from restlake.contracts.source.sinks import Sinks
from restlake.contracts.source.status import IngestionSourceStatus
from restlake.contracts.source.stream import Stream
from restlake.contracts.values import Duration, JsonPath
from restlake.errors import SpecError
from restlake.settings import LakeSettings

# What callers reach through the resource's module: its loaders and model, and the parts a test or a
# script most often names next to it. Everything else is imported from its own module.
__all__ = [
    "API_GROUP",
    "API_VERSION",
    "IDENTITY_ANNOTATION",
    "KIND",
    "CursorPagination",
    "Duration",
    "IngestionSource",
    "IngestionSourceSpec",
    "JsonPath",
    "NextUrlPagination",
    "Quality",
    "SecretRef",
    "load_source",
    "load_sources",
    "parse_source",
    "qualified_identity",
    "url_variables",
]

KIND = "IngestionSource"
# Set by the operator on the source document it renders: the name every data-plane artefact (topic,
# lake paths, checkpoint, fetch state, the Postgres `source` value, metric labels) is keyed by.
IDENTITY_ANNOTATION = "restlake.io/identity"


_BODY_PATHS = ("cursorPath", "nextUrlPath", "totalPath", "hasMorePath")


class IngestionSourceSpec(SpecModel):
    """What to fetch, how, and where it lands."""

    model_config = model_rules(
        {
            "rule": "!has(self.quality) || !has(self.quality.bronze) || !has(self.sinks)"
            " || !has(self.sinks.bronze) || !has(self.sinks.bronze.enabled) || self.sinks.bronze.enabled"
            " || (!has(self.quality.bronze.schedule) && (!has(self.quality.bronze.expectations)"
            " || size(self.quality.bronze.expectations) == 0))",
            "message": "quality.bronze checks the bronze table, and sinks.bronze.enabled is false",
        },
        {
            # `in` is a CEL keyword; the API server exposes the property as __in__.
            "rule": "!has(self.pagination) || !has(self.pagination.__in__)"
            " || self.pagination.__in__ != 'body'"
            " || (has(self.request.method) && self.request.method == 'POST')",
            "message": "pagination.in body needs request.method POST",
            "fieldPath": ".pagination",
        },
        {
            "rule": "has(self.parent) || !self.request.url.matches('" + URL_VARIABLE + "')",
            "message": "request.url has a {variable}, which needs spec.parent",
            "fieldPath": ".request.url",
        },
        {
            "rule": "!has(self.parent) || self.request.url.findAll('" + URL_VARIABLE + "')"
            ".all(v, self.parent.bind.exists(k, '{' + k + '}' == v))",
            "message": "every {variable} of request.url must be bound in parent.bind",
            "fieldPath": ".parent.bind",
        },
        {
            "rule": "!has(self.parent) || self.parent.bind.all(k, self.request.url.contains('{' + k + '}'))",
            "message": "every parent.bind entry must be used as a {variable} in request.url",
            "fieldPath": ".parent.bind",
        },
        {
            "rule": "!has(self.parent) || !has(self.incremental) || !has(self.incremental.window)",
            "message": "a child source (spec.parent) cannot use incremental.window: each child URL "
            "starts from its own watermark",
            "fieldPath": ".incremental.window",
        },
        {
            "rule": "!self.request.url.matches('^[a-zA-Z]+://[^/?#]*[{}]')",
            "message": "a {variable} may only stand in the path or query of request.url, not in its host",
            "fieldPath": ".request.url",
        },
        {
            "rule": "!has(self.records) || !has(self.records.format) || self.records.format == 'json'"
            " || !has(self.pagination) || !("
            + " || ".join(f"has(self.pagination.{name})" for name in _BODY_PATHS)
            + ")",
            "message": "cursorPath, nextUrlPath, totalPath and hasMorePath need records.format json",
            "fieldPath": ".pagination",
        },
    )

    request: Request = Field(description="The HTTP request that returns the first page.")
    records: Records = Field(
        default_factory=Records, description="Where records are in a body, how to identify them."
    )
    pagination: Pagination = Field(
        default_factory=lambda: NoPagination(type="none"), description="How to get the next page."
    )
    incremental: Incremental | None = Field(None, description="Fetch only what changed since the last poll.")
    poll: Poll = Field(default_factory=Poll, description="How often to poll.")
    rate_limit: RateLimit = Field(default_factory=RateLimit, description="Client-side rate limit.")
    schema_: SchemaSpec | None = Field(
        None, alias="schema", description="JSON Schema the records must satisfy."
    )
    quality: Quality | None = Field(None, description="Data-quality expectations.")
    sinks: Sinks = Field(default_factory=Sinks, description="Where records land.")
    stream: Stream = Field(
        default_factory=Stream, description="Micro-batches of the stream job: trigger and size."
    )
    kafka: Kafka | None = Field(None, description="Overrides for the Kafka topic.")
    egress: Egress | None = Field(
        None,
        description="IP ranges the fetcher may reach when the installation renders egress NetworkPolicies.",
    )
    resources: Resources | None = Field(
        None, description="Kubernetes resources of the fetcher and Spark driver."
    )
    parent: Parent | None = Field(
        None,
        description="Makes this a child source: request.url is fetched once per record of the parent "
        "source, its {variables} filled from the record.",
    )
    maintenance: Maintenance | None = Field(
        None,
        description="OPTIMIZE, VACUUM and batch-ledger pruning of this source (restlake maintenance run, "
        "or on a schedule with restlake flows serve).",
    )

    @model_validator(mode="after")
    def _bronze_checks_need_bronze(self) -> IngestionSourceSpec:
        checks = self.quality.bronze if self.quality is not None else None
        if checks is not None and (checks.schedule or checks.expectations) and not self.sinks.bronze.enabled:
            raise field_error(
                "quality.bronze",
                "checks the bronze table, and sinks.bronze.enabled is false: enable the bronze sink "
                "or remove quality.bronze",
            )
        return self

    @model_validator(mode="after")
    def _url_variables_bound(self) -> IngestionSourceSpec:
        url = self.request.url
        names = url_variables(url)
        if urlsplit(url).netloc.find("{") >= 0 or urlsplit(url).netloc.find("}") >= 0:
            # Credentials go to request.url's origin: a parent record must never choose the host.
            raise field_error(
                "request.url",
                "a {variable} may only stand in the path or query, not in the host: credentials go "
                "to request.url's origin, which a parent record must not choose",
            )
        if self.parent is None:
            if names:
                raise field_error(
                    "request.url",
                    f"has the template variable {{{names[0]}}}, which needs spec.parent (its bind "
                    "says where a parent record holds the value)",
                )
            return self
        if self.incremental is not None and self.incremental.window is not None:
            # A windowed first load walks one URL's history; a child has one URL per parent record,
            # each with its own watermark, and windows per child are not defined (yet).
            raise field_error(
                "incremental.window",
                "a child source (spec.parent) cannot use incremental.window: each child URL starts "
                "from its own watermark; remove window, start and endParam",
            )
        unbound = [n for n in names if n not in self.parent.bind]
        if unbound:
            raise field_error(
                "parent.bind",
                f"has no entry for {{{unbound[0]}}} of request.url; bind it to a JSONPath into the "
                f"parent's records, e.g. {unbound[0]}: $.{unbound[0]}",
            )
        unused = [k for k in self.parent.bind if k not in names]
        if unused:
            raise field_error(
                f"parent.bind.{unused[0]}",
                f"is not used: request.url has no {{{unused[0]}}}; remove the entry or use it in the URL",
            )
        return self

    @model_validator(mode="after")
    def _pagination_fits_request_and_format(self) -> IngestionSourceSpec:
        pagination = self.pagination
        if getattr(pagination, "in_", "query") == "body" and self.request.method != "POST":
            raise field_error(
                "pagination.in",
                f"body needs request.method POST, got {self.request.method!r} (or use in: query)",
            )
        if self.records.format != "json":
            for name in _BODY_PATHS:
                field = to_snake(name)
                if getattr(pagination, field, None) is not None:
                    raise field_error(
                        f"pagination.{name}",
                        f"reads a JSON body, but records.format is {self.records.format}; "
                        "use linkHeader, pageNumber, offset or cursorHeader/cursorFromLastRecord",
                    )
        return self


class IngestionSource(SpecModel):
    """A REST API ingested into Kafka, a bronze Delta table and Postgres."""

    api_version: ApiVersion = Field(description=f"{API_VERSION}.")
    kind: Literal["IngestionSource"] = Field(description="IngestionSource.")
    metadata: ObjectMeta = Field(description="Name, namespace, labels and annotations.")
    spec: IngestionSourceSpec = Field(description="What to fetch, how, and where it lands.")
    status: IngestionSourceStatus | None = Field(None, description="What the operator observed.")

    @model_validator(mode="after")
    def _own_identity(self) -> IngestionSource:
        # Only the two identities the object itself can have: an annotation naming another
        # namespace's source would share its topic, lake paths and Postgres rows.
        claimed = self.metadata.annotations.get(IDENTITY_ANNOTATION)
        allowed = {self.metadata.name, qualified_identity(self.metadata.namespace or "", self.metadata.name)}
        if claimed is not None and claimed not in allowed:
            raise field_error(
                f"metadata.annotations.{IDENTITY_ANNOTATION}",
                f"must be {self.metadata.name!r} or <namespace>.{self.metadata.name}, got {claimed!r}; "
                "leave it out, the operator sets it",
            )
        return self

    @model_validator(mode="after")
    def _not_its_own_parent(self) -> IngestionSource:
        parent = self.spec.parent
        if parent is not None and parent.source == self.metadata.name:
            raise field_error(
                "spec.parent.source",
                f"names this source itself ({parent.source!r}); a parent is another IngestionSource",
            )
        return self

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def identity(self) -> str:
        """What the source's data is keyed by: topic, lake paths, checkpoint, fetch state, the Postgres
        ``source`` value and metric labels.

        The name, unless the ``restlake.io/identity`` annotation says otherwise; the operator sets
        it to ``<namespace>.<name>`` for sources outside its own namespace (see ``operator/README.md``),
        so same-named sources in two namespaces never share data. `restlake run -f` uses the name.
        """
        return self.metadata.annotations.get(IDENTITY_ANNOTATION) or self.name

    def topic(self, prefix: str = "restlake.") -> str:
        """The Kafka topic: ``spec.kafka.topic``, else ``<prefix><identity>``."""
        if self.spec.kafka is not None and self.spec.kafka.topic:
            return self.spec.kafka.topic
        return f"{prefix}{self.identity}"

    def dead_letter_topic(self, prefix: str = "restlake.") -> str:
        """Where the fetcher sends pages it could not use: ``<topic>.dlq``."""
        return self.topic(prefix) + DEAD_LETTER_SUFFIX

    def bronze_path(self, lake_root: str) -> str:
        """Bronze table: ``spec.sinks.bronze.path`` (relative to the lake root), else bronze/<identity>."""
        return _table_path(lake_root, self.spec.sinks.bronze.path, "bronze", self.identity)

    def quarantine_path(self, lake_root: str) -> str:
        """Quarantine table location, like ``bronze_path`` under ``quarantine/<identity>``."""
        return _table_path(lake_root, self.spec.sinks.quarantine.path, "quarantine", self.identity)

    def checkpoint_path(self, lake_root: str) -> str:
        """Spark checkpoint location of the source's stream: ``<lake root>/_checkpoints/<identity>``."""
        return LakeSettings(root=lake_root).table_uri("_checkpoints", self.identity)


def qualified_identity(namespace: str, name: str) -> str:
    """``<namespace>.<name>``: both are DNS-1123 labels (no dots), so it is unambiguous, never equal to
    a bare name, and valid as it is in a topic name, a path segment and a Postgres text value."""
    return f"{namespace}.{name}"


def _table_path(lake_root: str, explicit: str | None, kind: str, name: str) -> str:
    lake = LakeSettings(root=lake_root)
    if explicit is None:
        return lake.table_uri(kind, name)
    if "://" in explicit or Path(explicit).is_absolute():
        return explicit
    return lake.table_uri(*Path(explicit).parts)


# ---------------------------------------------------------------------------------------------------
# Loading and error rendering
# ---------------------------------------------------------------------------------------------------


def parse_source(document: Any, origin: str) -> IngestionSource:
    """Validate one parsed YAML/JSON document; ``origin`` (a file, ``file#2``, ...) names it in errors.

    Only camelCase keys are accepted, exactly what the API server accepts, so a file that
    `restlake run -f` takes is one `kubectl apply -f` takes too.
    """
    if not isinstance(document, dict):
        raise SpecError(origin, [("<document>", f"must be a mapping, got {type_word(document)}")])
    name = document.get("metadata", {}).get("name") if isinstance(document.get("metadata"), dict) else None
    label = f"{name} ({origin})" if isinstance(name, str) and name else origin
    # A different kind would only produce a flood of unrelated field errors; say the one thing that matters.
    header = [
        (key, "required" if key not in document else f"must be {want!r}, got {short(document[key])}")
        for key, want in (("apiVersion", API_VERSION), ("kind", KIND))
        if document.get(key) != want
    ]
    if header:
        raise SpecError(label, header)
    try:
        return IngestionSource.model_validate(document, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise SpecError(label, problems_of(exc, IngestionSource)) from None


def load_sources(path: Path | str) -> list[IngestionSource]:
    """Every IngestionSource of a (multi-document) YAML file; the first invalid one raises ``SpecError``."""
    return [parse_source(doc, origin) for origin, doc in read_documents(path)]


def load_source(path: Path | str) -> IngestionSource:
    """The one IngestionSource of a YAML file."""
    documents = read_documents(path)
    if len(documents) != 1:
        raise SpecError(
            str(path), [("<document>", f"expected one IngestionSource document, found {len(documents)}")]
        )
    origin, doc = documents[0]
    return parse_source(doc, origin)
