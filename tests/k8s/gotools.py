"""Build command-line tools (helm, OpenTofu, Terraform providers) from the Go module proxy.

Each tool is built once into `<tools cache>/<name>-<version>/` and reused
(`RESTLAKE_TOOLS_DIR`, default `~/.cache/restlake/tools`); a file lock
makes concurrent test sessions wait for one build instead of racing. The module's source is
copied out of the read-only module cache and built as the main module, so its own `replace`
directives and `go.sum` apply exactly as upstream's release build would use them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from restlake.settings import StackSettings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_ROOT = StackSettings().tools_dir


class ToolBuildError(RuntimeError):
    """A tool could not be fetched or built; the message carries the command and its output."""


@dataclass(frozen=True)
class GoTool:
    """One binary built from one package of one module version."""

    name: str  # file name of the binary
    module: str  # module path as the proxy serves it
    version: str  # exact module version, never a branch (builds must be reproducible)
    package: str = "."  # package directory inside the module
    ldflags: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return TOOLS_ROOT / f"{self.name}-{self.version}"

    @property
    def binary(self) -> Path:
        return self.home / "bin" / self.name

    @property
    def record(self) -> Path:
        """JSON written after a build: how long it took and from what, for the closing note."""
        return self.home / "build.json"

    @property
    def recipe(self) -> dict[str, object]:
        """What determines the binary; a cached build made from another recipe is rebuilt."""
        return {
            "module": self.module,
            "version": self.version,
            "package": self.package,
            "ldflags": list(self.ldflags),
        }

    def is_built(self) -> bool:
        if not (self.binary.exists() and self.record.exists()):
            return False
        try:
            return json.loads(self.record.read_text()).get("recipe") == self.recipe
        except ValueError:
            return False


HELM = GoTool(
    name="helm",
    module="helm.sh/helm/v3",
    version="v3.22.0",
    package="cmd/helm",
    # `helm version` would otherwise print an empty version, and `helm lint` checks
    # `kubeVersion` constraints against the client's version.
    ldflags=(
        "-s -w",
        "-X helm.sh/helm/v3/internal/version.version=v3.22.0",
        # What upstream's Makefile derives from the client-go it builds with (v0.37 -> 1.37):
        # without it, `helm template` assumes Kubernetes 1.20 and `kubeVersion` checks fail.
        "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1",
        "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37",
        "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
        "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37",
    ),
)

TOFU = GoTool(
    name="tofu",
    module="github.com/opentofu/opentofu",
    version="v1.10.6",
    package="cmd/tofu",
    ldflags=("-s -w",),
)


# kind's CLI, for `kind load docker-image` in tests/e2e (the Terraform provider embeds kind
# but cannot side-load images).
KIND = GoTool(name="kind", module="sigs.k8s.io/kind", version="v0.30.0", ldflags=("-s -w",))

# Terraform providers for `tofu validate`, keyed by their source address in versions.tf; the
# versions are the ones versions.tf pins (a test checks they agree). The binary name is what
# tofu's dev_overrides look for in the override directory.
PROVIDERS: dict[str, GoTool] = {
    "tehcyx/kind": GoTool(
        name="terraform-provider-kind", module="github.com/tehcyx/terraform-provider-kind", version="v0.9.0"
    ),
    "hashicorp/helm": GoTool(
        name="terraform-provider-helm",
        module="github.com/hashicorp/terraform-provider-helm",
        version="v2.17.0",
    ),
    "hashicorp/kubernetes": GoTool(
        name="terraform-provider-kubernetes",
        module="github.com/hashicorp/terraform-provider-kubernetes",
        version="v2.38.0",
    ),
}


def go_env() -> dict[str, str]:
    """Environment for `go`: no toolchain download, no VCS stamping (sources come from the proxy)."""
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    env["GOFLAGS"] = "-buildvcs=false"
    env["GOWORK"] = "off"
    env["CGO_ENABLED"] = "0"
    return env


def _run(cmd: list[str], cwd: Path | None, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ToolBuildError(
            f"`{' '.join(cmd)}` (in {cwd or '.'}) exited {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _make_writable(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in files:
            path = Path(dirpath, name)
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def build(tool: GoTool) -> Path:
    """Return the tool's binary, building it first when it is missing."""
    if tool.is_built():
        return tool.binary
    with _lock(TOOLS_ROOT / f".{tool.name}-{tool.version}.lock"):
        if tool.is_built():  # another session built it while we waited
            return tool.binary
        env = go_env() | tool.env
        started = time.monotonic()
        # `go mod download -json` reports a refusal in its JSON (and exits 1): keep its words.
        cmd = ["go", "mod", "download", "-json", f"{tool.module}@{tool.version}"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        try:
            info = json.loads(proc.stdout)
        except ValueError:
            info = {"Error": proc.stderr.strip() or f"exit {proc.returncode}"}
        if info.get("Error") or proc.returncode != 0:
            raise ToolBuildError(f"module proxy refused {tool.module}@{tool.version}: {info.get('Error')}")
        downloaded = time.monotonic()
        src = tool.home / "src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(info["Dir"], src)
        _make_writable(src)
        out = tool.home / "bin" / f".{tool.name}.partial"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["go", "build", "-mod=mod", "-trimpath", "-o", str(out)]
        if tool.ldflags:
            cmd += ["-ldflags", " ".join(tool.ldflags)]
        cmd.append(f"./{tool.package}" if tool.package != "." else ".")
        log.info("building %s %s from the Go module proxy", tool.name, tool.version)
        _run(cmd, src, env)
        out.replace(tool.binary)  # atomic: a half-written binary is never picked up
        shutil.rmtree(src, ignore_errors=True)  # the module cache and build cache keep what matters
        finished = time.monotonic()
        tool.record.write_text(
            json.dumps(
                {
                    "recipe": tool.recipe,
                    "download_seconds": round(downloaded - started, 1),
                    "build_seconds": round(finished - downloaded, 1),
                    "total_seconds": round(finished - started, 1),
                },
                indent=2,
            )
        )
        log.info("built %s in %.0fs", tool.binary, finished - started)
        return tool.binary


def try_build(tool: GoTool) -> tuple[Path | None, str]:
    """Build ``tool`` or explain why not: ``(binary, "")`` or ``(None, the exact error)``."""
    try:
        return build(tool), ""
    except ToolBuildError as error:
        return None, str(error)


if __name__ == "__main__":  # `python tests/k8s/gotools.py [helm|tofu|kind]...` builds and prints paths
    import sys

    logging.basicConfig(level=logging.INFO)
    known = {tool.name: tool for tool in (HELM, TOFU, KIND)}
    for wanted in sys.argv[1:] or ["helm", "tofu"]:
        print(build(known[wanted]))
