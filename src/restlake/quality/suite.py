"""The bronze checkpoint's expectation suite, derived from the spec (no Spark needed to build it).

Every source gets a default suite, even without ``spec.quality``:

- ``source``, ``external_id`` and ``idempotency_key`` are never null;
- ``unique:source,external_id,version``: no two bronze rows of the source share external_id and
  version key (see ``KEY_ROWS``);
- ``required:<field>`` for the JSON Schema's required properties, nested ones only where their
  parent object is present (as JSON Schema means it);
- ``type:<field>`` for every property with a declared ``type``: the JSON type found in the payload
  is one the schema allows (absent and null values are left to ``required``);

then the inline expectations of ``spec.quality.expectations`` whose meaning carries over to a whole
table, then the user's ``spec.quality.bronze.expectations`` in GX's own (type, kwargs) format.

Payload fields are checked on projections of the ``payload`` column (``Projection``), not on the
typed ``p_<name>`` columns: those are lenient casts (``"5"`` becomes 5, a wrong type becomes NULL),
while the payload is the record as the API sent it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.compatibility import pydantic as gx_pydantic
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.exceptions import ExpectationNotFoundError
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.registry import (
    get_expectation_impl,
    list_registered_expectation_implementations,
)
from great_expectations.expectations.row_conditions import Column

from restlake.contracts.source.quality import (
    GxExpectation,
    InSetExpectation,
    NotNullExpectation,
    RangeExpectation,
    RegexExpectation,
    UniqueExpectation,
    expectation_name,
)
from restlake.contracts.spec import IngestionSource
from restlake.errors import SpecError

# The number of the source's bronze rows (in the whole table, not only the rows validated) that
# share a row's (external_id, version key). The version key is coalesce(version, content_hash):
# ``version`` is NULL when the spec has no versionPath, and then every distinct content of a record
# is its own version, so (external_id, NULL) legitimately repeats. With a version, two rows of one
# version with different content mean the API changed a record without bumping its version. A
# count over the whole table, rather than GX's compound uniqueness over the validated rows, keeps
# the check exact when only the rows since the last run are validated.
KEY_ROWS = "bronze_key_rows"
KEY_NAME = "unique:source,external_id,version"
ID_COLUMNS = ("source", "external_id", "idempotency_key")
# Nested schemas are walked this deep; deeper fields stay unchecked (a suite per leaf of a large
# schema would cost one Spark job per expectation for little).
MAX_DEPTH = 4
# The JSON types a value may have for a declared JSON Schema type: every integer is a number.
_ALLOWED_TYPES = {
    "string": ("string",),
    "integer": ("integer",),
    "number": ("integer", "number"),
    "boolean": ("boolean",),
    "object": ("object",),
    "array": ("array",),
}
_UNSAFE = re.compile(r"[^a-z0-9_]")
ProjectionKind = Literal["text", "number", "json_type"]


class SuiteError(SpecError):
    """The bronze suite cannot be built from the spec; the problems name the spec field."""


@dataclass(frozen=True, slots=True)
class Projection:
    """A payload field projected to a column of the validated frame.

    ``text``: the value as a string (objects and arrays as JSON), NULL when absent or JSON null;
    ``number``: the value as a double, NULL when it is not a number; ``json_type``: the JSON type
    of the value (string, integer, number, boolean, object, array), NULL when absent or null.
    """

    column: str
    path: tuple[str, ...]
    kind: ProjectionKind

    @property
    def field(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation of the suite with its report name, origin (a spec path) and OL column."""

    name: str
    origin: str
    expectation: Expectation
    column: str | None


@dataclass
class BronzeSuite:
    """The suite of one source, plus the columns the validated frame must carry for it."""

    source: str
    checks: list[Check] = field(default_factory=list)
    projections: list[Projection] = field(default_factory=list)
    not_mapped: list[str] = field(default_factory=list)
    """Inline expectations with no table-wide equivalent (``unique``), reported, not checked."""

    @property
    def name(self) -> str:
        return f"restlake.bronze.{self.source}"

    def gx_suite(self) -> gx.ExpectationSuite:
        return gx.ExpectationSuite(name=self.name, expectations=[c.expectation for c in self.checks])

    def projection(self, path: Sequence[str], kind: ProjectionKind) -> Projection:
        """The projection of ``path`` as ``kind``, added on first use; column names never collide."""
        path = tuple(path)
        for existing in self.projections:
            if existing.path == path and existing.kind == kind:
                return existing
        prefix = {"text": "f_", "number": "n_", "json_type": "t_"}[kind]
        base = prefix + "__".join(_UNSAFE.sub("_", part.lower()) for part in path)
        taken = {p.column for p in self.projections}
        column, n = base, 2
        while column in taken:
            column, n = f"{base}_{n}", n + 1
        created = Projection(column, path, kind)
        self.projections.append(created)
        return created

    def add(self, name: str, origin: str, expectation: Expectation, column: str | None) -> None:
        meta = dict(expectation.meta or {})
        meta.setdefault("name", name)
        meta.setdefault("origin", origin)
        expectation.meta = meta
        self.checks.append(Check(name, origin, expectation, column))


def build_suite(source: IngestionSource) -> BronzeSuite:
    """The default suite of ``source``, then its inline and bronze expectations; raises ``SuiteError``."""
    suite = BronzeSuite(source.identity)
    for column in ID_COLUMNS:
        suite.add(f"not_null:{column}", "default", gxe.ExpectColumnValuesToNotBeNull(column=column), column)
    suite.add(
        KEY_NAME,
        "default",
        gxe.ExpectColumnValuesToBeBetween(column=KEY_ROWS, min_value=1, max_value=1),
        None,
    )
    if source.spec.schema_ is not None:
        _schema_checks(suite, source.spec.schema_.json_schema, (), None, 1)
    quality = source.spec.quality
    if quality is not None:
        for i, inline in enumerate(quality.expectations):
            _inline_check(suite, i, inline)
        problems: list[tuple[str, str]] = []
        for i, declared in enumerate(quality.bronze.expectations):
            try:
                suite.add(*_user_check(i, declared))
            except _Problem as exc:
                problems.append((exc.path, exc.message))
        if problems:
            raise SuiteError(source.name, problems)
    return suite


# ---------------------------------------------------------------------------------------------------
# From the JSON Schema
# ---------------------------------------------------------------------------------------------------


def _declared_types(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return []
    declared = schema.get("type")
    kinds = declared if isinstance(declared, list) else [declared]
    return [k for k in kinds if isinstance(k, str) and k in _ALLOWED_TYPES]


def _schema_checks(
    suite: BronzeSuite,
    schema: dict[str, Any],
    parent: tuple[str, ...],
    parent_type: Projection | None,
    depth: int,
) -> None:
    # A nested required field only binds where its parent is an object (JSON Schema applies
    # ``required`` to the instance at hand), hence the row condition on the parent's type.
    condition = {} if parent_type is None else _where_object(parent_type)
    required = schema.get("required")
    for name in required if isinstance(required, list) else []:
        if not isinstance(name, str):
            continue
        text = suite.projection((*parent, name), "text")
        suite.add(
            f"required:{text.field}",
            "spec.schema.jsonSchema",
            gxe.ExpectColumnValuesToNotBeNull(column=text.column, **condition),
            f"payload.{text.field}",
        )
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    for name in sorted(properties, key=str):
        sub = properties[name]
        declared = _declared_types(sub)
        if not declared:
            continue
        path = (*parent, str(name))
        kind = suite.projection(path, "json_type")
        allowed = sorted({t for d in declared for t in _ALLOWED_TYPES[d]})
        suite.add(
            f"type:{kind.field}",
            "spec.schema.jsonSchema",
            gxe.ExpectColumnValuesToBeInSet(column=kind.column, value_set=allowed),
            f"payload.{kind.field}",
        )
        if "object" in declared and depth < MAX_DEPTH and isinstance(sub, dict):
            _schema_checks(suite, sub, path, kind, depth + 1)


def _where_object(kind: Projection) -> dict[str, Any]:
    return {"row_condition": Column(kind.column) == "object"}


# ---------------------------------------------------------------------------------------------------
# From spec.quality.expectations (the inline gate's), where the meaning carries over
# ---------------------------------------------------------------------------------------------------


def _inline_check(suite: BronzeSuite, index: int, inline: Any) -> None:
    name = expectation_name(inline)
    origin = f"spec.quality.expectations[{index}]"
    # The same projections as the inline gate's: text for notNull/inSet/regex, a double for range,
    # so a record the gate passed passes here too.
    if isinstance(inline, UniqueExpectation):
        # Not mapped: the inline unique is within one micro-batch, and bronze keeps every version
        # of every record, so the same fields legitimately repeat across rows of one record; a
        # table-wide unique would flag every re-fetched version. Bronze's own key is checked by
        # the default suite; a table-wide rule belongs in spec.quality.bronze.expectations.
        suite.not_mapped.append(name)
        return
    path = tuple(inline.field.split("."))
    column = f"payload.{inline.field}"
    expectation: Expectation
    if isinstance(inline, NotNullExpectation):
        expectation = gxe.ExpectColumnValuesToNotBeNull(column=suite.projection(path, "text").column)
    elif isinstance(inline, InSetExpectation):
        expectation = gxe.ExpectColumnValuesToBeInSet(
            column=suite.projection(path, "text").column, value_set=[str(v) for v in inline.values]
        )
    elif isinstance(inline, RangeExpectation):
        expectation = gxe.ExpectColumnValuesToBeBetween(
            column=suite.projection(path, "number").column, min_value=inline.min, max_value=inline.max
        )
    elif isinstance(inline, RegexExpectation):
        expectation = gxe.ExpectColumnValuesToMatchRegex(
            column=suite.projection(path, "text").column, regex=inline.pattern
        )
    else:  # pragma: no cover - the spec's union is closed
        raise SuiteError(suite.source, [(f"{origin}.type", f"unknown expectation type {inline.type!r}")])
    suite.add(name, origin, expectation, column)


# ---------------------------------------------------------------------------------------------------
# From spec.quality.bronze.expectations (GX's format)
# ---------------------------------------------------------------------------------------------------


class _Problem(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _user_check(index: int, declared: GxExpectation) -> tuple[str, str, Expectation, str | None]:
    origin = f"spec.quality.bronze.expectations[{index}]"
    try:
        cls = get_expectation_impl(declared.type)
    except ExpectationNotFoundError:
        known = sorted(list_registered_expectation_implementations())
        close = difflib.get_close_matches(declared.type, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise _Problem(
            f"{origin}.type", f"unknown Great Expectations expectation type {declared.type!r}{hint}"
        ) from None
    kwargs = dict(declared.kwargs)
    meta = kwargs.pop("meta", None)
    try:
        expectation = cls(**kwargs, meta=dict(meta) if isinstance(meta, dict) else None)
    except gx_pydantic.ValidationError as exc:
        raise _Problem(*_first_error(origin, exc.errors())) from None
    except (TypeError, ValueError) as exc:
        raise _Problem(f"{origin}.kwargs", f"invalid arguments for {declared.type}: {exc}") from None
    column = kwargs.get("column")
    return declared.name or declared.type, origin, expectation, column if isinstance(column, str) else None


def _first_error(origin: str, errors: Iterable[Any]) -> tuple[str, str]:
    # GX's kwargs are pydantic v1 models: a union field reports one line per member; the first
    # error names the argument and says enough.
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part != "__root__"]
        path = f"{origin}.kwargs" + "".join(f".{part}" for part in loc)
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "value_error.extra":
            message = "not an argument of this expectation"
        return path, message
    return f"{origin}.kwargs", "invalid arguments"


def referenced_columns(expectation: Expectation) -> list[str]:
    """The frame columns a column, column-pair or multicolumn expectation is about.

    Table-level expectations (``expect_column_to_exist``, ``expect_table_columns_to_match_set``)
    name columns whose absence is what they check, so they name none here.
    """
    # Declared by each expectation class (column, column pair, table ...), not by the base class.
    if getattr(expectation, "domain_type", None) == MetricDomainTypes.TABLE:
        return []
    config = expectation.configuration.kwargs
    found = [config[k] for k in ("column", "column_A", "column_B") if isinstance(config.get(k), str)]
    listed = config.get("column_list")
    if isinstance(listed, (list, tuple)):
        found.extend(v for v in listed if isinstance(v, str))
    return found
