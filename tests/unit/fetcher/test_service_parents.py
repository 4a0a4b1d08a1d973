"""FetcherService and `restlake run` with child sources: parents resolved before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from restlake.cli.main import app
from restlake.contracts.spec import load_sources
from restlake.errors import ConfigError, SpecError
from restlake.fetcher.children import ChildSourceFetcher
from restlake.fetcher.parent_rows import MemoryParentRows
from restlake.fetcher.poller import SourceFetcher
from restlake.fetcher.service import FetcherService
from restlake.fetcher.state import MemoryStateStore

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "demo-parent-child.yaml"


class _Producer:
    def flush(self, timeout: float) -> None:
        return None


def test_children_are_wrapped_and_plain_sources_are_not() -> None:
    parent, child = load_sources(EXAMPLE)
    service = FetcherService(
        [child, parent],
        producer=_Producer(),  # type: ignore[arg-type]
        state_store=MemoryStateStore(),
        parent_rows=MemoryParentRows(),
    )
    wrapped, plain = service.fetchers
    assert isinstance(wrapped, ChildSourceFetcher) and isinstance(plain, SourceFetcher)
    assert (wrapped.name, wrapped.link.identity) == (child.name, parent.name)
    # One limiter for all of a child's URLs: the child's own.
    assert wrapped.fetcher.limiter is not plain.limiter


def test_a_child_without_its_parent_is_refused_naming_the_field() -> None:
    _, child = load_sources(EXAMPLE)
    with pytest.raises(SpecError) as info:
        FetcherService([child], producer=_Producer(), state_store=MemoryStateStore())  # type: ignore[arg-type]
    assert info.value.problems[0][0] == "spec.parent.source"


def test_a_child_needs_postgres_for_its_parents_records() -> None:
    with pytest.raises(ConfigError, match="reads its parent's records from Postgres"):
        FetcherService(
            load_sources(EXAMPLE),
            producer=_Producer(),  # type: ignore[arg-type]
            state_store=MemoryStateStore(),
        )


def test_run_refuses_a_missing_parent_before_starting_anything(tmp_path: Path) -> None:
    child = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d][1]
    path = tmp_path / "child.yaml"
    path.write_text(yaml.safe_dump(child))
    result = CliRunner().invoke(app, ["run", "-f", str(path), "--until-caught-up"])
    assert result.exit_code == 2, result.output
    assert "spec.parent.source: names 'demo-parent-child-repos', which is not among the sources given" in (
        result.stderr
    )
