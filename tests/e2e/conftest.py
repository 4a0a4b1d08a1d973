"""Fixtures of the kind e2e: the cluster `make e2e` built, kubectl and helm, figures, diagnostics.

The tests of a module are steps of one story (install, ingest, kill, upgrade, delete): a failed step
skips the ones after it with its name, and its report carries the pods' describe and logs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from kube import Kube, load_module  # noqa: E402 - tests/e2e is not a package

INFRA = "restlake-infra"  # Kafka, Postgres, MinIO, the demo API, Prometheus
RELEASE_NS = "restlake-e2e"  # the chart's release and the IngestionSources
RELEASE = "restlake"
KUBECONFIG_ENV = "RESTLAKE_E2E_KUBECONFIG"
FIGURES_ENV = "RESTLAKE_E2E_FIGURES"

_FAILED: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "steps: the module's tests are ordered steps; a failure skips the rest"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not (report.failed and call.when == "call"):
        return
    if "kube" in getattr(item, "fixturenames", ()):
        kube: Kube = item.funcargs["kube"]  # type: ignore[attr-defined]
        try:
            report.sections.append(("kubernetes state", kube.diagnose([RELEASE_NS, INFRA])))
        except Exception as exc:  # the report must still say what failed
            report.sections.append(("kubernetes state", f"could not collect: {exc}"))
    if item.get_closest_marker("steps"):
        _FAILED.setdefault(str(item.path), item.name)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("steps") and str(item.path) in _FAILED:
        pytest.skip(f"an earlier step failed: {_FAILED[str(item.path)]}")


@pytest.fixture(scope="session")
def kube() -> Kube:
    path = os.environ.get(KUBECONFIG_ENV)
    if not path:
        pytest.skip(f"no kind cluster: run `make e2e` (it builds one and sets {KUBECONFIG_ENV})")
    gotools = load_module("gotools", REPO / "tests" / "k8s" / "gotools.py")
    kubectl = os.environ.get("RESTLAKE_E2E_KUBECTL") or shutil.which("kubectl")
    if not kubectl:
        pytest.skip("no kubectl: `make e2e` builds one with the node image")
    return Kube(Path(path), kubectl, str(gotools.build(gotools.HELM)))


class Figures:
    """Measured numbers for the closing note and the README, written as JSON as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def record(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.values, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    path = Path(os.environ.get(FIGURES_ENV) or REPO / ".restlake" / "e2e" / "figures.json")
    yield Figures(path)
