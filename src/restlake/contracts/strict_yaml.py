"""YAML loading that refuses a key given twice in one mapping.

PyYAML keeps the last of duplicate keys without a word, so a spec edited in two places silently runs
with only one of them. Merge keys (``<<: *base``) still override what they merge, as YAML intends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(ConstructorError):
    """A mapping names the same key twice; the marks point at both places."""


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises ``DuplicateKeyError`` instead of keeping the last duplicate."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key; the base class reports it
                continue
            if earlier is not key_node.start_mark:
                raise DuplicateKeyError(
                    None,
                    None,
                    f"duplicate key {key!r} (first given on line {earlier.line + 1}; "
                    "YAML would keep only the last one)",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def load_all(text: str) -> Iterator[Any]:
    """The documents of ``text``, like ``yaml.safe_load_all`` but refusing duplicate keys."""
    return yaml.load_all(text, Loader=StrictSafeLoader)
