from __future__ import annotations

import pytest

from restlake.errors import ConfigError
from restlake.postgres.identifiers import TableName


@pytest.mark.parametrize(
    ("name", "schema", "table"),
    [("raw.api_events", "raw", "api_events"), ("_s.t1", "_s", "t1"), ("a." + "b" * 63, "a", "b" * 63)],
)
def test_valid_names_parse(name: str, schema: str, table: str) -> None:
    assert TableName.parse(name) == TableName(schema, table)
    assert str(TableName.parse(name)) == name


@pytest.mark.parametrize(
    "name",
    [
        "api_events",  # unqualified
        "a.b.c",
        "Raw.api_events",  # would need quoting
        "raw.1events",
        "raw.api-events",
        'raw."x"',
        "raw.x; DROP TABLE raw.api_events",
        "raw.x--",
        "raw.",
        ".x",
        "",
        "raw." + "b" * 64,  # longer than NAMEDATALEN - 1
        "raw.évents",
    ],
)
def test_invalid_names_are_rejected_with_field_and_value(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        TableName.parse(name)
    assert str(err.value).startswith(f"spec.sinks.postgres.table: {name!r} is not a valid table name")


def test_field_path_is_named() -> None:
    with pytest.raises(ConfigError, match=r"^pg_table: 'x' is not"):
        TableName.parse("x", field="pg_table")


def test_identifier_is_quoted() -> None:
    from psycopg import sql

    ident = TableName.parse("raw.api_events").identifier()
    assert ident == sql.Identifier("raw", "api_events")
    # as_string needs no connection for identifiers made of plain characters.
    assert ident.as_string(None) == '"raw"."api_events"'
