"""Every example in examples/ is a valid IngestionSource, so the docs cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from restlake.contracts.parents import resolve_parents, run_order
from restlake.contracts.spec import load_source, load_sources

ALL_FILES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml"))
# One source per file, but for a parent and its children, which run together from one file.
EXAMPLES = [path for path in ALL_FILES if len(load_sources(path)) == 1]
MULTI = [path for path in ALL_FILES if path not in EXAMPLES]
DEMO_BASE = "http://127.0.0.1:8085"


def test_there_are_examples_for_every_pagination_style() -> None:
    styles = {load_source(path).spec.pagination.type for path in EXAMPLES}
    assert {"linkHeader", "nextUrl", "cursor", "pageNumber", "offset"} <= styles


def test_there_are_examples_for_every_request_and_body_pattern() -> None:
    specs = {path.stem: load_source(path).spec for path in EXAMPLES}
    assert {spec.records.format for spec in specs.values()} == {"json", "jsonl", "csv"}
    assert specs["demo-notion"].request.method == "POST"
    assert specs["demo-notion"].pagination.in_ == "body"  # type: ignore[union-attr]
    assert specs["demo-stripe"].pagination.cursor_from_last_record == "$.id"  # type: ignore[union-attr]
    assert specs["demo-hal"].pagination.next_url_path == "$._links.next.href"  # type: ignore[union-attr]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(example: Path) -> None:
    source = load_source(example)
    assert source.name == example.stem
    if source.name.startswith("demo-"):
        assert source.spec.request.url.startswith(DEMO_BASE)
        assert source.spec.schema_ is not None
        assert source.spec.schema_.json_schema["required"] == ["id", "updated_at"]
        # Only the windows example is incremental: the others show one pattern each, unfiltered.
        assert (source.spec.incremental is None) == (source.name != "demo-windows")


def test_the_windows_example_walks_time_windows() -> None:
    incremental = load_source(Path(EXAMPLES[0]).parent / "demo-windows.yaml").spec.incremental
    assert incremental is not None
    assert (incremental.window, incremental.start, incremental.end_param) == (
        "7d",
        "2023-12-01T00:00:00Z",
        "until",
    )


def test_the_parent_child_example_runs_parent_first_and_binds_every_variable() -> None:
    assert [p.name for p in MULTI] == ["demo-parent-child.yaml"]
    sources = load_sources(MULTI[0])
    assert [s.name for s in sources] == ["demo-parent-child-repos", "demo-parent-child-issues"]
    links = resolve_parents(sources)
    assert list(links) == ["demo-parent-child-issues"]
    link = links["demo-parent-child-issues"]
    assert (link.identity, link.table) == ("demo-parent-child-repos", "raw.api_events")
    assert link.bind == {"owner": "$.owner.login", "repo": "$.name"}
    assert [s.name for s in run_order(list(reversed(sources)))] == [s.name for s in sources]


@pytest.mark.parametrize("example", MULTI, ids=lambda p: p.name)
def test_multi_document_example_validates(example: Path) -> None:
    for source in load_sources(example):
        assert source.name.startswith(f"{example.stem}-")
        assert source.spec.request.url.startswith(DEMO_BASE)
        assert source.spec.schema_ is not None
        assert source.spec.schema_.json_schema["required"] == ["id", "updated_at"]
        # A child's incremental watermark is per parent record: part of what the example shows.
        assert source.spec.incremental is None or source.spec.parent is not None
