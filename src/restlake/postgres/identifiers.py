"""Table names that come from a user's spec: validated against a strict pattern, then quoted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from restlake.errors import ConfigError

if TYPE_CHECKING:
    from psycopg import sql

# Lower-case unquoted Postgres identifiers only, at most 63 bytes (NAMEDATALEN - 1). Stricter than
# Postgres itself on purpose: a name that needs quoting to mean what it says is a spec mistake.
_PART = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class TableName:
    """A validated ``schema.table``."""

    schema: str
    table: str

    @classmethod
    def parse(cls, name: str, *, field: str = "spec.sinks.postgres.table") -> TableName:
        """Parse ``schema.table``; the error names ``field`` and the bad value."""
        parts = name.split(".") if isinstance(name, str) else []
        if len(parts) != 2 or not all(_PART.fullmatch(p) for p in parts):
            raise ConfigError(
                f"{field}: {name!r} is not a valid table name; expected schema.table, each part matching "
                f"{_PART.pattern} (lower-case letters, digits, underscore; not starting with a digit)"
            )
        return cls(parts[0], parts[1])

    def identifier(self) -> sql.Identifier:
        """The quoted ``"schema"."table"`` for composing SQL."""
        # Imported here: the operator validates table names (stream.json) without psycopg installed.
        from psycopg import sql

        return sql.Identifier(self.schema, self.table)

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"
