"""`make e2e`: every step from a bare machine to the e2e verdict, then teardown.

1. Docker: installed and started where missing (with the runc wrapper only where the host lacks
   CAP_SYS_RESOURCE) — tests/e2e/node/cluster.py;
2. the kind node image, assembled from Debian packages and Go modules (cached);
3. the restlake images and the e2e services' images (tests/e2e/images.py, cached);
4. a kind cluster, and the images loaded into it;
5. `pytest tests/e2e/` against it;
6. teardown, unless KEEP=1 (the cluster stays up for a look; its kubeconfig is printed).

A failing step is named, with its error; when the cluster exists its pods are described and their
logs printed. Wall times of every step go to `.restlake/e2e/run.json` (cold and warm runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CLUSTER = os.environ.get("RESTLAKE_E2E_CLUSTER", "restlake-e2e")
STATE = REPO / ".restlake" / "e2e"
T = TypeVar("T")
sys.path.insert(0, str(HERE))

from kube import Kube, load_module  # noqa: E402 - tests/e2e is not a package


class Run:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.started = time.monotonic()

    def step(self, name: str, action: Callable[[], T]) -> T:
        print(f"\n==> {name}", flush=True)
        began = time.monotonic()
        try:
            return action()
        except BaseException:
            self.timings[name] = round(time.monotonic() - began, 1)
            print(f"\n!!! make e2e failed at step: {name}", flush=True)
            raise
        finally:
            if name not in self.timings:
                self.timings[name] = round(time.monotonic() - began, 1)
            print(f"<== {name}: {self.timings[name]:.0f}s", flush=True)

    def write(self, outcome: str) -> None:
        STATE.mkdir(parents=True, exist_ok=True)
        record = {
            "outcome": outcome,
            "total_seconds": round(time.monotonic() - self.started, 1),
            "steps": self.timings,
        }
        (STATE / "run.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"\nmake e2e: {outcome} in {record['total_seconds']:.0f}s; steps: {json.dumps(self.timings)}")


def main() -> int:
    keep = os.environ.get("KEEP", "") not in ("", "0")
    node = load_module("e2e_cluster", HERE / "node" / "cluster.py")
    images = load_module("e2e_images", HERE / "images.py")
    run = Run()
    kubeconfig: Path | None = None
    outcome = "failed"
    try:
        run.step("docker: install and start where missing", node.ensure_docker)
        image = run.step("kind node image (cached)", node.build_node_image)
        run.step("restlake and service images (cached)", lambda: images.build([], verbose=False))
        kubeconfig = run.step(f"kind cluster up ({image})", lambda: node.up(CLUSTER))
        refs = [i.ref for i in images.selected([])]
        run.step("load images into the cluster", lambda: _load_images(node.kind_binary(), refs))
        kubectl = node.kubernetes_binaries()["kubectl"]
        env = {
            **os.environ,
            "RESTLAKE_E2E_KUBECONFIG": str(kubeconfig),
            "RESTLAKE_E2E_KUBECTL": str(kubectl),
            "RESTLAKE_E2E_FIGURES": str(STATE / "figures.json"),
        }
        pytest = [
            sys.executable,
            "-m",
            "pytest",
            str(HERE / "test_pipeline.py"),
            "-p",
            "no:cacheprovider",
            "-rA",
        ]
        code = run.step(
            "pytest tests/e2e", lambda: subprocess.run(pytest, env=env, cwd=REPO, check=False).returncode
        )
        outcome = "passed" if code == 0 else f"failed (pytest exit {code})"
        return code
    except Exception as exc:
        traceback.print_exc()
        print(f"\nerror: {exc}", file=sys.stderr)
        if kubeconfig is not None:
            _diagnose(node, kubeconfig)
        return 1
    finally:
        if keep and kubeconfig is not None:
            print(f"\nKEEP=1: cluster {CLUSTER} left up; export KUBECONFIG={kubeconfig}")
        else:
            try:
                run.step("teardown", lambda: node.down(CLUSTER))
            except Exception as exc:  # the verdict stands; say why the cluster may linger
                print(f"teardown failed: {exc}", file=sys.stderr)
        run.write(outcome)


def _load_images(kind: Path, refs: list[str]) -> None:
    _check_disk_for(refs)
    subprocess.run([str(kind), "load", "docker-image", "--name", CLUSTER, *refs], check=True)


def _check_disk_for(refs: list[str]) -> None:
    """Fail before `kind load` when the disk cannot hold the images twice more.

    The node's containerd unpacks every image beside the copy Docker already holds, and the image
    tar streams through a temporary file: a full disk shows up deep in `ctr import` as a failed
    layer extraction, minutes in, and leaves the node half loaded.
    """
    inspect = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", *refs],
        capture_output=True,
        text=True,
        check=True,
    )
    needed = 2 * sum(int(size) for size in inspect.stdout.split())
    root = subprocess.run(
        ["docker", "info", "--format", "{{.DockerRootDir}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    stat = os.statvfs(root)
    free = stat.f_bavail * stat.f_frsize
    if free < needed:
        raise RuntimeError(
            f"loading the images into the kind node needs about {needed / 2**30:.1f} GiB free under "
            f"Docker's data root, and {free / 2**30:.1f} GiB is: free some space "
            "(e.g. `docker image prune --filter until=1h`) and run `make e2e` again"
        )


def _diagnose(node: Any, kubeconfig: Path) -> None:
    kube = Kube(kubeconfig, str(node.kubernetes_binaries()["kubectl"]), "helm")
    print(kube.diagnose(["restlake-e2e", "restlake-infra", "kube-system"]))


if __name__ == "__main__":
    raise SystemExit(main())
