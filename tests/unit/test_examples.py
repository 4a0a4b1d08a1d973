"""Every example in examples/ is a valid IngestionSource, so the docs cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from restlake.contracts.spec import load_source

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
DEMO_BASE = "http://127.0.0.1:8085"


def test_there_are_examples_for_every_pagination_style() -> None:
    styles = {load_source(path).spec.pagination.type for path in EXAMPLES}
    assert {"linkHeader", "cursor", "pageNumber", "offset"} <= styles


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(example: Path) -> None:
    source = load_source(example)
    assert source.name == example.stem
    if source.name.startswith("demo-"):
        assert source.spec.request.url.startswith(DEMO_BASE)
        assert source.spec.schema_ is not None
        assert source.spec.schema_.json_schema["required"] == ["id", "updated_at"]
        assert source.spec.incremental is None
