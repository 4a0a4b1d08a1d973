"""The sync's SQL is Snowflake SQL: parsed by sqlglot's Snowflake dialect (no emulator involved), its
identifiers refused unless unquoted-safe, every value a bind parameter."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from restlake.jobs.spark.snowflake import sql

STATEMENTS = {
    "create_target": sql.create_target("ANALYTICS.RAW.API_EVENTS"),
    "create_ledger": sql.create_ledger("ANALYTICS.RAW.RESTLAKE_LOADS"),
    "create_stage": sql.create_stage("RESTLAKE_STAGE_1"),
    "drop_stage": sql.drop_stage("RESTLAKE_STAGE_1"),
    "loaded_up_to": sql.loaded_up_to("ANALYTICS.RAW.RESTLAKE_LOADS"),
    "record_load": sql.record_load("ANALYTICS.RAW.RESTLAKE_LOADS"),
    "merge": sql.merge("ANALYTICS.RAW.API_EVENTS", "RESTLAKE_STAGE_1"),
}


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_each_statement_parses_as_snowflake_sql(name: str) -> None:
    # pyformat placeholders become literals for the parser; the connector binds them client-side.
    text = STATEMENTS[name].replace("%(", "'").replace(")s", "'")
    parsed = sqlglot.parse_one(text, read="snowflake", error_level=sqlglot.ErrorLevel.RAISE)
    assert parsed is not None


def test_the_merge_keys_on_source_and_external_id_and_keeps_the_newest() -> None:
    merge = sqlglot.parse_one(STATEMENTS["merge"].replace("%(", "'").replace(")s", "'"), read="snowflake")
    assert isinstance(merge, exp.Merge)
    on = merge.args["on"].sql(dialect="snowflake")
    assert on == "t.SOURCE = s.SOURCE AND t.EXTERNAL_ID = s.EXTERNAL_ID"
    text = STATEMENTS["merge"]
    assert "QUALIFY ROW_NUMBER() OVER" in text
    assert (
        "ORDER BY VERSION_TS DESC NULLS LAST, VERSION_NUM DESC NULLS LAST, FETCHED_AT DESC, CONTENT_HASH"
        in text
    )
    assert "t.CONTENT_HASH IS DISTINCT FROM s.CONTENT_HASH" in text


@pytest.mark.parametrize(
    "name", ["RAW.API EVENTS", "A.B.C.D", "X;DROP TABLE Y", '"QUOTED"', "1TABLE", "A..B", ""]
)
def test_identifiers_that_need_quoting_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an unquoted Snowflake identifier"):
        sql.create_target(name)


def test_values_are_bind_parameters_only() -> None:
    assert "%(source)s" in STATEMENTS["loaded_up_to"] and "'" not in STATEMENTS["loaded_up_to"]
    assert "%(load_id)s" in STATEMENTS["merge"]
