from __future__ import annotations

import pytest

from restlake.fetcher.records import (
    LineFormatError,
    RecordExtractor,
    RecordPathError,
    compile_path,
    is_missing,
    line_of,
    parse_lines,
)


def test_simple_and_complex_paths_agree() -> None:
    doc = {"data": {"items": [{"id": 1}, {"id": 2}]}, "odd-key": 3}
    assert compile_path("$.data.items")(doc) == [{"id": 1}, {"id": 2}]
    assert compile_path("$['odd-key']")(doc) == 3
    assert compile_path("$.data.items[*].id")(doc) == [1, 2]  # jsonpath-ng path
    assert is_missing(compile_path("$.nope")(doc))


def test_extractor_ids_versions_and_single_object() -> None:
    ex = RecordExtractor("$.results", "$.id", "$.meta.updated")
    assert ex.records({"results": [{"id": 7.0, "meta": {"updated": 12}}]}) == [
        {"id": 7.0, "meta": {"updated": 12}}
    ]
    assert ex.external_id({"id": 7.0}) == "7"
    assert ex.external_id({"id": {"nested": 1}}) is None  # not a scalar: falls back to the content hash
    assert ex.version({"meta": {"updated": 12}}) == "12"
    assert ex.records({"results": {"id": 1}}) == [{"id": 1}]
    assert ex.records({}) == []
    with pytest.raises(ValueError, match="points at a str"):
        ex.records({"results": "oops"})


def test_bad_path_names_the_path() -> None:
    with pytest.raises(RecordPathError, match=r"\$\.\[\["):
        compile_path("$.[[")


def test_json_lines_skip_blank_lines_and_name_the_bad_line() -> None:
    assert parse_lines('{"id": 1}\n\n{"id": 2}\n[3]\n', "jsonl") == [{"id": 1}, {"id": 2}, [3]]
    assert parse_lines("", "jsonl") == []
    with pytest.raises(LineFormatError, match=r"^line 3: not a JSON value") as info:
        parse_lines('{"id": 1}\n{"id": 2}\n{"id": 3, "na\n', "jsonl")
    assert info.value.line == 3


def test_csv_rows_become_string_records_keyed_by_the_header() -> None:
    text = 'id,name,note\r\n1,a,"two\nlines"\r\n2,b,\r\n'
    assert parse_lines(text, "csv") == [
        {"id": "1", "name": "a", "note": "two\nlines"},
        {"id": "2", "name": "b", "note": ""},
    ]
    assert parse_lines("id,name\n", "csv") == []  # a header alone is an empty page
    with pytest.raises(LineFormatError, match=r"^line 4: 1 values for the header's 2 columns$"):
        parse_lines("id,name\n1,a\n2,b\n3\n", "csv")
    with pytest.raises(LineFormatError, match=r"^line 1: the header row repeats a column name"):
        parse_lines("id,id\n1,2\n", "csv")
    with pytest.raises(ValueError, match="not a line format"):
        parse_lines("{}", "json")


def test_each_line_record_keeps_the_line_it_was_read_from() -> None:
    jsonl = parse_lines('{"id": 1}\n\n{"id": 2}\n{"id": 3}\n', "jsonl")
    assert list(jsonl) == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert [line_of(jsonl, i) for i in range(3)] == [1, 3, 4]
    # A CSV record's line is where its row starts: the header is line 1, a quoted value spans two.
    table = parse_lines('id,name\n1,a\n2,"b\nc"\n\n3,d\n', "csv")
    assert [r["id"] for r in table] == ["1", "2", "3"]
    assert [line_of(table, i) for i in range(3)] == [2, 3, 6]
    # The records path `$` hands the very list to the poller, lines included.
    assert line_of(RecordExtractor("$", "$.id", None).records(table), 2) == 6


def test_a_json_document_has_no_line() -> None:
    assert line_of([{"id": 1}], 0) is None


def test_the_envelope_carries_the_line_only_when_there_is_one() -> None:
    from restlake.contracts.envelope import Envelope, RequestInfo

    plain = RequestInfo(url="http://api/x", status=200)
    lined = plain.model_copy(update={"line": 7})
    wrap = {"source": "s", "payload": {"id": 1}, "external_id": "1", "version": None}
    old = Envelope.wrap(request=plain, **wrap).kafka_value()
    assert b'"line"' not in old  # envelopes of JSON documents keep their bytes
    assert b'"line":7' in Envelope.wrap(request=lined, **wrap).kafka_value()
    # An envelope written before the field existed still reads, without a line.
    assert Envelope.model_validate_json(old).request.line is None
