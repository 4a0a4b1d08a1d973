"""The schema compatibility checker: each kind of narrowing found, widenings allowed, modes obeyed."""

from __future__ import annotations

from typing import Any

import pytest

from restlake.operator.compatibility import check

BASE: dict[str, Any] = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "integer"},
        "state": {"type": "string", "enum": ["open", "closed"]},
        "title": {"type": "string", "maxLength": 200},
        "amount": {"type": "number", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


def changed(**props: Any) -> dict[str, Any]:
    return {**BASE, "properties": {**BASE["properties"], **props}}


def messages(old: dict[str, Any], new: dict[str, Any], mode: str = "BACKWARD") -> list[str]:
    return [str(p) for p in check(old, new, mode)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (
            {**BASE, "required": ["id", "title"]},
            "spec.schema.jsonSchema.required: new required field 'title': "
            "records without it would be rejected",
        ),
        (
            changed(amount={"type": "integer", "minimum": 0}),
            "spec.schema.jsonSchema.properties.amount.type: "
            "no longer accepts number (was 'number', now 'integer')",
        ),
        (
            changed(state={"type": "string", "enum": ["open"]}),
            "spec.schema.jsonSchema.properties.state.enum: no longer allows ['closed']",
        ),
        (
            changed(title={"type": "string", "maxLength": 100}),
            "spec.schema.jsonSchema.properties.title.maxLength: lowered from 200 to 100",
        ),
        (
            changed(amount={"type": "number", "minimum": 1}),
            "spec.schema.jsonSchema.properties.amount.minimum: raised from 0 to 1",
        ),
        (
            changed(tags={"type": "array", "items": {"type": "integer"}}),
            "spec.schema.jsonSchema.properties.tags.items.type: "
            "no longer accepts string (was 'string', now 'integer')",
        ),
        (
            changed(title={"type": "string", "maxLength": 200, "pattern": "^[A-Z]"}),
            "spec.schema.jsonSchema.properties.title.pattern: changed from 'none' to '^[A-Z]'",
        ),
        (
            {
                **BASE,
                "additionalProperties": False,
                "properties": {k: v for k, v in BASE["properties"].items() if k != "tags"},
            },
            "spec.schema.jsonSchema.properties.tags: removed while additionalProperties is false: records "
            "carrying it would be rejected",
        ),
    ],
    ids=[
        "new-required",
        "type-narrowed",
        "enum-shrunk",
        "max-lowered",
        "min-raised",
        "items",
        "pattern",
        "closed-removal",
    ],
)
def test_backward_refuses_narrowing(new: dict[str, Any], expected: str) -> None:
    assert expected in messages(BASE, new)


@pytest.mark.parametrize(
    "new",
    [
        BASE,
        changed(note={"type": "string"}),  # a new optional field
        {**BASE, "required": []},  # a required field made optional
        changed(id={"type": "number"}),  # integer → number widens
        changed(id={"type": ["integer", "string"]}),
        changed(state={"type": "string", "enum": ["open", "closed", "draft"]}),
        changed(state={"type": "string"}),  # enum dropped
        changed(title={"type": "string"}),  # bound dropped
        {k: v for k, v in BASE.items() if k != "properties"},  # fields no longer described
    ],
    ids=[
        "same",
        "new-optional",
        "optional",
        "int-to-number",
        "type-union",
        "enum-grown",
        "enum-dropped",
        "bound-dropped",
        "properties-dropped",
    ],
)
def test_backward_allows_widening(new: dict[str, Any]) -> None:
    assert messages(BASE, new) == []


def test_forward_is_backward_reversed() -> None:
    wider = changed(note={"type": "string"}, state={"type": "string"})
    assert messages(BASE, wider, "FORWARD") == [
        "spec.schema.jsonSchema.properties.state.enum: FORWARD: restricts values to ['open', 'closed'] "
        "where any value was allowed"
    ]
    assert messages(BASE, wider, "BACKWARD") == []
    assert messages(BASE, {**BASE, "required": ["id", "title"]}, "FORWARD") == []


def test_full_checks_both_directions_and_none_allows_all() -> None:
    narrower = {**BASE, "required": ["id", "title"]}
    assert len(messages(BASE, narrower, "FULL")) == 1
    assert len(messages(narrower, BASE, "FULL")) == 1
    assert messages(BASE, narrower, "NONE") == []


def test_first_schema_and_removed_schema_are_always_allowed() -> None:
    assert check(None, BASE, "BACKWARD") == []
    assert check(BASE, None, "BACKWARD") == []
