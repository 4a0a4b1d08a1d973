"""A pydantic ValidationError as the problems a user can act on: ``(field path, message)``.

Paths are the YAML's (camelCase, ``[i]`` list indices, no union-tag levels) and messages say what
was expected and what was found, in words rather than regular expressions.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from restlake.contracts.patterns import PATTERN_HINTS


def problems_of(exc: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    """``(field path, message)`` per error of validating ``root``, paths in the YAML's camelCase with
    ``[i]`` list indices."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        path, model, union = _render_loc(error["loc"], root)
        kind = error["type"]
        ctx = error.get("ctx") or {}
        value = error.get("input")
        if kind == "restlake_field":
            if ctx.get("field"):
                path = _join(path, str(ctx["field"]))
            path += str(ctx.get("subpath", ""))
            message = str(ctx["message"])
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            tags = ", ".join(_tags(union)) if union is not None else str(ctx.get("expected_tags", ""))
            path = _join(path, "type")
            got = ctx.get("tag")
            message = f"must be one of {tags}, got {got!r}" if got is not None else f"required: one of {tags}"
        else:
            message = _message(kind, error["msg"], ctx, value, path, model)
        if (path, message) not in problems:
            problems.append((path, message))
    return problems


def _message(kind: str, msg: str, ctx: dict[str, Any], value: Any, path: str, model: Any) -> str:
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        # The value is not shown: an unknown key may well be where someone pasted a token.
        unknown = path.rsplit(".", 1)[-1]
        known = _aliases(model) if model is not None else []
        close = difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
        if not close:  # case and snake_case slips (cursorpath, cursor_path) score low in difflib
            close = [k for k in known if k.lower() == unknown.replace("_", "").lower()]
        return "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping, got {type_word(value)}"
    if kind == "list_type":
        return f"must be a list, got {type_word(value)}"
    if kind == "string_type":
        if isinstance(value, (dict, list)) or value is None:
            return f"must be a string, got {type_word(value)}"
        return f'must be a string, got {short(value)} (quote it in YAML: "{value}")'
    if kind == "string_pattern_mismatch":
        hint = PATTERN_HINTS.get(str(ctx.get("pattern")), f"must match {ctx.get('pattern')}")
        return f"{hint}, got {short(value)}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {short(value)}"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    text = (
        msg.replace("Input should be", "must be")
        .replace("String should", "must")
        .replace("List should", "must")
    )
    text = text.replace("Value should", "must")
    if not isinstance(value, (dict, list)) and " got " not in text:
        text += f", got {short(value)}"
    return text


def short(value: Any) -> str:
    """A value as an error message shows it: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def type_word(value: Any) -> str:
    """What a value is, for "must be a mapping, got a list"."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return short(value)


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def subpath(parts: Any) -> str:
    """A JSON Schema error path (``exc.path``) in the field-path notation: ``.a[0].b``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` until a model, a container or a real union is left."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return typing.Union[tuple(members)]  # noqa: UP007 - built from a runtime tuple
            tp = members[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_models(tp: Any) -> list[type[BaseModel]] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [_unwrap(a) for a in typing.get_args(tp)]
        if members and all(_is_model(m) for m in members):
            return members
    return None


def _tags(union: list[type[BaseModel]]) -> list[str]:
    return [typing.get_args(m.model_fields["type"].annotation)[0] for m in union]


def _aliases(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _field_by_alias(model: type[BaseModel], alias: str) -> Any:
    for name, info in model.model_fields.items():
        if (info.alias or name) == alias:
            return info.annotation
    return None


def _render_loc(
    loc: tuple[int | str, ...], root: type[BaseModel]
) -> tuple[str, Any, list[type[BaseModel]] | None]:
    """Render a pydantic loc as ``spec.quality.expectations[2].field``, skipping union tags.

    Also returns the model the last key was looked up in (for did-you-mean) and the union
    type at the end of the path, if any (for tag errors).
    """
    path = ""
    current: Any = root
    parent: Any = None
    for item in loc:
        current = _unwrap(current)
        union = _union_models(current)
        if union is not None and isinstance(item, str):
            # A discriminated union puts the tag in the loc; YAML has no such level.
            current = next((m for m in union if _tags([m])[0] == item), None)
            continue
        if (
            union is None
            and isinstance(item, str)
            and typing.get_origin(current) in (typing.Union, types.UnionType)
        ):
            continue  # a smart-mode union names the member it tried (`int`, `str`); YAML has no such level
        if isinstance(item, int):
            path += f"[{item}]"
            args = typing.get_args(current)
            current = args[0] if args else None
        elif _is_model(current):
            parent = current
            path = _join(path, str(item))
            current = _field_by_alias(current, str(item))
        elif typing.get_origin(current) is dict:
            path = _join(path, str(item))
            current = typing.get_args(current)[1]
        else:
            path = _join(path, str(item))
            current = None
    return path, parent, _union_models(_unwrap(current)) if current is not None else None
