"""The repository's distributions: one folder each, whose path is the import path, merging into one
``restlake`` package both as wheels and as editable installs.

The core (pyproject.toml, src/restlake/) owns ``restlake/__init__.py``; each component ships only
its own sub-package from <folder>/src/restlake/..., and the core's ``extend_path`` finds those
folders when they are installed editable. These tests build the real wheels (from a copy of the
sources, so the checkout gets no build/ folders) and import them with nothing else on sys.path.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import restlake

REPO = Path(__file__).resolve().parents[2]
# Folder -> (distribution, the package it ships).
COMPONENTS = {
    "sql": ("restlake-sql", "restlake.sql"),
    "fetcher": ("restlake-fetcher", "restlake.fetcher"),
    "operator": ("restlake-operator", "restlake.operator"),
    "jobs/spark": ("restlake-jobs-spark", "restlake.jobs.spark"),
    "flows": ("restlake-flows", "restlake.flows"),
}
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


def _project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_every_component_folder_is_its_import_path() -> None:
    version = _project(REPO)["version"]
    assert version == restlake.__version__
    for folder, (distribution, package) in COMPONENTS.items():
        project = _project(REPO / folder)
        assert project["name"] == distribution
        assert project["version"] == version, f"{folder}/pyproject.toml is not at the core's version"
        pins = [r for r in project["dependencies"] if r.startswith("restlake")]
        if distribution == "restlake-sql":
            # Plain files: it depends on nothing, and the core pins it (its migrations module).
            assert project["dependencies"] == []
            assert f"restlake-sql=={version}" in _project(REPO)["dependencies"]
        else:
            assert f"restlake=={version}" in pins, f"{distribution} must pin the core"
        assert all(r.endswith(f"=={version}") for r in pins), f"{distribution}: {pins}"
        code = REPO / folder / "src" / Path(*package.split("."))
        assert (code / "__init__.py").is_file(), f"{package} is not at {code.relative_to(REPO)}"
        # Only the core's __init__ may define restlake (and nothing defines restlake.jobs): a
        # second one would be overwritten or removed by installing or uninstalling another wheel.
        namespace = REPO / folder / "src" / "restlake"
        assert not (namespace / "__init__.py").exists()
        assert not (namespace / "jobs" / "__init__.py").exists()


def test_no_top_level_folder_shadows_the_standard_library() -> None:
    # -S: no site-packages; -c puts the working directory first on sys.path, as `python -m` does.
    code = "import collections, operator, json; print(json.dumps([operator.__file__, collections.__file__]))"
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    for found in json.loads(proc.stdout):
        assert Path(found).resolve().is_relative_to(stdlib), found


def _editable(distribution: str) -> bool:
    direct = metadata.distribution(distribution).read_text("direct_url.json")
    return bool(direct and json.loads(direct).get("dir_info", {}).get("editable"))


def test_the_editable_install_imports_each_component_from_its_folder() -> None:
    if not all(_editable(name) for name in ["restlake", *(d for d, _ in COMPONENTS.values())]):
        pytest.skip("the distributions are not installed editable here (`make venv` installs them so)")
    assert Path(restlake.__file__).parent == REPO / "src" / "restlake"
    for folder, (_, package) in COMPONENTS.items():
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin
        assert Path(spec.origin).parent == REPO / folder / "src" / Path(*package.split("."))


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Distribution name -> its wheel, built as docker/Dockerfile builds them (no deps, no isolation)."""
    work = tmp_path_factory.mktemp("distributions")
    sources = work / "src"
    shutil.copytree(REPO / "src", sources / "src", ignore=SKIP)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, sources / name)
    for folder in COMPONENTS:
        shutil.copytree(REPO / folder, sources / folder, ignore=SKIP)
    out = work / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
    proc = subprocess.run(
        [*pip, "--wheel-dir", str(out), str(sources), *(str(sources / f) for f in COMPONENTS)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # name-version-...whl, the name with - written as _.
    found = {wheel.name.split("-")[0].replace("_", "-"): wheel for wheel in out.glob("*.whl")}
    assert set(found) == {"restlake", *(d for d, _ in COMPONENTS.values())}
    return found


def _files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if ".dist-info/" not in name}


def test_each_wheel_ships_only_its_own_folder(wheels: dict[str, Path]) -> None:
    core = _files(wheels["restlake"])
    assert {"restlake/__init__.py", "restlake/py.typed", "restlake/postgres/migrations.py"} <= core
    assert "restlake/sql/001_api_events.sql" in _files(wheels["restlake-sql"])
    shipped = set(core)
    for distribution, package in COMPONENTS.values():
        files = _files(wheels[distribution])
        prefix = package.replace(".", "/") + "/"
        assert files and all(name.startswith(prefix) for name in files), sorted(files)[:5]
        assert not files & shipped, f"{distribution} ships files another wheel ships too"
        shipped |= files


def test_the_wheels_install_into_one_restlake_package(wheels: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
        ]
        + [str(w) for w in wheels.values()],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # -S: only the standard library and the installed wheels (not this editable checkout).
    code = (
        "import json, restlake, restlake.sql, restlake.fetcher, restlake.operator, restlake.jobs.spark\n"
        "import restlake.flows\n"
        "from importlib import resources\n"
        "sql = sorted(p.name for p in resources.files('restlake.sql').iterdir() if p.name.endswith('.sql'))\n"
        "mods = (restlake, restlake.sql, restlake.fetcher, restlake.operator, restlake.jobs.spark,"
        " restlake.flows)\n"
        "print(json.dumps({'files': [m.__file__ for m in mods], 'sql': sql}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PYTHONPATH": str(target)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert all(Path(f).is_relative_to(target / "restlake") for f in found["files"]), found["files"]
    assert found["sql"] == [
        "001_api_events.sql",
        "002_upsert_and_ledger.sql",
        "003_bronze_keys.sql",
        "004_backfill_ranges.sql",
    ]
