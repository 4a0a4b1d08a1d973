from __future__ import annotations

import pytest

from restlake.fetcher.records import RecordExtractor, RecordPathError, compile_path, is_missing


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
