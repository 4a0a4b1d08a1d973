"""Cheap checks of the image recipes: lean distributions, imports that work without Spark, real commands.

Nothing here builds an image (tests/e2e/images.py does, and needs Docker); these fail first
when a change would break one: an import of pyspark on the operator's path, a distribution
that drags Spark in, a CMD naming a sub-command that does not exist, a COPY of a path the build
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
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from typer.testing import CliRunner

from restlake.cli.main import app

REPO = Path(__file__).resolve().parents[3]
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


# The component distribution of each image, beside the core, and the package it ships.
IMAGE_DISTRIBUTION = {
    "operator": "restlake-operator",
    "fetcher": "restlake-fetcher",
    "spark": "restlake-jobs-spark",
}
COMPONENT_PACKAGE = {
    "restlake-operator": "restlake.operator",
    "restlake-fetcher": "restlake.fetcher",
    "restlake-jobs-spark": "restlake.jobs.spark",
    "restlake-flows": "restlake.flows",
    "restlake-sql": "restlake.sql",
}


@cache
def closure(wanted: tuple[str, ...]) -> frozenset[str]:
    """Every third-party distribution installing ``wanted`` brings, read from the installed metadata."""
    seen: set[str] = set()
    pending = [Requirement(line) for line in deps.requirements(REPO, list(wanted))]
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
# Distributions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", ["restlake", "restlake-operator", "restlake-fetcher"])
def test_lean_distributions_bring_no_spark(distribution: str) -> None:
    brought = closure((distribution,))
    assert not brought & SPARK_STACK, f"{distribution} pulls in {sorted(brought & SPARK_STACK)}"


def test_the_spark_jobs_bring_the_spark_stack() -> None:
    assert closure(("restlake-jobs-spark",)) >= SPARK_STACK


def test_all_is_every_distribution_and_extra_but_dev() -> None:
    projects = deps.local_projects(REPO)
    assert set(projects) == {"restlake", *COMPONENT_PACKAGE}
    core = projects["restlake"]
    wanted = [*projects, *(f"restlake[{extra}]" for extra in core["optional-dependencies"])]
    union = {
        r
        for name in wanted
        if name not in {"restlake[all]", "restlake[dev]"}
        for r in deps.requirements(REPO, [name])
    }
    assert set(deps.requirements(REPO, ["restlake[all]"])) == union


def test_the_lock_pins_exactly_what_all_and_dev_need() -> None:
    """Images install with the lock as constraints: a package it does not pin would float."""
    lock = {
        canonicalize_name(line.split("==")[0])
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    needed = closure(("restlake[all]",)) | closure(("restlake[dev]",))
    assert needed <= lock, f"not pinned in requirements.lock: {sorted(needed - lock)}"
    # setuptools and wheel build restlake's own wheels (docker/Dockerfile, stage build).
    assert lock - needed <= {"setuptools", "wheel"}, (
        f"pinned but unused: {sorted(lock - needed - {'setuptools', 'wheel'})}"
    )


# --------------------------------------------------------------------------------------------
# What each image really imports, with everything outside its distributions made unimportable
# --------------------------------------------------------------------------------------------

_BLOCKER = """
import importlib.abc, sys
import json
BLOCKED, PACKAGES, COMMANDS, REFUSED = json.loads(sys.argv[1])
def blocked(name):
    return any(name == b or name.startswith(b + ".") for b in BLOCKED)
# Every finder is wrapped so a blocked module is absent as in the image: an import raises
# ModuleNotFoundError and importlib.util.find_spec answers None (libraries probe optional packages
# that way, e.g. python-json-logger for orjson; so does restlake.cli.components).
class Hider(importlib.abc.MetaPathFinder):
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if blocked(name):
            return None
        return self.finder.find_spec(name, path, target)
    def find_distributions(self, *args, **kwargs):
        return getattr(self.finder, "find_distributions", lambda *a, **k: ())(*args, **kwargs)
    def invalidate_caches(self):
        getattr(self.finder, "invalidate_caches", lambda: None)()
sys.meta_path[:] = [Hider(f) for f in sys.meta_path]
import importlib, pkgutil
for package in ["restlake.cli", *PACKAGES]:  # every image runs the restlake command
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), package + "."):
        # A __main__ runs its command when imported; a blocked one is another distribution's.
        if not info.name.endswith(".__main__") and not blocked(info.name):
            importlib.import_module(info.name)
from typer.testing import CliRunner
from restlake.cli.main import app
for command in COMMANDS:
    result = CliRunner().invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0, (command, result.output, result.exception)
# A command whose component is absent refuses, naming the distribution to install.
for command, distribution in REFUSED:
    result = CliRunner().invoke(app, command.split())
    assert result.exit_code == 2 and f"pip install {distribution}" in result.output, (command, result.output)
print("ok")
"""


def blocked_modules(distributions: tuple[str, ...]) -> list[str]:
    """Modules installed here that an image of ``distributions`` lacks: third-party top-level
    modules outside their closure, and the packages of the other components."""
    allowed = closure(distributions)
    owners = importlib.metadata.packages_distributions()
    blocked = {
        module
        for module, dists in owners.items()
        if module != "restlake" and not any(canonicalize_name(d) in allowed for d in dists)
    }
    if "restlake-jobs-spark" not in distributions:
        assert {"pyspark", "delta", "great_expectations"} <= blocked
    others = {package for name, package in COMPONENT_PACKAGE.items() if name not in distributions}
    return sorted(blocked | others)


EVERY_COMMAND = [
    "fetcher run",
    "operator run",
    "backfill",
    "quality run",
    "maintenance run",
    "snowflake sync",
    "flows serve",
    "run",
    "demo",
    "demo-api serve",
]


@pytest.mark.parametrize(
    ("distributions", "packages", "refused"),
    [
        (
            ("restlake",),
            ["restlake.contracts", "restlake.kube.conditions"],
            [
                ("fetcher run -f pyproject.toml", "restlake-fetcher"),
                ("operator run", "restlake-operator"),
                ("backfill -f pyproject.toml", "restlake-jobs-spark"),
                ("quality run -f pyproject.toml", "restlake-jobs-spark"),
                ("maintenance run -f pyproject.toml", "restlake-jobs-spark"),
                ("snowflake sync -f pyproject.toml", "restlake-jobs-spark"),
                ("flows serve -f pyproject.toml", "restlake-flows"),
            ],
        ),
        (("restlake", "restlake-operator"), ["restlake.operator", "kopf"], []),
        (
            ("restlake", "restlake-fetcher"),
            ["restlake.fetcher", "restlake.postgres", "restlake.contracts", "restlake.demoapi"],
            [("backfill -f pyproject.toml", "restlake-jobs-spark")],
        ),
        (
            ("restlake", "restlake-jobs-spark"),
            ["restlake.jobs.spark", "restlake.quality", "restlake.kube", "restlake.runtime.pod_reporters"],
            [("operator run", "restlake-operator"), ("flows serve -f pyproject.toml", "restlake-flows")],
        ),
        (
            ("restlake", "restlake-jobs-spark", "restlake-flows"),
            ["restlake.flows"],
            [("fetcher run -f pyproject.toml", "restlake-fetcher")],
        ),
    ],
    ids=["core", "operator", "fetcher", "spark", "flows"],
)
def test_each_image_imports_within_its_distributions(
    distributions: tuple[str, ...], packages: list[str], refused: list[tuple[str, str]], tmp_path: Path
) -> None:
    blocked = blocked_modules(distributions)
    # A script file, not -c: pyspark's connect module takes a __main__ without __file__ for a
    # doctest run and exits.
    script = tmp_path / "imports.py"
    script.write_text(_BLOCKER, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, script, json.dumps([blocked, packages, EVERY_COMMAND, refused])],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,  # the refused commands name pyproject.toml as a file that exists
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


def test_images_install_the_core_and_their_component() -> None:
    stages = dockerfile_stages()
    for target, distribution in IMAGE_DISTRIBUTION.items():
        assert any(i.endswith(f"deps.py venv /opt/venv {distribution}") for i in stages[f"deps-{target}"]), (
            target
        )
        copies = " ".join(i for i in stages[target] if i.startswith("COPY"))
        assert f"--from=deps-{target} /opt/venv" in copies
        # The wheels: the core's and the component's, and no other component's.
        assert re.findall(r"--from=(dist-\S+)", copies) == ["dist-core", f"dist-{target}"], target


def test_the_images_import_checks_name_modules_that_exist() -> None:
    """Each image's build imports its component's entry modules; a renamed module fails here first."""
    checked = [
        module.strip()
        for instructions in dockerfile_stages().values()
        for instruction in instructions
        for imports in re.findall(r"python3 -c 'import ([a-z_., ]+)'", instruction)
        for module in imports.split(",")
    ]
    assert len(checked) >= 5, checked
    for module in checked:
        assert importlib.util.find_spec(module) is not None, f"docker/Dockerfile imports {module}"


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
    # From the repository, whose top-level folders (operator/) are on sys.path as the cwd.
    proc = subprocess.run(
        [sys.executable, "-S", "-c", "import restlake.stack.jars"],
        env={"PYTHONPATH": str(tmp_path)},
        cwd=REPO,
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
    # The operator image has neither (see operator/pyproject.toml); it renders stream.json through
    # the stream job's config model (restlake.contracts.stream_job), which must not pull them in.
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
