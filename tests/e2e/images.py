"""Build every image the kind e2e runs, on a machine that can pull from no container registry.

    python tests/e2e/images.py build [--only NAME]... [--verbose]
    python tests/e2e/images.py list      # the image references, e.g. for `kind load docker-image`
    python tests/e2e/images.py smoke [--only NAME]...   # docker run each image, check it serves

NAME is one of: base, operator, fetcher, spark, kafka, postgres, minio, prometheus (``--only``
builds what that image needs first). Everything comes from package registries, fetched on the
host (whose TLS the containers need not trust) and handed to ``docker build`` in its context:

* base: a Debian bookworm rootfs from ``debootstrap --variant=minbase`` (python3, venv, pip,
  ca-certificates, procps, tini), trimmed and ``docker import``-ed as restlake/base-python:bookworm.
  Debian's python3 is 3.11, like the public python:3.11 image docker/Dockerfile defaults to.
* venv, jars: ``make venv`` and ``make jars``: the repo venv, and the JVM jars ``restlake stack
  jars`` resolves (Kafka's, and the Spark connectors).
* wheels: the wheelhouses of docker/Dockerfile's DEPS_FROM=context, downloaded by pip on the host
  for the image's Python (CPython 3.11, manylinux up to bookworm's glibc), pinned by
  requirements.lock; sdist-only packages (pyspark) are built into wheels here.
* minio: the MinIO server, built from the Go module proxy by restlake.stack.minio.ensure_binary.
* the images: operator, fetcher, spark (docker/Dockerfile) and the e2e services kafka, postgres,
  minio, prometheus (tests/e2e/services/<name>/Dockerfile), each from a context staged under
  the cache with hard links.

Standard library only: it runs before any venv exists. What needs restlake's own code (the jar
cache, the MinIO build) runs in the repo venv as a subprocess.

Caching, under ``$RESTLAKE_E2E_CACHE`` (default ~/.cache/restlake/e2e): the rootfs and each
wheelhouse carry a stamp of their inputs and are reused while it matches; every image carries a
label with the digest of its inputs (Dockerfile, context, build arguments, base image id) and is
not rebuilt while that matches, so a second run takes seconds. Docker's own layer cache covers
partial changes (a source edit rebuilds only the small restlake layer).

``smoke`` starts each built image with ``docker run`` as its pod would (read-only root, /tmp
writable) and checks it serves: the clients run in the fetcher image on Docker's bridge.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "tests" / "e2e" / "services"
DOCKERFILE = REPO / "docker" / "Dockerfile"
DEPS_SCRIPT = REPO / "docker" / "deps.py"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
CACHE_ENV = "RESTLAKE_E2E_CACHE"
LABEL = "io.restlake.e2e.inputs"
# Bumped when what a stamp or label stands for changes, so old caches stop matching.
LOGIC_VERSION = "1"

SUITE = "bookworm"
BASE_IMAGE = f"restlake/base-python:{SUITE}"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates", "procps", "tini")
# The image's interpreter and C library, which the wheels must fit: bookworm ships CPython 3.11
# and glibc 2.36 (the public python:3.11-slim-bookworm image too).
IMAGE_PYTHON = "3.11"
IMAGE_GLIBC_MINOR = 36

# What docker/Dockerfile COPYs from the repository; .dockerignore whitelists the same paths
# (tests/unit/docker/test_images.py keeps the two in step).
CONTEXT_PATHS = (
    "pyproject.toml",
    "README.md",
    "requirements.lock",
    "src",
    "sql",
    "fetcher",
    "operator",
    "jobs/spark",
    "jvm",
    "docker/deps.py",
)
# Never staged: caches and build output inside the copied trees.
SKIP_NAMES = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", "target", "build", "dist"})
SKIP_SUFFIXES = (".pyc", ".egg-info")
# Files at least this big (wheels, jars, the MinIO binary) enter a digest by name, size and
# mtime instead of their bytes: their names carry their versions, and reading ~1.5 GB on every
# run would cost more than the build it skips.
DIGEST_BY_STAT_BYTES = 8 * 1024 * 1024

# docker/Dockerfile's stages in file order: the classic builder runs every stage above --target,
# so the context of one holds the wheels of those before it too (spark: all three wheelhouses).
PYTHON_TARGETS = ("operator", "fetcher", "spark")
# The component distribution each image installs beside the core (restlake).
DISTRIBUTIONS = {
    "operator": "restlake-operator",
    "fetcher": "restlake-fetcher",
    "spark": "restlake-jobs-spark",
}
BUILD_TOOLS = ("setuptools", "wheel")


def version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


@dataclass(frozen=True)
class Image:
    name: str
    repository: str
    needs: tuple[str, ...]  # preparation steps, in order
    target: str | None = None  # docker/Dockerfile stage; None: tests/e2e/services/<name>/Dockerfile
    build_args: dict[str, str] = field(default_factory=dict)

    @property
    def wheelhouses(self) -> tuple[str, ...]:
        """The targets whose wheels its context holds: its own and those of the stages above it."""
        if self.target is None:
            return ()
        return PYTHON_TARGETS[: PYTHON_TARGETS.index(self.target) + 1]

    @property
    def ref(self) -> str:
        return f"{self.repository}:{version()}"


_PYTHON_ARGS = {"PYTHON_IMAGE": BASE_IMAGE, "DEPS_FROM": "context"}
_SERVICE_ARGS = {"BASE_IMAGE": BASE_IMAGE}
IMAGES: tuple[Image, ...] = (
    Image("operator", "restlake/operator", ("base", "venv"), "operator", _PYTHON_ARGS),
    Image("fetcher", "restlake/fetcher", ("base", "venv"), "fetcher", _PYTHON_ARGS),
    Image("spark", "restlake/spark", ("base", "venv", "jars"), "spark", _PYTHON_ARGS),
    Image("kafka", "restlake/e2e-kafka", ("base", "venv", "jars"), build_args=_SERVICE_ARGS),
    Image("postgres", "restlake/e2e-postgres", ("base",), build_args=_SERVICE_ARGS),
    Image("minio", "restlake/e2e-minio", ("venv", "minio")),
    Image("prometheus", "restlake/e2e-prometheus", ("base",), build_args=_SERVICE_ARGS),
)
NAMES = ("base", *(image.name for image in IMAGES))


class BuildError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser().absolute() if override else Path.home() / ".cache/restlake/e2e"


def say(message: str) -> None:
    print(f"[images] {message}", flush=True)


class Timer:
    """Prints each step's wall time, and a summary at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str]] = []

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        note: list[str] = []  # the step appends "cached" (or another word) when it did no work
        say(f"{name} ...")
        started = time.monotonic()
        try:
            yield note
        finally:
            elapsed = time.monotonic() - started
            word = note[0] if note else "done"
            self.rows.append((name, elapsed, word))
            say(f"{name}: {word} in {elapsed:.1f}s")

    def summary(self) -> None:
        total = sum(elapsed for _, elapsed, _ in self.rows)
        width = max((len(name) for name, _, _ in self.rows), default=4)
        for name, elapsed, word in self.rows:
            print(f"  {name:<{width}}  {elapsed:7.1f}s  {word}")
        print(f"  {'total':<{width}}  {total:7.1f}s")


def run(
    argv: Sequence[str | Path],
    *,
    log: Path | None = None,
    verbose: bool = False,
    stdin: int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = False,
) -> str:
    """Run a command; its output goes to ``log`` (or the terminal with --verbose); raise with its tail."""
    cmd = [str(a) for a in argv]
    full_env = {**os.environ, **(env or {})}
    if capture:
        proc = subprocess.run(
            cmd, stdin=stdin, capture_output=True, text=True, env=full_env, cwd=cwd, check=False
        )
        if proc.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr.strip()[-3000:]}")
        return proc.stdout
    if verbose or log is None:
        proc = subprocess.run(cmd, stdin=stdin, env=full_env, cwd=cwd, check=False)
        if proc.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} exited {proc.returncode}")
        return ""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.run(
            cmd, stdin=stdin, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=cwd, check=False
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:])
        raise BuildError(f"{' '.join(cmd)} exited {proc.returncode}; last lines of {log}:\n{tail}")
    return ""


def sha256_text(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def tree_digest(root: Path) -> str:
    """Paths, modes and contents (big files: size and mtime) of everything under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        info = path.lstat()
        if path.is_symlink():
            digest.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_dir():
            digest.update(f"D {rel} {info.st_mode & 0o7777:o}\n".encode())
        elif info.st_size >= DIGEST_BY_STAT_BYTES:
            digest.update(f"F {rel} {info.st_mode & 0o7777:o} {info.st_size} {info.st_mtime_ns}\n".encode())
        else:
            content = hashlib.sha256(path.read_bytes()).hexdigest()
            digest.update(f"F {rel} {info.st_mode & 0o7777:o} {content}\n".encode())
    return digest.hexdigest()


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link when source and target share a filesystem (instant, no space), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def stage_tree(source: Path, target: Path) -> None:
    if source.is_file():
        link_or_copy(source, target)
        return
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part in SKIP_NAMES or part.endswith(SKIP_SUFFIXES) for part in rel.parts):
            continue
        if path.is_file() and not path.is_symlink():
            link_or_copy(path, target / rel)


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def image_label(ref: str) -> str | None:
    """The inputs label of a local image, or None when the image does not exist."""
    proc = subprocess.run(
        ["docker", "image", "inspect", "--format", f'{{{{ index .Config.Labels "{LABEL}" }}}}', ref],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def image_id(ref: str) -> str:
    return run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture=True).strip()


def image_size(ref: str) -> int:
    return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", ref], capture=True).strip())


# ---------------------------------------------------------------------------------------------
# base: the Debian rootfs, imported as an image
# ---------------------------------------------------------------------------------------------

# Applied to the rootfs before import, and kept for later `apt-get install`s in the images: no
# documentation, manual pages or translations (as Debian's own slim images do), copyrights kept.
DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""
# Only the files under these go: dpkg's update-alternatives links manual pages into their
# folders (openjdk's java.1.gz into usr/share/man/man1) and fails where a folder is missing.
TRIM_FILES_UNDER = ("usr/share/man", "usr/share/info", "usr/share/lintian")
TRIM_GLOBS = (
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*",  # every Dockerfile runs apt-get update before it installs
    "var/log/*.log",
    "var/log/apt/*",
)


def base_digest() -> str:
    return sha256_text(
        LOGIC_VERSION,
        SUITE,
        "minbase",
        ",".join(BASE_PACKAGES),
        DPKG_EXCLUDES,
        *TRIM_FILES_UNDER,
        *TRIM_GLOBS,
    )


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.absolute()).rstrip("/") + "/"
    mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    return sorted((line.split()[1] for line in mounts if line.split()[1].startswith(prefix)), reverse=True)


def _remove_rootfs(path: Path) -> None:
    """Remove an interrupted debootstrap target, never through a /proc or /sys it left mounted."""
    for mount in _mounts_under(path):
        subprocess.run(["umount", "--lazy", mount], check=False)
    left = _mounts_under(path)
    if left:
        raise BuildError(f"cannot remove {path}: still mounted under it: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


def trim_rootfs(rootfs: Path) -> None:
    excludes = rootfs / "etc/dpkg/dpkg.cfg.d/restlake-slim"
    excludes.parent.mkdir(parents=True, exist_ok=True)
    excludes.write_text(DPKG_EXCLUDES, encoding="utf-8")
    for pattern in TRIM_GLOBS:
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    for folder in TRIM_FILES_UNDER:
        for path in (rootfs / folder).rglob("*"):
            if not path.is_dir() or path.is_symlink():
                path.unlink()
    doc = rootfs / "usr/share/doc"
    for path in sorted(doc.rglob("*"), reverse=True) if doc.is_dir() else ():
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.rmdir()  # only once empty: the copyright files stay
        elif path.name != "copyright":
            path.unlink()
    locale = rootfs / "usr/share/locale"
    for path in locale.iterdir() if locale.is_dir() else ():
        if path.name != "locale.alias":
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def prepare_rootfs(cache: Path, *, verbose: bool, timer: Timer) -> Path:
    rootfs = cache / f"rootfs-python-{SUITE}"
    stamp = cache / f"rootfs-python-{SUITE}.stamp"
    wanted = base_digest()
    with timer.step("base: debootstrap") as note:
        if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == wanted and rootfs.is_dir():
            note.append("cached")
            return rootfs
        if shutil.which("debootstrap") is None:
            raise BuildError("debootstrap is not installed (apt-get install debootstrap)")
        if os.geteuid() != 0:
            raise BuildError("debootstrap needs root: run `images.py build` as root")
        partial = rootfs.with_name(rootfs.name + ".partial")
        _remove_rootfs(partial)
        stamp.unlink(missing_ok=True)
        # No mirror argument: debootstrap's default Debian mirror, over plain http, which the
        # images' own `apt-get install`s then use too.
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                partial,
            ],
            log=cache / "logs" / "debootstrap.log",
            verbose=verbose,
        )
        trim_rootfs(partial)
        _remove_rootfs(rootfs)
        partial.rename(rootfs)
        stamp.write_text(wanted + "\n", encoding="utf-8")
    return rootfs


def import_base(rootfs: Path, *, timer: Timer) -> None:
    wanted = base_digest()
    with timer.step("base: docker import") as note:
        if image_label(BASE_IMAGE) == wanted:
            note.append("cached")
            return
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
        )
        assert tar.stdout is not None
        changes = ["ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]', f"LABEL {LABEL}={wanted}"]
        argv = ["docker", "import", *(arg for c in changes for arg in ("--change", c)), "-", BASE_IMAGE]
        proc = subprocess.run(argv, stdin=tar.stdout, capture_output=True, text=True, check=False)
        tar.stdout.close()
        if tar.wait() != 0 or proc.returncode != 0:
            raise BuildError(f"docker import of {rootfs} failed: {proc.stderr.strip()}")


# ---------------------------------------------------------------------------------------------
# host: the repo venv and the jar cache; minio: the server binary
# ---------------------------------------------------------------------------------------------


def prepare_venv(cache: Path, *, verbose: bool, timer: Timer) -> None:
    """`make venv`: the host's pip resolves the wheelhouses, and restlake's code builds MinIO."""
    with timer.step("venv: make venv"):
        run(["make", "-C", REPO, "venv"], log=cache / "logs" / "make-venv.log", verbose=verbose)


def prepare_jars(cache: Path, *, verbose: bool, timer: Timer) -> dict[str, list[str]]:
    """`make jars` (Maven on the host), then the resolved jars: {"spark": [...], "kafka": [...]}."""
    with timer.step("jars: make jars"):
        run(["make", "-C", REPO, "jars"], log=cache / "logs" / "make-jars.log", verbose=verbose)
    code = (
        "import json\n"
        "from restlake.settings import StackSettings\n"
        "from restlake.stack.jars import kafka_classpath, spark_jars\n"
        "from restlake.stack.state import jars_dir_for\n"
        "where = jars_dir_for(StackSettings().state_dir)\n"
        "print(json.dumps({'spark': [str(p) for p in spark_jars(jars_dir=where)],"
        " 'kafka': [str(p) for p in kafka_classpath(where)]}))\n"
    )
    return json.loads(run([VENV_PYTHON, "-c", code], capture=True, cwd=REPO))


def prepare_minio(*, timer: Timer) -> Path:
    code = (
        "from restlake.settings import StackSettings\n"
        "from restlake.stack.minio import ensure_binary\n"
        "print(ensure_binary(StackSettings().tools_dir))\n"
    )
    with timer.step("minio: go install (first time only)"):
        return Path(run([VENV_PYTHON, "-c", code], capture=True, cwd=REPO).strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# wheels
# ---------------------------------------------------------------------------------------------


def platform_args() -> list[str]:
    """pip download options for the image's interpreter, whatever Python and libc the host has."""
    machine = platform.machine()
    # pip does not widen an explicit manylinux_2_N to older glibc versions: list them all.
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(IMAGE_GLIBC_MINOR, 16, -1)]
    tags += [f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}"]
    abi = "cp" + IMAGE_PYTHON.replace(".", "")
    args = [arg for tag in tags for arg in ("--platform", tag)]
    return [*args, "--python-version", IMAGE_PYTHON, "--implementation", "cp", "--abi", abi]


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _lock_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines():
        name, sep, pinned = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[_normalise(name)] = pinned
    return pins


def target_requirements(target: str) -> list[str]:
    """Third-party requirement lines of a target's distributions, as docker/deps.py computes them."""
    listing = run(
        [sys.executable, DEPS_SCRIPT, "requirements", "--root", REPO, DISTRIBUTIONS[target]],
        capture=True,
    )
    return [line for line in listing.splitlines() if line.strip()]


def _stamped(target: Path, wanted: str) -> bool:
    stamp = target / ".stamp"
    return stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == wanted


def _publish(staging: Path, target: Path, wanted: str) -> None:
    (staging / ".stamp").write_text(wanted + "\n", encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def prepare_wheelhouse(cache: Path, image: str, *, verbose: bool, timer: Timer) -> Path:
    """``<cache>/wheels/<image>/``: every third-party wheel the image installs, pinned by the lock."""
    target = cache / "wheels" / image
    with timer.step(f"wheels: {image}") as note:
        requirements = target_requirements(image)
        wanted = sha256_text(
            LOGIC_VERSION, (REPO / "requirements.lock").read_bytes(), *requirements, *platform_args()
        )
        if _stamped(target, wanted):
            note.append("cached")
            return target
        staging = fresh_dir(target.with_name(f".{image}.staging"))
        logs = cache / "logs"
        pip = [VENV_PYTHON, "-m", "pip"]
        # 1. Resolve on the host against the lock: which pinned packages the image needs.
        report = staging / "report.json"
        run(
            [
                *pip,
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--report",
                report,
                "--constraint",
                REPO / "requirements.lock",
                *requirements,
            ],
            log=logs / f"wheels-{image}-resolve.log",
            verbose=verbose,
        )
        resolved = json.loads(report.read_text(encoding="utf-8"))["install"]
        report.unlink()
        pinned = [f"{item['metadata']['name']}=={item['metadata']['version']}" for item in resolved]
        sdist_only = [
            f"{item['metadata']['name']}=={item['metadata']['version']}"
            for item in resolved
            if not item["download_info"]["url"].endswith(".whl")
        ]
        binary = [p for p in pinned if p not in sdist_only]
        # 2. Download the wheels built for the image's platform, not the host's.
        run(
            [*pip, "download", "--no-deps", "--only-binary=:all:", *platform_args(), "-d", staging, *binary],
            log=logs / f"wheels-{image}-download.log",
            verbose=verbose,
        )
        # 3. Packages published only as source (pyspark) are pure Python: build them here (pip's
        # wheel cache makes this instant after the first time) and check they are.
        if sdist_only:
            run(
                [*pip, "wheel", "--no-deps", "-w", staging, *sdist_only],
                log=logs / f"wheels-{image}-sdist.log",
                verbose=verbose,
            )
        built_from_source = {_normalise(s.split("==")[0]) for s in sdist_only}
        for wheel in staging.glob("*.whl"):
            # name-version-python-abi-platform.whl: a source build must not be tied to the host.
            project, *_, abi, plat = wheel.stem.split("-")
            if _normalise(project) in built_from_source and (abi, plat) != ("none", "any"):
                raise BuildError(f"{wheel.name} was built from source for this host, not for the image")
        _publish(staging, target, wanted)
    return target


def prepare_build_tools(cache: Path, *, verbose: bool, timer: Timer) -> Path:
    """``<cache>/wheels/build/``: setuptools and wheel at the lock's pins, which build restlake's wheel."""
    target = cache / "wheels" / "build"
    pins = _lock_pins()
    tools = [f"{tool}=={pins[tool]}" if tool in pins else tool for tool in BUILD_TOOLS]
    with timer.step("wheels: build tools") as note:
        wanted = sha256_text(LOGIC_VERSION, *tools)
        if _stamped(target, wanted):
            note.append("cached")
            return target
        staging = fresh_dir(target.with_name(".build.staging"))
        run(
            [VENV_PYTHON, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", staging, *tools],
            log=cache / "logs" / "wheels-build-tools.log",
            verbose=verbose,
        )
        _publish(staging, target, wanted)
    return target


# ---------------------------------------------------------------------------------------------
# contexts and docker build
# ---------------------------------------------------------------------------------------------


def stage_python_context(image: Image, context: Path, wheels: dict[str, Path], spark_jars: list[str]) -> None:
    fresh_dir(context)
    for rel in CONTEXT_PATHS:
        stage_tree(REPO / rel, context / rel)
    link_or_copy(REPO / ".dockerignore", context / ".dockerignore")
    link_or_copy(DOCKERFILE, context / "docker" / "Dockerfile")
    for name in ("build", *image.wheelhouses):
        for wheel in wheels[name].glob("*.whl"):
            link_or_copy(wheel, context / "docker" / ".wheels" / name / wheel.name)
    if "spark" in image.wheelhouses:
        _stage_flat_jars(spark_jars, context / "docker" / ".jars")


def _stage_flat_jars(jars: list[str], target: Path) -> None:
    seen: dict[str, str] = {}
    for jar in map(Path, jars):
        if jar.name in seen:
            raise BuildError(f"two jars named {jar.name}: {seen[jar.name]} and {jar}")
        seen[jar.name] = str(jar)
        link_or_copy(jar, target / jar.name)


def stage_service_context(
    image: Image, context: Path, jars: dict[str, list[str]], minio: Path | None
) -> None:
    fresh_dir(context)
    stage_tree(SERVICES / image.name, context)
    if image.name == "kafka":
        _stage_flat_jars(jars["kafka"], context / "libs")
    elif image.name == "minio":
        assert minio is not None
        rootfs = context / "rootfs"
        link_or_copy(minio, rootfs / "usr" / "bin" / "minio")
        # FROM scratch has no /tmp and no user database; MinIO (HOME=/tmp) wants both.
        (rootfs / "tmp").mkdir(parents=True)
        (rootfs / "tmp").chmod(0o1777)
        (rootfs / "etc").mkdir(parents=True)
        (rootfs / "etc" / "passwd").write_text("minio:x:10001:10001::/tmp:/sbin/nologin\n", encoding="ascii")
        (rootfs / "etc" / "group").write_text("minio:x:10001:\n", encoding="ascii")
        (context / "data").mkdir()


def build_image(
    image: Image, context: Path, dockerfile: Path, *, cache: Path, verbose: bool, timer: Timer
) -> None:
    base = image.build_args.get("PYTHON_IMAGE") or image.build_args.get("BASE_IMAGE")
    with timer.step(f"image: {image.ref}") as note:
        digest = sha256_text(
            LOGIC_VERSION,
            image.target or "",
            json.dumps(image.build_args, sort_keys=True),
            image_id(base) if base else "",
            tree_digest(context),
            dockerfile.read_bytes(),
        )
        if image_label(image.ref) == digest:
            note.append("cached")
            return
        argv: list[str | Path] = [
            "docker",
            "build",
            "-f",
            dockerfile,
            "-t",
            image.ref,
            "--label",
            f"{LABEL}={digest}",
        ]
        if image.target:
            argv += ["--target", image.target]
        for key, value in image.build_args.items():
            argv += ["--build-arg", f"{key}={value}"]
        previous = image_id(image.ref) if image_label(image.ref) is not None else None
        run([*argv, context], log=cache / "logs" / f"build-{image.name}.log", verbose=verbose)
        if previous and previous != image_id(image.ref):
            # The image this build replaced is now untagged: drop it, or every e2e run would leave
            # gigabytes behind (the spark image is 2.3 GB). Its layers that the new one shares stay.
            subprocess.run(["docker", "rmi", previous], capture_output=True, check=False)


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def selected(only: Sequence[str]) -> list[Image]:
    return [image for image in IMAGES if not only or image.name in only]


@contextlib.contextmanager
def _exclusive(cache: Path) -> Iterator[None]:
    """One build per cache at a time: two would debootstrap into the same folder and race on tags."""
    with (cache / ".images.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another images.py build using {cache} ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(only: Sequence[str], *, verbose: bool) -> None:
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache):
        _build(cache, only, verbose=verbose)


def _build(cache: Path, only: Sequence[str], *, verbose: bool) -> None:
    timer = Timer()
    images = selected(only)
    needs = {need for image in images for need in image.needs}
    if "base" in only:
        needs.add("base")
    jars: dict[str, list[str]] = {}
    minio: Path | None = None
    try:
        if "base" in needs:
            import_base(prepare_rootfs(cache, verbose=verbose, timer=timer), timer=timer)
        if "venv" in needs:
            prepare_venv(cache, verbose=verbose, timer=timer)
        if "jars" in needs:
            jars = prepare_jars(cache, verbose=verbose, timer=timer)
        if "minio" in needs:
            minio = prepare_minio(timer=timer)
        targets = sorted({target for image in images for target in image.wheelhouses})
        wheels = {name: prepare_wheelhouse(cache, name, verbose=verbose, timer=timer) for name in targets}
        if targets:
            wheels["build"] = prepare_build_tools(cache, verbose=verbose, timer=timer)
        for image in images:
            context = cache / "contexts" / image.name
            with timer.step(f"context: {image.name}"):
                if image.target:
                    stage_python_context(image, context, wheels, jars.get("spark", []))
                    dockerfile = context / "docker" / "Dockerfile"
                else:
                    stage_service_context(image, context, jars, minio)
                    dockerfile = context / "Dockerfile"
            build_image(image, context, dockerfile, cache=cache, verbose=verbose, timer=timer)
    finally:
        print("[images] wall time per step:")
        timer.summary()
    print("[images] sizes:")
    if "base" in needs:
        print(f"  {BASE_IMAGE:<34} {image_size(BASE_IMAGE) / 1e6:8.0f} MB")
    for image in images:
        print(f"  {image.ref:<34} {image_size(image.ref) / 1e6:8.0f} MB")


# ---------------------------------------------------------------------------------------------
# smoke: each image started with `docker run`, no Kubernetes
# ---------------------------------------------------------------------------------------------

SMOKE_PREFIX = "restlake-smoke-"


def _ref(name: str) -> str:
    return next(image.ref for image in IMAGES if image.name == name)


def _start(name: str, *args: str) -> str:
    """Start a detached container named restlake-smoke-<name>; return its bridge IP."""
    container = SMOKE_PREFIX + name
    subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    run(["docker", "run", "-d", "--name", container, *args], capture=True)
    return run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container],
        capture=True,
    ).strip()


def _in_fetcher(script: str, *env: str) -> str:
    """Run a Python snippet in the fetcher image: a client on the same bridge as the servers."""
    env_args = [arg for pair in env for arg in ("-e", pair)]
    return run(["docker", "run", "--rm", *env_args, _ref("fetcher"), "python3", "-c", script], capture=True)


_WAIT_TCP = """
import socket, sys, time
host, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
deadline = time.monotonic() + 120
for port in ports:
    while True:
        try:
            socket.create_connection((host, port), timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"{host}:{port} does not listen")
            time.sleep(1)
print("listening:", ports)
"""


_WAIT_HTTP = """
import sys, time, urllib.request
deadline = time.monotonic() + 120
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
            print(response.status, response.read().decode().strip()[:80])
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(1)
"""


def _wait_http(url: str) -> str:
    return run(
        ["docker", "run", "--rm", _ref("fetcher"), "python3", "-c", _WAIT_HTTP, url], capture=True
    ).strip()


def _wait_tcp(host: str, *ports: int) -> str:
    return run(
        ["docker", "run", "--rm", _ref("fetcher"), "python3", "-c", _WAIT_TCP, host, *map(str, ports)],
        capture=True,
    ).strip()


def smoke_python(name: str) -> str:
    command = {"operator": "restlake operator run --help", "fetcher": "restlake fetcher run --help"}[name]
    ref = _ref(name)
    run(["docker", "run", "--rm", "--read-only", ref, *command.split()], capture=True)
    proc = subprocess.run(
        ["docker", "run", "--rm", ref, "python3", "-c", "import pyspark"], capture_output=True, check=False
    )
    if proc.returncode == 0:
        raise BuildError(f"{ref} can import pyspark")
    return f"`{command}` runs read-only; `import pyspark` fails"


def smoke_spark() -> str:
    ip = _start("spark", "--read-only", "--tmpfs", "/tmp:exec", _ref("spark"))
    listening = _wait_tcp(ip, 7077, 8080)
    for command in ("python -m restlake.jobs.spark.stream --help", "restlake backfill --help"):
        run(["docker", "run", "--rm", "--read-only", _ref("spark"), *command.split()], capture=True)
    return f"master {listening}; driver and backfill entry points run"


def smoke_kafka() -> str:
    ip = _start(
        "kafka",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/var/lib/kafka:uid=10001,gid=10001",
        _ref("kafka"),
    )
    script = (
        "import sys, time\n"
        "from confluent_kafka.admin import AdminClient, NewTopic\n"
        f"admin = AdminClient({{'bootstrap.servers': '{ip}:9092'}})\n"
        "deadline = time.monotonic() + 120\n"
        "while True:\n"
        "    try:\n"
        "        admin.create_topics([NewTopic('smoke', 3, 1)])['smoke'].result(30)\n"
        "        break\n"
        "    except Exception as exc:\n"
        "        if 'TOPIC_ALREADY_EXISTS' in str(exc): break  # an earlier try that timed out made it\n"
        "        if time.monotonic() > deadline: sys.exit(f'create topic: {exc}')\n"
        "        time.sleep(2)\n"
        "meta = admin.list_topics(timeout=10)\n"
        "partitions = len(meta.topics['smoke'].partitions)\n"
        "print(f'created topic smoke ({partitions} partitions) on cluster {meta.cluster_id}')\n"
    )
    return _in_fetcher(script).strip()


def smoke_postgres() -> str:
    password = "smoke-password"
    ip = _start(
        "postgres",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/var/lib/postgresql/e2e:uid=10001,gid=10001",
        "-e",
        f"POSTGRES_PASSWORD={password}",
        _ref("postgres"),
    )
    _wait_tcp(ip, 5432)
    url = f"postgresql://restlake:{password}@{ip}:5432/restlake"
    deadline = time.monotonic() + 60
    while True:
        proc = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--entrypoint",
                "psql",
                _ref("postgres"),
                url,
                "-Atc",
                "SELECT current_user",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    if proc.returncode != 0:
        raise BuildError(f"psql to {ip}: {proc.stderr.strip()}")
    wrong = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--entrypoint",
            "psql",
            _ref("postgres"),
            url.replace(password, "wrong"),
            "-Atc",
            "SELECT 1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if wrong.returncode == 0:
        raise BuildError("postgres accepted a wrong password")
    return f"psql over TCP as {proc.stdout.strip()} with the password; a wrong one is refused"


def smoke_minio() -> str:
    user, password = "smoke", "smoke-secret-key"
    ip = _start(
        "minio",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/data:uid=10001,gid=10001",
        "-e",
        f"MINIO_ROOT_USER={user}",
        "-e",
        f"MINIO_ROOT_PASSWORD={password}",
        _ref("minio"),
    )
    # The bucket Job's own script, so the manifest's recipe is what is tested.
    manifest = (SERVICES / "minio.yaml").read_text(encoding="utf-8")
    script = manifest.split("- |\n", 1)[1].split("          resources:", 1)[0]
    script = "\n".join(line[14:] for line in script.splitlines())
    said = _wait_http(f"http://{ip}:9000/minio/health/ready")
    env = (
        f"RESTLAKE_S3_ENDPOINT=http://{ip}:9000",
        f"RESTLAKE_S3_ACCESS_KEY={user}",
        f"RESTLAKE_S3_SECRET_KEY={password}",
        "BUCKET=restlake",
    )
    created = _in_fetcher(script, *env).strip()
    again = _in_fetcher(script, *env).strip()
    return f"/minio/health/ready {said}; {created}; then: {again}"


def smoke_prometheus() -> str:
    ip = _start(
        "prometheus",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/prometheus:uid=10001,gid=10001",
        _ref("prometheus"),  # its CMD: Debian's default configuration, storage on /prometheus
    )
    return "/-/ready: " + _wait_http(f"http://{ip}:9090/-/ready")


SMOKE = {
    "operator": lambda: smoke_python("operator"),
    "fetcher": lambda: smoke_python("fetcher"),
    "spark": smoke_spark,
    "kafka": smoke_kafka,
    "postgres": smoke_postgres,
    "minio": smoke_minio,
    "prometheus": smoke_prometheus,
}


def smoke(only: Sequence[str]) -> bool:
    """Start each image the way its pod does (read-only root, /tmp writable), check it serves."""
    ok = True
    for image in selected(only):
        started = time.monotonic()
        try:
            said = SMOKE[image.name]()
            say(f"smoke {image.name}: ok in {time.monotonic() - started:.1f}s: {said}")
        except BuildError as exc:
            ok = False
            logs = subprocess.run(
                ["docker", "logs", "--tail", "30", SMOKE_PREFIX + image.name],
                capture_output=True,
                text=True,
                check=False,
            )
            say(f"smoke {image.name}: FAILED: {exc}\n{logs.stdout}{logs.stderr}")
        finally:
            subprocess.run(
                ["docker", "rm", "-f", SMOKE_PREFIX + image.name], capture_output=True, check=False
            )
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="prepare and build the images (cached)")
    build_cmd.add_argument("--only", action="append", choices=NAMES, default=[], help="repeatable")
    build_cmd.add_argument("--verbose", "-v", action="store_true", help="stream the tools' output")
    commands.add_parser("list", help="print the image references")
    smoke_cmd = commands.add_parser("smoke", help="docker run each built image and check it serves")
    smoke_cmd.add_argument("--only", action="append", choices=list(SMOKE), default=[], help="repeatable")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(image.ref for image in IMAGES))
        return 0
    if args.command == "smoke":
        return 0 if smoke(args.only) else 1
    try:
        build(args.only, verbose=args.verbose)
    except BuildError as exc:
        print(f"[images] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
