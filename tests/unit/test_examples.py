"""Every example in examples/ is a valid IngestionSource, so the docs cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from restlake.contracts.spec import load_source

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
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
