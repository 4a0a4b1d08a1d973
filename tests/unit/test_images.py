"""Cheap checks of the image recipes: lean extras, imports that work without Spark, real commands.

Nothing here builds an image (tests/e2e/images.py does, and needs Docker); these fail first
when a change would break one: an import of pyspark on the operator's path, an extra that
drags Spark in, a CMD naming a sub-command that does not exist, a COPY of a path the build
context leaves out.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from typer.testing import CliRunner

from restlake.cli.main import app

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
SERVICES = REPO / "tests" / "e2e" / "services"
SPARK_STACK = {"pyspark", "delta-spark", "great-expectations", "py4j", "pandas", "pyarrow"}


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


deps = _load(REPO / "docker" / "deps.py", "restlake_docker_deps")
images = _load(REPO / "tests" / "e2e" / "images.py", "restlake_e2e_images")


@cache
def closure(extras: tuple[str, ...]) -> frozenset[str]:
    """Every distribution an install of restlake[extras] brings, read from the installed metadata."""
    seen: set[str] = set()
    pending = [Requirement(line) for line in deps.requirements(REPO / "pyproject.toml", list(extras))]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for line in importlib.metadata.requires(requirement.name) or []:
            nested = Requirement(line)
            if nested.marker is None or any(
                nested.marker.evaluate({"extra": extra}) for extra in ("", *requirement.extras)
            ):
                pending.append(nested)
    return frozenset(key.split("[")[0] for key in seen)


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined, comments dropped)."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    logical = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        logical += line.removesuffix("\\").strip() + " "
        if line.endswith("\\"):
            continue
        instruction, logical = logical.strip(), ""
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)$", instruction, re.IGNORECASE)
        if match:
            current = stages.setdefault(match.group(1), [])
        current.append(instruction)
    return stages


def stage_cmd(stage: str) -> list[str]:
    cmds = [i for i in dockerfile_stages()[stage] if i.startswith("CMD ")]
    assert len(cmds) == 1, f"stage {stage} should have one CMD, has {cmds}"
    return json.loads(cmds[0].removeprefix("CMD "))


# --------------------------------------------------------------------------------------------
# Extras
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", ["operator", "fetcher"])
def test_lean_extras_bring_no_spark(extra: str) -> None:
    brought = closure((extra,))
    assert not brought & SPARK_STACK, f"restlake[{extra}] pulls in {sorted(brought & SPARK_STACK)}"


def test_spark_extra_brings_the_spark_stack() -> None:
    assert closure(("spark",)) >= SPARK_STACK


def test_all_is_every_extra_but_dev() -> None:
    optional = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    union = {
        r
        for extra in optional
        if extra not in {"all", "dev"}
        for r in deps.requirements(REPO / "pyproject.toml", [extra])
    }
    assert set(deps.requirements(REPO / "pyproject.toml", ["all"])) == union


def test_the_lock_pins_exactly_what_all_and_dev_need() -> None:
    """Images install extras with the lock as constraints: a package it does not pin would float."""
    lock = {
        canonicalize_name(line.split("==")[0])
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    needed = closure(("all",)) | closure(("dev",))
    assert needed <= lock, f"not pinned in requirements.lock: {sorted(needed - lock)}"
    # setuptools and wheel build restlake's own wheel (docker/Dockerfile, stage dist).
    assert lock - needed <= {"setuptools", "wheel"}, (
        f"pinned but unused: {sorted(lock - needed - {'setuptools', 'wheel'})}"
    )


# --------------------------------------------------------------------------------------------
# What each image really imports, with everything outside its extra made unimportable
# --------------------------------------------------------------------------------------------

_BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not in this image")
        return None
sys.meta_path.insert(0, Blocker())
import importlib, pkgutil
for package in sys.argv[2].split(","):
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), package + "."):
        if not info.name.endswith(".__main__"):  # a __main__ runs its command when imported
            importlib.import_module(info.name)
from typer.testing import CliRunner
from restlake.cli.main import app
for command in sys.argv[3:]:
    result = CliRunner().invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0, (command, result.output, result.exception)
print("ok")
"""


def blocked_modules(extras: tuple[str, ...]) -> list[str]:
    """Top-level modules of installed distributions that restlake[extras] would not install."""
    allowed = closure(extras)
    owners = importlib.metadata.packages_distributions()
    blocked = {
        module
        for module, dists in owners.items()
        if module != "restlake" and not any(canonicalize_name(d) in allowed for d in dists)
    }
    if "spark" not in extras:
        assert {"pyspark", "delta", "great_expectations"} <= blocked
    return sorted(blocked)


@pytest.mark.parametrize(
    ("extras", "packages", "commands"),
    [
        (("operator",), ["restlake.operator", "restlake.cli", "kopf"], ["operator run"]),
        (
            ("fetcher",),
            [
                "restlake.fetcher",
                "restlake.postgres",
                "restlake.contracts",
                "restlake.demoapi",
                "restlake.cli",
            ],
            ["fetcher run", "demo-api serve"],
        ),
        (
            ("spark",),
            ["restlake.jobs", "restlake.quality", "restlake.runtime.pod_reporters", "restlake.cli"],
            ["backfill", "quality run"],
        ),
    ],
    ids=["operator", "fetcher", "spark"],
)
def test_component_imports_within_its_extra(
    extras: tuple[str, ...], packages: list[str], commands: list[str], tmp_path: Path
) -> None:
    blocked = blocked_modules(extras)
    # A script file, not -c: pyspark's connect module takes a __main__ without __file__ for a
    # doctest run and exits.
    script = tmp_path / "imports.py"
    script.write_text(_BLOCKER, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, script, ",".join(blocked), ",".join(packages), *commands],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-4000:]


# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------


def test_fetcher_cmd_is_a_real_command_on_the_operators_mount() -> None:
    from restlake.operator.render import CONFIG_DIR, SOURCE_FILE

    cmd = stage_cmd("fetcher")
    assert cmd[0] == "restlake"
    result = CliRunner().invoke(app, [*cmd[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert cmd[cmd.index("-f") + 1] == f"{CONFIG_DIR}/{SOURCE_FILE}"


def test_operator_cmd_is_a_real_command() -> None:
    cmd = stage_cmd("operator")
    assert cmd[0] == "restlake"
    result = CliRunner().invoke(app, [*cmd[1:], "--help"])
    assert result.exit_code == 0, result.output


def test_spark_image_names_no_python_minor_version() -> None:
    """The base image chooses the interpreter; a hard-coded python3.11 path would break on another."""
    spark = " ".join(dockerfile_stages()["spark"])
    assert "python3.1" not in spark and "/site-packages/" not in spark


def test_images_install_their_extra() -> None:
    stages = dockerfile_stages()
    for target in ("operator", "fetcher", "spark"):
        assert any(f"--extra {target}" in i for i in stages[f"deps-{target}"]), target
        copies = " ".join(i for i in stages[target] if i.startswith("COPY"))
        assert f"--from=deps-{target} /opt/venv" in copies


def _copy_sources() -> list[str]:
    sources: list[str] = []
    for instructions in dockerfile_stages().values():
        for instruction in instructions:
            if not instruction.startswith("COPY ") or "--from=" in instruction:
                continue
            words = [w for w in instruction.split()[1:] if not w.startswith("--")]
            sources += words[:-1]
    return sources


def test_copy_sources_are_in_the_context_whitelist() -> None:
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", ".dockerignore is a whitelist: it starts by excluding everything"
    allowed = [rule[1:] for rule in rules if rule.startswith("!")]
    for source in _copy_sources():
        plain = re.sub(r"\[(\w)\]", r"\1", source)  # `.wheel[s]` is a glob only to be optional
        assert any(plain == a or plain.startswith(a + "/") for a in allowed), f"{source} not whitelisted"
        if plain == source:
            assert (REPO / source).exists(), f"COPY source {source} does not exist"
    # tests/e2e/images.py stages the same paths into its own contexts.
    assert sorted(images.CONTEXT_PATHS) == sorted(a for a in allowed if not a.startswith("docker/."))


def test_jar_resolution_needs_only_the_modules_the_jars_stage_copies(tmp_path: Path) -> None:
    copied = [
        s
        for i in dockerfile_stages()["jars"]
        if i.startswith("COPY ") and "/tmp/pysrc/" in i
        for s in i.split()[1:-1]
    ]
    for source in copied:
        target = tmp_path / Path(source).relative_to("src")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / source, target)
    # -S: no site-packages, so neither the editable restlake nor any third-party package helps.
    proc = subprocess.run(
        [sys.executable, "-S", "-c", "import restlake.stack.jars"],
        env={"PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,  # not the repository: its operator/ would shadow the standard library's
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------------------------
# tests/e2e: the images and their manifests
# --------------------------------------------------------------------------------------------


def _manifests() -> list[dict]:
    docs: list[dict] = []
    for path in sorted(SERVICES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _containers(doc: dict) -> list[dict]:
    return doc["spec"]["template"]["spec"]["containers"] if doc["kind"] in {"Deployment", "Job"} else []


def test_service_manifests_use_the_images_images_py_builds() -> None:
    refs = {image.ref for image in images.IMAGES}
    containers = [c for doc in _manifests() for c in _containers(doc)]
    assert containers
    for container in containers:
        assert container["image"] in refs, f"{container['image']} is not built by tests/e2e/images.py"
        assert container["imagePullPolicy"] == "Never"
        assert container["resources"]["requests"], container["name"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_every_service_deployment_has_a_service_selecting_it() -> None:
    docs = _manifests()
    selectors = [d["spec"]["selector"] for d in docs if d["kind"] == "Service"]
    for doc in docs:
        if doc["kind"] == "Deployment":
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert any(s.items() <= labels.items() for s in selectors), doc["metadata"]["name"]
            assert doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_kafka_advertises_the_service_name_and_never_creates_topics() -> None:
    kafka = next(d for d in _manifests() if d["kind"] == "Deployment" and d["metadata"]["name"] == "kafka")
    env = {e["name"]: e for e in _containers(kafka)[0]["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["KAFKA_ADVERTISED_LISTENERS"]["value"] == "PLAINTEXT://kafka.$(POD_NAMESPACE).svc:9092"
    entrypoint = (SERVICES / "kafka" / "entrypoint.sh").read_text()
    assert "auto.create.topics.enable=false" in entrypoint


def test_the_operator_imports_without_the_spark_or_postgres_stack(tmp_path: Path) -> None:
    # The operator image has neither (see the operator extra); it renders stream.json through the
    # stream job's own config model, which must therefore not pull them in.
    blocked = ("psycopg", "pyspark", "pyarrow", "pandas", "delta", "great_expectations")
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import restlake.operator.handlers, restlake.operator.render\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
