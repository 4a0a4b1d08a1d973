"""A real kind cluster for restlake's e2e tests on a machine that cannot pull container images.

`kind build node-image` and `kind create cluster` both pull from public registries; this host
reaches only Debian's archive and the Go module proxy. So the node image is assembled here from
those two: a Debian rootfs from debootstrap, Kubernetes, etcd, CoreDNS, local-path-provisioner,
crictl and kind built with `go`, our own pause program, each control-plane component packed as a
`FROM scratch` image under the exact name kubeadm asks for, imported into the node's containerd.
Every piece is cached (docker images, binaries under the cache dir) keyed by a hash of its inputs.

    python tests/e2e/node/cluster.py up --name restlake-e2e     # prints the kubeconfig path
    python tests/e2e/node/cluster.py smoke --name restlake-e2e
    python tests/e2e/node/cluster.py down --name restlake-e2e

Cache: ~/.cache/restlake/e2e, or $RESTLAKE_E2E_CACHE. Step timings: <cache>/timings.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
TOOLS_DIR = HERE / "tools"  # go.mod pinning Kubernetes and etcd
OVERLAY_DIR = HERE / "overlay"  # files laid over the node's rootfs (`*.in` are templates)
PAUSE_DIR = HERE / "pause"
TOOLBOX_DIR = HERE / "toolbox"
RUNC_WRAPPER = HERE / "runc-drop-sys-resource"

# Bump when the build logic below changes what ends up in an image.
RECIPE = "1"

DEBIAN_SUITE = "bookworm"
NODE_PACKAGES = (
    "systemd,systemd-sysv,dbus,iproute2,iptables,nftables,containerd,runc,ca-certificates,jq,"
    "containernetworking-plugins,conntrack,ethtool,socat,kmod,mount,util-linux,procps,ebtables,bash"
)
# Left out of every image: debootstrap's downloaded packages and apt's indexes.
ROOTFS_EXCLUDES = ("./var/cache/apt/archives/*.deb", "./var/lib/apt/lists/*")
# Also left out of the toolbox (kube-proxy, test pods, volume helper), which runs no containers.
TOOLBOX_EXCLUDES = (
    "./usr/share/doc/*",
    "./usr/share/man/*",
    "./usr/share/locale/*",
    "./usr/share/info/*",
    "./usr/bin/containerd*",
    "./usr/bin/ctr",
    "./usr/sbin/runc",
    "./usr/lib/cni/*",
)

KIND = ("sigs.k8s.io/kind", "v0.33.0")
# v0.0.30 is the newest version the Go module proxy serves (kind v0.33 packs v0.0.34).
LOCAL_PATH_PROVISIONER = ("github.com/rancher/local-path-provisioner", "v0.0.30")
CRICTL = ("sigs.k8s.io/cri-tools/cmd/crictl", "v1.34.0")
COREDNS_MODULE = "github.com/coredns/coredns"
# Binaries whose name is not the last element of their package path.
BINARY_NAMES = {"go.etcd.io/etcd/server/v3": "etcd"}

NODE_IMAGE_REPO = "restlake/kind-node"
ROOTFS_IMAGE_REPO = "restlake/kind-rootfs"
TOOLBOX_BASE_REPO = "restlake/kind-toolbox-base"
# A Debian image with a shell, socat and getent inside every node: for test pods
# (imagePullPolicy: Never) and local-path-provisioner's helper pods. It is kube-proxy's image too.
TOOLBOX_IMAGE = "restlake/kind-toolbox:bookworm"
PROVISIONER_IMAGE = f"restlake/local-path-provisioner:{LOCAL_PATH_PROVISIONER[1]}"

HOST_PACKAGES = {  # Debian package -> a path it installs
    "docker.io": "/usr/sbin/dockerd",
    "debootstrap": "/usr/sbin/debootstrap",
    "jq": "/usr/bin/jq",
    "containernetworking-plugins": "/usr/lib/cni/bridge",
}
CAP_SYS_RESOURCE = 24
WRAPPER_INSTALL_PATH = Path("/usr/local/libexec/restlake/runc-drop-sys-resource")
DOCKER_RUNTIME_NAME = "restlake-runc"
DAEMON_JSON = Path("/etc/docker/daemon.json")
NODE_CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")

STDERR_TAIL_LINES = 40


class ClusterError(RuntimeError):
    """A step of preparing, building, creating or checking the e2e kind cluster failed."""


# --------------------------------------------------------------------------------------------
# plumbing: cache dir, logging, commands, timings


def cache_dir() -> Path:
    root = Path(os.environ.get("RESTLAKE_E2E_CACHE") or Path.home() / ".cache" / "restlake" / "e2e")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _log_dir() -> Path:
    path = cache_dir() / "logs"
    path.mkdir(exist_ok=True)
    return path


def _say(message: str) -> None:
    print(f"[e2e-cluster] {message}", file=sys.stderr, flush=True)


def _tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _run(
    step: str,
    cmd: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: Any = None,
    log: Path | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Runs cmd; output goes to `log` when given (long builds), else is captured.

    A failure raises ClusterError naming the step and the command, with its output's tail.
    """
    args = [str(part) for part in cmd]
    full_env = {**os.environ, **env} if env else None
    try:
        if log is None:
            proc = subprocess.run(
                args,
                env=full_env,
                cwd=cwd,
                stdin=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        else:
            with log.open("a") as sink:
                sink.write(f"\n$ {' '.join(args)}\n")
                sink.flush()
                proc = subprocess.run(
                    args,
                    env=full_env,
                    cwd=cwd,
                    stdin=stdin,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
    except FileNotFoundError as error:
        raise ClusterError(f"{step}: command not found: {args[0]} ({error})") from error
    except subprocess.TimeoutExpired as error:
        said = log.read_text(errors="replace") if log else str(error.stderr or "")
        raise ClusterError(
            f"{step}: `{' '.join(args)}` did not finish within {timeout:.0f}s\n{_tail(said)}"
        ) from error
    if check and proc.returncode != 0:
        said = log.read_text(errors="replace") if log else (proc.stderr or proc.stdout or "")
        where = f" (full log: {log})" if log else ""
        raise ClusterError(f"{step}: `{' '.join(args)}` exited {proc.returncode}{where}\n{_tail(said)}")
    return proc


class _Timings:
    depth = 0  # how many public calls are open: only the outermost writes timings.json
    steps: list[dict[str, Any]] = []


@contextlib.contextmanager
def _timed_run(command: str) -> Iterator[None]:
    """Collects the step timings of one public call (nested calls join the outer one)."""
    _Timings.depth += 1
    started = time.monotonic()
    failed: str | None = None
    try:
        yield
    except BaseException as error:
        failed = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        raise
    finally:
        _Timings.depth -= 1
        if _Timings.depth == 0:
            _write_timings(command, time.monotonic() - started, failed)


@contextlib.contextmanager
def _step(name: str) -> Iterator[dict[str, Any]]:
    """Times a step; the body may set record['cached'] = True when it found its result cached."""
    record: dict[str, Any] = {"step": name, "cached": False}
    started = time.monotonic()
    try:
        yield record
    finally:
        record["seconds"] = round(time.monotonic() - started, 1)
        if _Timings.depth:  # a helper called on its own (say kubectl()) records nothing
            _Timings.steps.append(record)
            _say(f"{name}: {'cached' if record['cached'] else 'done'} in {record['seconds']}s")


def _write_timings(command: str, total: float, failed: str | None) -> None:
    path = cache_dir() / "timings.json"
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError):
        history = {}
    runs = history.get("runs", []) if isinstance(history, dict) else []
    steps = list(_Timings.steps)
    _Timings.steps.clear()
    run: dict[str, Any] = {
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "total_seconds": round(total, 1),
        "steps": steps,
    }
    if failed:
        run["failed"] = failed
    runs = [*runs, run][-40:]
    path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    lines = [f"{s['step']:<36} {s['seconds']:>7.1f}s  {'cached' if s['cached'] else ''}" for s in steps]
    _say(f"timings of `{command}` ({path}):\n  " + "\n  ".join([*lines, f"{'total':<36} {total:>7.1f}s"]))


def _hash(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _tree_digest(root: Path) -> str:
    """Hash of a directory's files: relative paths, executable bits and contents."""
    parts: list[bytes | str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        parts += [str(path.relative_to(root)), oct(path.stat().st_mode & 0o111), path.read_bytes()]
    return _hash(*parts)


# --------------------------------------------------------------------------------------------
# 1. docker


def _cap_bounding_set() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    raise ClusterError("docker: no CapBnd line in /proc/self/status")


def host_lacks_cap_sys_resource() -> bool:
    return not _cap_bounding_set() & (1 << CAP_SYS_RESOURCE)


def _docker_answers() -> bool:
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _install_host_packages() -> bool:
    missing = [pkg for pkg, probe in HOST_PACKAGES.items() if not Path(probe).exists()]
    if not missing:
        return False
    _say(f"docker: installing {' '.join(missing)} with apt-get")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    log = _log_dir() / "apt-get.log"
    _run("docker: apt-get update", ["apt-get", "update"], env=env, log=log, timeout=600)
    _run("docker: apt-get install", ["apt-get", "install", "-y", *missing], env=env, log=log, timeout=1200)
    return True


def _register_runc_wrapper() -> bool:
    """Installs the runc wrapper and makes it dockerd's default runtime; True if daemon.json changed.

    Only for hosts whose bounding set lacks CAP_SYS_RESOURCE: there runc cannot start the
    privileged containers kind asks for (see the wrapper's header).
    """
    wanted = RUNC_WRAPPER.read_bytes()
    if not WRAPPER_INSTALL_PATH.exists() or WRAPPER_INSTALL_PATH.read_bytes() != wanted:
        WRAPPER_INSTALL_PATH.parent.mkdir(parents=True, exist_ok=True)
        staging = WRAPPER_INSTALL_PATH.with_suffix(".new")
        staging.write_bytes(wanted)
        staging.chmod(0o755)
        staging.replace(WRAPPER_INSTALL_PATH)  # atomic: dockerd may be execing it right now
        _say(f"docker: installed {WRAPPER_INSTALL_PATH}")
    try:
        config = json.loads(DAEMON_JSON.read_text()) if DAEMON_JSON.exists() else {}
    except ValueError as error:
        raise ClusterError(f"docker: {DAEMON_JSON} is not valid JSON: {error}") from error
    merged = dict(config)
    merged["runtimes"] = {
        **config.get("runtimes", {}),
        DOCKER_RUNTIME_NAME: {"path": str(WRAPPER_INSTALL_PATH)},
    }
    merged["default-runtime"] = DOCKER_RUNTIME_NAME
    if merged == config:
        return False
    DAEMON_JSON.parent.mkdir(parents=True, exist_ok=True)
    DAEMON_JSON.write_text(json.dumps(merged, indent=2) + "\n")
    _say(f"docker: registered {DOCKER_RUNTIME_NAME} as the default runtime in {DAEMON_JSON}")
    return True


def _wait_for_docker(step: str, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _docker_answers():
            return
        time.sleep(1)
    said = log.read_text(errors="replace") if log.exists() else ""
    raise ClusterError(f"{step}: dockerd did not answer `docker info` within {seconds:.0f}s\n{_tail(said)}")


def _start_dockerd() -> None:
    log = _log_dir() / "dockerd.log"
    _say(f"docker: starting dockerd (log: {log})")
    with log.open("a") as sink:
        # Its own session: dockerd outlives this process, as a service would.
        subprocess.Popen(
            ["dockerd"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _wait_for_docker("docker: start dockerd", log)


def _restart_dockerd() -> None:
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        _run("docker: restart dockerd", ["systemctl", "restart", "docker"], timeout=120)
        _wait_for_docker("docker: restart dockerd", _log_dir() / "dockerd.log")
        return
    pid_file = Path("/var/run/docker.pid")
    if pid_file.exists():
        pid = int(pid_file.read_text().strip())
        _say(f"docker: stopping dockerd (pid {pid}) to reload {DAEMON_JSON}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.5)
    _start_dockerd()


def ensure_docker() -> None:
    """Makes `docker` usable: installs and starts it when needed, and on hosts lacking
    CAP_SYS_RESOURCE makes sure dockerd's default runtime is the capability-dropping wrapper."""
    with _timed_run("ensure_docker"), _step("docker") as record:
        installed = _install_host_packages()  # also what the image build needs (debootstrap, jq)
        changed = host_lacks_cap_sys_resource() and _register_runc_wrapper()
        if not _docker_answers():
            _start_dockerd()
        elif changed:
            _restart_dockerd()
        else:
            record["cached"] = not installed


# --------------------------------------------------------------------------------------------
# 2. binaries built with go


def _go_env(*, module_mode: bool) -> dict[str, str]:
    flags = "-trimpath -buildvcs=false -mod=readonly" if module_mode else "-trimpath -buildvcs=false"
    return {"GOTOOLCHAIN": "local", "GOFLAGS": flags, "GOWORK": "off", "CGO_ENABLED": "0"}


def _go_version() -> str:
    return _run("go", ["go", "env", "GOVERSION"]).stdout.strip()


def _gomod_version(module: str) -> str:
    text = (TOOLS_DIR / "go.mod").read_text()
    found = re.search(rf"^\s*{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
    if not found:
        raise ClusterError(f"kubernetes: {module} is not required in {TOOLS_DIR / 'go.mod'}")
    return found.group(1)


def kubernetes_version() -> str:
    return _gomod_version("k8s.io/kubernetes")


def _gomod_tools() -> list[str]:
    text = (TOOLS_DIR / "go.mod").read_text()
    block = re.search(r"^tool \((.*?)^\)", text, re.MULTILINE | re.DOTALL)
    if not block:
        raise ClusterError(f"kubernetes: no tool (...) block in {TOOLS_DIR / 'go.mod'}")
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def _go_output_name(package: str) -> str:
    """The file name `go build -o dir/` gives a main package: its last element, or the one
    before a major-version suffix (go.etcd.io/etcd/server/v3 -> server)."""
    parts = package.split("/")
    return parts[-2] if re.fullmatch(r"v\d+", parts[-1]) else parts[-1]


def _binary_name(package: str) -> str:
    return BINARY_NAMES.get(package, _go_output_name(package))


def _k8s_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            # Fixed, so that the same inputs give the same binaries.
            f"-X {pkg}.buildDate=2026-01-01T00:00:00Z",
        ]
    return " ".join(flags)


_KUBERNETES_BINARIES: dict[str, Path] = {}


def kubernetes_binaries() -> dict[str, Path]:
    """kubelet, kubeadm, kubectl, the control plane and etcd, from tools/go.mod's tool block."""
    if _KUBERNETES_BINARIES:
        return dict(_KUBERNETES_BINARIES)
    version = kubernetes_version()
    packages = _gomod_tools()
    ldflags = _k8s_ldflags(version)
    key = _hash(
        (TOOLS_DIR / "go.mod").read_bytes(), (TOOLS_DIR / "go.sum").read_bytes(), ldflags, _go_version()
    )[:12]
    out = cache_dir() / "bin" / f"kubernetes-{version}-{key}"
    binaries = {_binary_name(pkg): out / _binary_name(pkg) for pkg in packages}
    with _step("go build kubernetes+etcd") as record:
        if (out / ".complete").exists():
            record["cached"] = True
        else:
            staging = out.with_name(out.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            log = _log_dir() / "go-build-kubernetes.log"
            _say(f"go build kubernetes {version} + etcd (log: {log}); minutes on a cold Go build cache")
            _run(
                "go build kubernetes",
                ["go", "build", "-ldflags", ldflags, "-o", f"{staging}/", *packages],
                env=_go_env(module_mode=True),
                cwd=TOOLS_DIR,
                log=log,
                timeout=3600,
            )
            for pkg in packages:
                if _go_output_name(pkg) != _binary_name(pkg):
                    (staging / _go_output_name(pkg)).rename(staging / _binary_name(pkg))
            (staging / ".complete").touch()
            shutil.rmtree(out, ignore_errors=True)
            staging.rename(out)
            for stale in out.parent.glob("kubernetes-*"):  # about 500 MB each
                if stale != out:
                    shutil.rmtree(stale, ignore_errors=True)
    _KUBERNETES_BINARIES.update(binaries)
    return binaries


def _go_install(step: str, package: str, version: str, binary: str) -> Path:
    """`go install package@version` into the cache, once per (version, Go version)."""
    key = _hash(package, version, _go_version())[:12]
    out = cache_dir() / "bin" / f"{binary}-{version}-{key}"
    with _step(step) as record:
        if (out / binary).exists():
            record["cached"] = True
            return out / binary
        staging = out.with_name(out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        log = _log_dir() / f"go-install-{binary}.log"
        _run(
            step,
            ["go", "install", "-ldflags=-s -w", f"{package}@{version}"],
            env={**_go_env(module_mode=False), "GOBIN": str(staging)},
            cwd=cache_dir(),
            log=log,
            timeout=1800,
        )
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    return out / binary


def kind_binary() -> Path:
    return _go_install("go install kind", KIND[0], KIND[1], "kind")


def _pause_binary() -> Path:
    key = _hash(_tree_digest(PAUSE_DIR), _go_version())[:12]
    out = cache_dir() / "bin" / f"pause-{key}"
    with _step("go build pause") as record:
        if (out / "pause").exists():
            record["cached"] = True
            return out / "pause"
        out.mkdir(parents=True, exist_ok=True)
        _run(
            "go build pause",
            ["go", "build", "-ldflags=-s -w", "-o", str(out / "pause.partial"), "."],
            env=_go_env(module_mode=True),
            cwd=PAUSE_DIR,
            timeout=600,
        )
        (out / "pause.partial").rename(out / "pause")
    return out / "pause"


# --------------------------------------------------------------------------------------------
# 3. images


def _docker_image_exists(ref: str) -> bool:
    found = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, check=False)
    return found.returncode == 0


def _docker_build(step: str, tags: Sequence[str], dockerfile: str, files: Mapping[str, Path]) -> None:
    """`docker build` of a context holding `files`; FROM scratch or a local image, so no pull."""
    with tempfile.TemporaryDirectory(prefix="restlake-e2e-ctx-", dir=cache_dir()) as ctx:
        for name, source in files.items():
            target = Path(ctx) / name
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
        (Path(ctx) / "Dockerfile").write_text(dockerfile)
        tag_args = [arg for tag in tags for arg in ("-t", tag)]
        # The legacy builder: the docker CLI here may have no buildx, and it needs no registry.
        _run(step, ["docker", "build", "-q", *tag_args, ctx], env={"DOCKER_BUILDKIT": "0"}, timeout=900)


def _rootfs_images() -> tuple[str, str]:
    """(node rootfs image, toolbox base image), both from one debootstrap run."""
    key = _hash(RECIPE, DEBIAN_SUITE, NODE_PACKAGES, *ROOTFS_EXCLUDES, *TOOLBOX_EXCLUDES)[:12]
    rootfs_image = f"{ROOTFS_IMAGE_REPO}:{DEBIAN_SUITE}-{key}"
    toolbox_image = f"{TOOLBOX_BASE_REPO}:{DEBIAN_SUITE}-{key}"
    with _step("debootstrap rootfs") as record:
        if _docker_image_exists(rootfs_image) and _docker_image_exists(toolbox_image):
            record["cached"] = True
            return rootfs_image, toolbox_image
        work = cache_dir() / "work" / f"rootfs-{key}"
        done = work.with_name(work.name + ".complete")
        if not done.exists():
            shutil.rmtree(work, ignore_errors=True)
            work.parent.mkdir(parents=True, exist_ok=True)
            log = _log_dir() / "debootstrap.log"
            _say(f"debootstrap {DEBIAN_SUITE} (log: {log})")
            # No mirror argument: debootstrap's default Debian archive.
            _run(
                "debootstrap rootfs",
                ["debootstrap", "--variant=minbase", f"--include={NODE_PACKAGES}", DEBIAN_SUITE, work],
                log=log,
                timeout=1800,
            )
            done.touch()
    with _step("docker import rootfs"):
        _tar_import("docker import rootfs", work, ROOTFS_EXCLUDES, rootfs_image)
        _tar_import("docker import toolbox base", work, ROOTFS_EXCLUDES + TOOLBOX_EXCLUDES, toolbox_image)
        shutil.rmtree(work, ignore_errors=True)
        done.unlink(missing_ok=True)
    return rootfs_image, toolbox_image


def _tar_import(step: str, root: Path, excludes: Sequence[str], image: str) -> None:
    tar_cmd = ["tar", "--numeric-owner", "-C", str(root), *(f"--exclude={x}" for x in excludes), "-c", "."]
    with subprocess.Popen(tar_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as tar:
        imported = _run(step, ["docker", "import", "-", image], stdin=tar.stdout, check=False, timeout=900)
        assert tar.stderr is not None
        tar_said = tar.stderr.read().decode(errors="replace")
        tar.wait()
    if tar.returncode != 0 or imported.returncode != 0:
        raise ClusterError(
            f"{step}: `{' '.join(tar_cmd)} | docker import - {image}` failed "
            f"(tar {tar.returncode}, docker {imported.returncode})\n{_tail(tar_said + imported.stderr)}"
        )


def _kubeadm_images(kubeadm: Path, version: str) -> dict[str, str]:
    """Component name -> the image reference kubeadm expects for it, as `kubeadm config images list`
    prints it: {'kube-apiserver': '<kubeadm's registry>/kube-apiserver:v1.36.3', 'coredns': ...}."""
    listed = _run(
        "kubeadm config images list", [kubeadm, "config", "images", "list", "--kubernetes-version", version]
    ).stdout.split()
    images = {ref.rsplit(":", 1)[0].rsplit("/", 1)[-1]: ref for ref in listed}
    wanted = {
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
        "etcd",
        "coredns",
        "pause",
    }
    if not wanted <= images.keys():
        raise ClusterError(f"kubeadm config images list: expected {sorted(wanted)}, got {listed}")
    return images


def _scratch_dockerfile(binary: str, target: str, *, entrypoint: bool = True) -> str:
    lines = ["FROM scratch", f"COPY {binary} {target}", "ENV PATH=/usr/local/bin:/usr/bin:/bin"]
    if entrypoint:
        lines.append(f'ENTRYPOINT ["{target}"]')
    return "\n".join(lines) + "\n"


def _staging_tag(ref: str) -> str:
    """The host-side docker tag of a node image: kubeadm's names (under kubeadm's own registry) are given
    only inside the node's containerd, so that a docker here never sees them overwritten."""
    repo, tag = ref.rsplit(":", 1)
    return f"restlake/kind-staging-{repo.rsplit('/', 1)[-1]}:{tag}"


def _component_images(
    bins: Mapping[str, Path], images: Mapping[str, str], toolbox_base: str
) -> dict[str, str]:
    """Builds every image the node must hold; returns {docker tag on this host: name in the node}."""
    coredns_version = images["coredns"].rsplit(":", 1)[1]
    coredns = _go_install("go install coredns", COREDNS_MODULE, coredns_version, "coredns")
    provisioner = _go_install(
        "go install local-path-provisioner", *LOCAL_PATH_PROVISIONER, "local-path-provisioner"
    )
    pause = _pause_binary()
    with _step("docker build component images"):
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
            # kubeadm's static pods run the bare command name (`etcd`, `kube-apiserver`): via PATH.
            _docker_build(
                f"image {name}",
                [_staging_tag(images[name])],
                _scratch_dockerfile(name, f"/usr/local/bin/{name}"),
                {name: bins[name]},
            )
        _docker_build(
            "image coredns",
            [_staging_tag(images["coredns"])],
            _scratch_dockerfile("coredns", "/coredns"),
            {"coredns": coredns},
        )
        _docker_build(
            "image pause",
            [_staging_tag(images["pause"])],
            _scratch_dockerfile("pause", "/pause"),
            {"pause": pause},
        )
        _docker_build(
            "image local-path-provisioner",
            [PROVISIONER_IMAGE],
            _scratch_dockerfile("local-path-provisioner", "/usr/local/bin/local-path-provisioner"),
            {"local-path-provisioner": provisioner},
        )
        # kube-proxy needs iptables, so it lives in the Debian toolbox rather than on scratch.
        _docker_build(
            "image kube-proxy/toolbox",
            [_staging_tag(images["kube-proxy"]), TOOLBOX_IMAGE],
            f"FROM {toolbox_base}\n"
            "COPY kube-proxy.bin /usr/local/lib/restlake/kube-proxy\n"
            "COPY kube-proxy /usr/local/bin/kube-proxy\n"
            'CMD ["/bin/bash"]\n',
            {"kube-proxy.bin": bins["kube-proxy"], "kube-proxy": TOOLBOX_DIR / "kube-proxy"},
        )
    return {
        **{_staging_tag(ref): ref for ref in images.values()},
        PROVISIONER_IMAGE: PROVISIONER_IMAGE,
        TOOLBOX_IMAGE: TOOLBOX_IMAGE,
    }


def _overlay_tar(files: Mapping[str, bytes | Path], symlinks: Mapping[str, str]) -> bytes:
    """A tar (root-owned) of the overlay tree plus generated files, binaries and symlinks."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        entries: dict[str, tuple[bytes, int]] = {}
        for path in sorted(OVERLAY_DIR.rglob("*")):
            if path.is_file() and path.suffix != ".in":
                entries[str(path.relative_to(OVERLAY_DIR))] = (path.read_bytes(), path.stat().st_mode & 0o777)
        for name, content in files.items():
            if isinstance(content, Path):
                entries[name.lstrip("/")] = (content.read_bytes(), 0o755)
            else:
                entries[name.lstrip("/")] = (content, 0o644)
        dirs: set[str] = set()
        for name in [*entries, *(s.lstrip("/") for s in symlinks)]:
            parent = Path(name).parent
            while str(parent) not in (".", ""):
                dirs.add(str(parent))
                parent = parent.parent
        for name in sorted(dirs):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, (data, mode) in sorted(entries.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        for name, target in sorted(symlinks.items()):
            info = tarfile.TarInfo(name.lstrip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


# Run inside the build container once the overlay is laid: the systemd units a node needs, and
# none of the ones a Debian install enables (getty, timers, ...), which only slow a node's boot.
_NODE_SETUP = r"""
set -eu
rm -f /etc/systemd/system/*.wants/* /lib/systemd/system/multi-user.target.wants/* \
  /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/basic.target.wants/* \
  /lib/systemd/system/sockets.target.wants/*udev* /lib/systemd/system/sockets.target.wants/*initctl*
rm -f /lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service
grep -q '^ReadKMsg=no' /etc/systemd/journald.conf || echo 'ReadKMsg=no' >> /etc/systemd/journald.conf
systemctl enable containerd.service kubelet.service restlake-unmask-cgroups.service
systemctl mask systemd-binfmt.service getty.target console-getty.service
systemctl set-default multi-user.target
rm -f /etc/machine-id /var/lib/dbus/machine-id
mkdir -p /etc/kubernetes/manifests /etc/cni/net.d /var/lib/kubelet
/kind/bin/write-cni-config
"""


def _node_input_key(version: str, wrapper: bool) -> str:
    return _hash(
        RECIPE,
        DEBIAN_SUITE,
        NODE_PACKAGES,
        version,
        _go_version(),
        (TOOLS_DIR / "go.mod").read_bytes(),
        (TOOLS_DIR / "go.sum").read_bytes(),
        _tree_digest(OVERLAY_DIR),
        _tree_digest(PAUSE_DIR),
        _tree_digest(TOOLBOX_DIR),
        RUNC_WRAPPER.read_bytes() if wrapper else "no-wrapper",
        repr(
            (
                LOCAL_PATH_PROVISIONER,
                CRICTL,
                TOOLBOX_IMAGE,
                PROVISIONER_IMAGE,
                ROOTFS_EXCLUDES,
                TOOLBOX_EXCLUDES,
            )
        ),
    )[:12]


def build_node_image() -> str:
    """Returns the tag of the offline kind node image, building it unless docker has it."""
    with _timed_run("build_node_image"):
        ensure_docker()
        version = kubernetes_version()
        wrapper = host_lacks_cap_sys_resource()
        tag = f"{NODE_IMAGE_REPO}:{version}-{_node_input_key(version, wrapper)}"
        with _step("node image lookup") as record:
            if _docker_image_exists(tag):
                record["cached"] = True
                return tag
        _say(f"building {tag}")
        rootfs, toolbox_base = _rootfs_images()
        bins = kubernetes_binaries()
        crictl = _go_install("go install crictl", *CRICTL, "crictl")
        images = _kubeadm_images(bins["kubeadm"], version)
        node_images = _component_images(bins, images, toolbox_base)
        _assemble_node(tag, rootfs, version, bins, crictl, images, node_images, wrapper)
        for repo, keep in (
            (NODE_IMAGE_REPO, tag),
            (ROOTFS_IMAGE_REPO, rootfs),
            (TOOLBOX_BASE_REPO, toolbox_base),
        ):
            _prune_images(repo, keep)
        return tag


def _prune_images(repo: str, keep: str) -> None:
    """Untags this cache's images of `repo` built from other inputs (a node image is over 1 GB)."""
    listed = _run("prune old images", ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", repo])
    stale = [ref for ref in listed.stdout.split() if ref != keep and not ref.endswith(":<none>")]
    if stale:
        _say(f"removing outdated {', '.join(stale)}")
        subprocess.run(["docker", "rmi", *stale], capture_output=True, check=False)


def _node_files(
    version: str, bins: Mapping[str, Path], crictl: Path, images: Mapping[str, str], wrapper: bool
) -> tuple[dict[str, bytes | Path], dict[str, str]]:
    runc_binary = ""
    if wrapper:
        runc_binary = (
            "  # This host's bounding set lacks CAP_SYS_RESOURCE: strip it (and negative oom_score_adj,\n"
            "  # which needs it) from what runc is asked for. See tests/e2e/node/runc-drop-sys-resource.\n"
            f'  BinaryName = "{WRAPPER_INSTALL_PATH}"'
        )
    containerd = Template((OVERLAY_DIR / "etc/containerd/config.toml.in").read_text()).substitute(
        sandbox_image=images["pause"], runc_binary=runc_binary
    )
    storage = Template((OVERLAY_DIR / "kind/manifests/default-storage.yaml.in").read_text()).substitute(
        provisioner_image=PROVISIONER_IMAGE, helper_image=TOOLBOX_IMAGE
    )
    files: dict[str, bytes | Path] = {
        "kind/version": f"{version}\n".encode(),
        "etc/containerd/config.toml": containerd.encode(),
        "kind/manifests/default-storage.yaml": storage.encode(),
        "usr/bin/kubelet": bins["kubelet"],
        "usr/bin/kubeadm": bins["kubeadm"],
        "usr/bin/kubectl": bins["kubectl"],
        "usr/local/bin/crictl": crictl,
    }
    if wrapper:
        files[str(WRAPPER_INSTALL_PATH).lstrip("/")] = RUNC_WRAPPER
    # containerd and most CNI deployments look in /opt/cni/bin; Debian installs to /usr/lib/cni.
    symlinks = {f"opt/cni/bin/{plugin}": f"/usr/lib/cni/{plugin}" for plugin in NODE_CNI_PLUGINS}
    return files, symlinks


def _assemble_node(
    tag: str,
    rootfs: str,
    version: str,
    bins: Mapping[str, Path],
    crictl: Path,
    images: Mapping[str, str],
    node_images: Mapping[str, str],
    wrapper: bool,
) -> None:
    work = cache_dir() / "work"
    work.mkdir(parents=True, exist_ok=True)
    archive = work / "node-images.tar"
    container = f"restlake-kind-build-{os.getpid()}"
    step = "assemble node image"
    with _step("docker save images"):
        _run("docker save images", ["docker", "save", "-o", archive, *node_images], timeout=900)
    try:
        with _step(step):
            files, symlinks = _node_files(version, bins, crictl, images, wrapper)
            # Not privileged: it only gets files and images imported without unpacking (no mounts),
            # as kind's own image build does.
            _run(
                step,
                [
                    "docker",
                    "run",
                    "-d",
                    "--name",
                    container,
                    "--entrypoint",
                    "/bin/sleep",
                    rootfs,
                    "infinity",
                ],
            )
            with tempfile.TemporaryFile() as overlay:
                overlay.write(_overlay_tar(files, symlinks))
                overlay.seek(0)
                _run(
                    f"{step}: lay overlay",
                    ["docker", "exec", "-i", container, "tar", "-x", "--no-same-owner", "-C", "/"],
                    stdin=overlay,
                )
            _run(f"{step}: systemd units", ["docker", "exec", container, "bash", "-c", _NODE_SETUP])
        with _step("import images into node containerd"):
            _import_images(container, archive, node_images)
        with _step("docker commit node image"):
            interim = f"{tag}-interim"
            _run(
                "docker commit",
                [
                    "docker",
                    "commit",
                    "-c",
                    'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
                    "-c",
                    "CMD []",
                    "-c",
                    "ENV container=docker",
                    container,
                    interim,
                ],
                timeout=900,
            )
            # `docker commit -c` refuses STOPSIGNAL; systemd halts cleanly on SIGRTMIN+3.
            _docker_build(
                "docker build node image",
                [tag],
                f"FROM {interim}\nSTOPSIGNAL SIGRTMIN+3\nLABEL io.restlake.kind-node.kubernetes={version}\n",
                {},
            )
            _run("docker rmi interim", ["docker", "rmi", interim], check=False)
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
        archive.unlink(missing_ok=True)
        # The component images were only a vehicle into the node (the toolbox stays for tests).
        untag = [ref for ref in node_images if ref != TOOLBOX_IMAGE]
        subprocess.run(["docker", "rmi", *untag], capture_output=True, check=False)


def _normalize_ref(ref: str) -> str:
    """What containerd calls a docker reference: registry and library/ made explicit."""
    first = ref.split("/", 1)[0]
    if "/" not in ref:
        return f"docker.io/library/{ref}"
    if "." in first or ":" in first or first == "localhost":
        return ref
    return f"docker.io/{ref}"


def _import_images(container: str, archive: Path, node_images: Mapping[str, str]) -> None:
    """Imports `archive` (docker save of node_images' keys) into the build container's containerd,
    under node_images' values."""
    step = "import images into node containerd"
    # A containerd of its own for the import; the node's systemd starts the real one at boot.
    _run(
        step,
        [
            "docker",
            "exec",
            "-d",
            container,
            "sh",
            "-c",
            "containerd >/var/log/restlake-build-containerd.log 2>&1",
        ],
    )
    deadline = time.monotonic() + 30
    while _run(step, ["docker", "exec", container, "ctr", "version"], check=False).returncode != 0:
        if time.monotonic() > deadline:
            said = _run(
                step,
                ["docker", "exec", container, "cat", "/var/log/restlake-build-containerd.log"],
                check=False,
            )
            raise ClusterError(
                f"{step}: containerd did not come up in the build container\n{_tail(said.stdout)}"
            )
        time.sleep(0.5)
    with archive.open("rb") as stream:
        # --no-unpack: the CRI unpacks on first use; unpacking here would need mounts (privilege)
        # and double what every node copies into its /var volume.
        _run(
            step,
            [
                "docker",
                "exec",
                "-i",
                container,
                "ctr",
                "-n",
                "k8s.io",
                "images",
                "import",
                "--all-platforms",
                "--no-unpack",
                "-",
            ],
            stdin=stream,
            timeout=900,
        )
    ctr = ["docker", "exec", container, "ctr", "-n", "k8s.io", "images"]
    for staged, ref in node_images.items():
        if staged != ref:
            _run(step, [*ctr, "tag", "--force", _normalize_ref(staged), ref])
            _run(step, [*ctr, "rm", _normalize_ref(staged)])
    listed = set(_run(step, [*ctr, "ls", "-q"]).stdout.split())
    missing = [ref for ref in node_images.values() if _normalize_ref(ref) not in listed]
    if missing:
        raise ClusterError(
            f"{step}: not in the node's containerd after import: {missing}; it has {sorted(listed)}"
        )
    _run(
        step,
        [
            "docker",
            "exec",
            container,
            "sh",
            "-c",
            "pkill -x containerd; for i in $(seq 50); do"
            " pgrep -x containerd >/dev/null || exit 0; sleep 0.2; done; exit 1",
        ],
    )
    _run(
        step,
        [
            "docker",
            "exec",
            container,
            "sh",
            "-c",
            "rm -rf /run/containerd /var/log/restlake-build-containerd.log /tmp/*"
            " /var/lib/containerd/tmpmounts",
        ],
    )
    _say(f"node containerd holds: {', '.join(sorted(listed))}")


# --------------------------------------------------------------------------------------------
# 4. the cluster


def kubeconfig_path(name: str) -> Path:
    return cache_dir() / f"{name}.kubeconfig"


def kubectl(name: str) -> list[str]:
    """The command prefix to run our kubectl (same version as the cluster) against cluster `name`."""
    return [str(kubernetes_binaries()["kubectl"]), "--kubeconfig", str(kubeconfig_path(name))]


# kubelet 1.35+ refuses cgroup v1 hosts unless told otherwise; the node's containerd uses
# cgroupfs (SystemdCgroup = false), and kubelet's driver must match it.
KUBELET_PATCH = """\
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
"""


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (the kubeadm patches) as readable `|` blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


def _yaml_dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False)


def _merge(base: Any, extra: Any) -> Any:
    """config_extra on top of the generated config: maps merge, lists append, scalars replace."""
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for key, value in extra.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(extra, list):
        return [*base, *extra]
    return extra


def kind_config(image: str, config_extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [{"role": "control-plane", "image": image}],
        "kubeadmConfigPatches": [KUBELET_PATCH],
    }
    return _merge(config, dict(config_extra)) if config_extra else config


def _cluster_exists(kind: Path, name: str) -> bool:
    return name in _run("kind get clusters", [kind, "get", "clusters"]).stdout.split()


def _cluster_answers(kind: Path, name: str) -> bool:
    got = _run("kind get kubeconfig", [kind, "get", "kubeconfig", "--name", name], check=False)
    if got.returncode != 0:
        return False
    path = kubeconfig_path(name)
    path.write_text(got.stdout)
    path.chmod(0o600)
    ready = subprocess.run(
        [*kubectl(name), "get", "--raw", "/readyz", "--request-timeout=10s"],
        capture_output=True,
        text=True,
        check=False,
    )
    return ready.returncode == 0


def _node_diagnostics(name: str) -> str:
    node = f"{name}-control-plane"
    parts = []
    for title, cmd in (
        ("docker logs", ["docker", "logs", "--tail", "30", node]),
        ("kubelet", ["docker", "exec", node, "journalctl", "-u", "kubelet", "-n", "30", "--no-pager"]),
        ("containerd", ["docker", "exec", node, "journalctl", "-u", "containerd", "-n", "15", "--no-pager"]),
        (
            "pods",
            [
                "docker",
                "exec",
                node,
                "kubectl",
                "--kubeconfig=/etc/kubernetes/admin.conf",
                "get",
                "pods",
                "-A",
                "-o",
                "wide",
            ],
        ),
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
        parts.append(f"--- {title}:\n{_tail(proc.stdout + proc.stderr, 30)}")
    return "\n".join(parts)


def _wait_ready(name: str, step: str, seconds: int = 180) -> None:
    """Node Ready, CoreDNS and the storage provisioner rolled out."""
    waits = (
        ["wait", "--for=condition=Ready", "node", "--all", f"--timeout={seconds}s"],
        ["-n", "kube-system", "rollout", "status", "deployment/coredns", f"--timeout={seconds}s"],
        [
            "-n",
            "local-path-storage",
            "rollout",
            "status",
            "deployment/local-path-provisioner",
            f"--timeout={seconds}s",
        ],
    )
    for args in waits:
        proc = _run(step, [*kubectl(name), *args], check=False, timeout=seconds + 60)
        if proc.returncode != 0:
            raise ClusterError(
                f"{step}: `kubectl {' '.join(args)}` failed\n{_tail(proc.stderr + proc.stdout)}\n"
                f"{_node_diagnostics(name)}"
            )


def up(name: str, *, config_extra: Mapping[str, Any] | None = None) -> Path:
    """Creates (or reuses, if it exists and answers) kind cluster `name`; returns its kubeconfig."""
    with _timed_run(f"up {name}"):
        image = build_node_image()
        kind = kind_binary()
        with _step("reuse existing cluster") as record:
            if _cluster_exists(kind, name):
                if _cluster_answers(kind, name):
                    try:
                        _wait_ready(name, "check existing cluster", seconds=60)
                    except ClusterError as error:
                        said = _tail(str(error), 8)
                        _say(f"cluster {name} answers but is not healthy; recreating it:\n{said}")
                    else:
                        record["cached"] = True
                        _say(f"cluster {name} exists and is healthy; reusing it")
                        return kubeconfig_path(name)
                else:
                    _say(f"cluster {name} exists but does not answer; recreating it")
                _run("kind delete cluster", [kind, "delete", "cluster", "--name", name], timeout=300)
        config = cache_dir() / f"{name}.kind.yaml"
        config.write_text(_yaml_dump(kind_config(image, config_extra)))
        path = kubeconfig_path(name)
        path.unlink(missing_ok=True)
        log = _log_dir() / f"kind-create-{name}.log"
        log.unlink(missing_ok=True)
        with _step("kind create cluster"):
            try:
                # --retain: on failure the node stays for the diagnostics below, then goes.
                _run(
                    "kind create cluster",
                    [
                        kind,
                        "create",
                        "cluster",
                        "--name",
                        name,
                        "--image",
                        image,
                        "--config",
                        config,
                        "--kubeconfig",
                        path,
                        "--retain",
                        "--wait",
                        "0s",
                        "-v",
                        "1",
                    ],
                    log=log,
                    timeout=900,
                )
            except ClusterError as error:
                diagnostics = _node_diagnostics(name)
                subprocess.run([kind, "delete", "cluster", "--name", name], capture_output=True, check=False)
                raise ClusterError(f"{error}\n{diagnostics}") from error
            path.chmod(0o600)
        with _step("wait for node, coredns, storage"):
            _wait_ready(name, "wait for cluster")
        return path


def down(name: str) -> None:
    """Deletes kind cluster `name` (a no-op when it does not exist) and its kubeconfig."""
    with _timed_run(f"down {name}"), _step("kind delete cluster"):
        _run("kind delete cluster", [kind_binary(), "delete", "cluster", "--name", name], timeout=300)
        kubeconfig_path(name).unlink(missing_ok=True)
        (cache_dir() / f"{name}.kind.yaml").unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# 5. smoke check

SMOKE_NAMESPACE = "restlake-smoke"


def _smoke_manifest() -> str:
    pod_defaults = {"terminationGracePeriodSeconds": 1, "enableServiceLinks": False}
    container = {"image": TOOLBOX_IMAGE, "imagePullPolicy": "Never"}
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SMOKE_NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "echo", "namespace": SMOKE_NAMESPACE, "labels": {"app": "smoke-echo"}},
            "spec": {
                **pod_defaults,
                "containers": [
                    {
                        **container,
                        "name": "echo",
                        "command": [
                            "socat",
                            "TCP-LISTEN:8080,fork,reuseaddr",
                            "SYSTEM:echo restlake-smoke-ok",
                        ],
                        "ports": [{"containerPort": 8080}],
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "smoke-echo", "namespace": SMOKE_NAMESPACE},
            "spec": {"selector": {"app": "smoke-echo"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "client", "namespace": SMOKE_NAMESPACE},
            "spec": {
                **pod_defaults,
                "containers": [{**container, "name": "client", "command": ["sleep", "infinity"]}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": SMOKE_NAMESPACE},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "volume", "namespace": SMOKE_NAMESPACE},
            "spec": {
                **pod_defaults,
                "restartPolicy": "Never",
                "containers": [
                    {
                        **container,
                        "name": "volume",
                        "command": ["sh", "-c", "echo written > /data/probe && cat /data/probe"],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        },
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


def _retry(step: str, attempt: Any, *, seconds: float, what: str) -> str:
    """Calls attempt() -> CompletedProcess until it exits 0; its stdout, or ClusterError."""
    deadline = time.monotonic() + seconds
    while True:
        proc = attempt()
        if proc.returncode == 0:
            return str(proc.stdout)
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{step}: {what} still failing after {seconds:.0f}s\n{_tail(proc.stderr + proc.stdout)}"
            )
        time.sleep(2)


def smoke(name: str) -> None:
    """Proves the cluster is usable: node Ready, a pod-network pod Running, CoreDNS answering,
    pod-to-pod through a ClusterIP Service, and a PVC bound by the default StorageClass."""
    with _timed_run(f"smoke {name}"):
        k = kubectl(name)
        if not kubeconfig_path(name).exists():
            raise ClusterError(
                f"smoke: no kubeconfig at {kubeconfig_path(name)}; run `up --name {name}` first"
            )

        def kc(
            step: str, *args: str, check: bool = True, timeout: float = 240
        ) -> subprocess.CompletedProcess[str]:
            return _run(f"smoke: {step}", [*k, *args], check=check, timeout=timeout)

        kc("clean", "delete", "namespace", SMOKE_NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180)
        try:
            with _step("smoke: node Ready"):
                kc("node Ready", "wait", "--for=condition=Ready", "node", "--all", "--timeout=120s")
            with _step("smoke: pods Running"):
                with tempfile.NamedTemporaryFile("w", suffix=".yaml") as manifest:
                    manifest.write(_smoke_manifest())
                    manifest.flush()
                    kc("apply", "apply", "-f", manifest.name)
                kc(
                    "pods Running",
                    "-n",
                    SMOKE_NAMESPACE,
                    "wait",
                    "--for=condition=Ready",
                    "pod/echo",
                    "pod/client",
                    "--timeout=120s",
                )
            with _step("smoke: CoreDNS resolves"):
                out = _retry(
                    "smoke: CoreDNS",
                    lambda: kc(
                        "CoreDNS",
                        "-n",
                        SMOKE_NAMESPACE,
                        "exec",
                        "client",
                        "--",
                        "getent",
                        "hosts",
                        "kubernetes.default.svc.cluster.local",
                        check=False,
                    ),
                    seconds=60,
                    what="resolving kubernetes.default.svc.cluster.local from a pod",
                )
                _say(f"smoke: kubernetes.default.svc.cluster.local -> {out.split()[0]}")
            with _step("smoke: pod -> Service -> pod"):
                out = _retry(
                    "smoke: Service",
                    lambda: kc(
                        "Service",
                        "-n",
                        SMOKE_NAMESPACE,
                        "exec",
                        "client",
                        "--",
                        "socat",
                        "-T",
                        "5",
                        "-u",
                        f"TCP:smoke-echo.{SMOKE_NAMESPACE}.svc.cluster.local:80,connect-timeout=5",
                        "STDOUT",
                        check=False,
                    ),
                    seconds=60,
                    what="reaching pod echo through Service smoke-echo",
                )
                if "restlake-smoke-ok" not in out:
                    raise ClusterError(f"smoke: Service: unexpected answer {out!r}")
            with _step("smoke: PVC bound"):
                kc(
                    "PVC",
                    "-n",
                    SMOKE_NAMESPACE,
                    "wait",
                    "--for=jsonpath={.status.phase}=Bound",
                    "pvc/data",
                    "--timeout=120s",
                )
                kc(
                    "PVC",
                    "-n",
                    SMOKE_NAMESPACE,
                    "wait",
                    "--for=jsonpath={.status.phase}=Succeeded",
                    "pod/volume",
                    "--timeout=120s",
                )
                logs = kc("PVC", "-n", SMOKE_NAMESPACE, "logs", "volume").stdout
                if "written" not in logs:
                    raise ClusterError(f"smoke: PVC: the volume pod printed {logs!r}")
        except ClusterError as error:
            described = kc("describe", "-n", SMOKE_NAMESPACE, "describe", "pods,pvc", check=False)
            raise ClusterError(
                f"{error}\n--- describe:\n{_tail(described.stdout, 60)}\n{_node_diagnostics(name)}"
            ) from error
        kc("clean", "delete", "namespace", SMOKE_NAMESPACE, "--wait=false")
        _say("smoke: all checks passed")


# --------------------------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("docker", help="make docker usable (install, start, runc wrapper)")
    commands.add_parser("build", help="build (or find) the node image; prints its tag")
    for command, text in (
        ("up", "create or reuse a cluster; prints the kubeconfig path"),
        ("down", "delete a cluster"),
        ("smoke", "check a cluster works"),
    ):
        sub = commands.add_parser(command, help=text)
        sub.add_argument("--name", default="restlake-e2e")
        if command == "up":
            sub.add_argument("--config-extra", type=Path, help="YAML merged into the generated kind config")
    args = parser.parse_args(argv)
    try:
        if args.command == "docker":
            ensure_docker()
        elif args.command == "build":
            print(build_node_image())
        elif args.command == "up":
            extra = yaml.safe_load(args.config_extra.read_text()) if args.config_extra else None
            print(up(args.name, config_extra=extra))
        elif args.command == "down":
            down(args.name)
        else:
            smoke(args.name)
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
