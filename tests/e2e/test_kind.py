"""The whole thing on kind: Terraform up, a source against the demo API, rows in Postgres and on MinIO.

Needs a Docker engine and the internet (kind node image, third-party charts and images, the
Terraform registry), so it skips where either is missing, with the reason. The steps are the
ones terraform/kind/README.md documents for a person:

1. build the three images (docker/Dockerfile);
2. `tofu apply -target=kind_cluster.this`, then `kind load docker-image` the images;
3. `tofu apply` of the operators (their CRDs must exist before kubernetes_manifest plans),
   then a full `tofu apply`;
4. deploy the demo API in the cluster and apply examples/demo-link.yaml pointed at it;
5. wait for `kubectl get isrc` to show Ready, then check Postgres and the bronze table agree;
6. `helm upgrade` the release, check it rolled; `tofu destroy` at the end, pass or fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from restlake.contracts.spec import load_source

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "terraform" / "kind"
TAG = "0.1.0"
IMAGES = {target: f"restlake/{target}:{TAG}" for target in ("operator", "fetcher", "spark")}
NAMESPACE = "restlake"
SOURCE = "demo-link"


def _docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    proc = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        said = proc.stderr.strip().splitlines()
        return f"`docker info` failed: {said[-1] if said else f'exit {proc.returncode}'}"
    return None


def _network_closed() -> str | None:
    # Probe the first chart repository the module itself uses, rather than a hard-coded host.
    text = (MODULE / "variables.tf").read_text()
    url = re.search(r'strimzi\s*=\s*"(https://[^"]+)"', text)
    assert url, "variables.tf has no strimzi chart repository default"
    host = urllib.parse.urlparse(url.group(1)).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as error:
        return f"cannot reach the chart repositories ({host}:443: {error})"
    return None


def _skip_reason() -> str | None:
    return _docker_unavailable() or _network_closed()


@pytest.fixture(scope="module")
def tools() -> dict[str, Path]:
    reason = _skip_reason()
    if reason:
        pytest.skip(f"kind e2e needs Docker and the internet: {reason}")
    gotools = _load("gotools")
    harness = _load("harness")
    return {
        "tofu": gotools.build(gotools.TOFU),
        "helm": gotools.build(gotools.HELM),
        "kind": gotools.build(gotools.KIND),
        "kubectl": harness.ensure_binaries()["kubectl"],
    }


def _load(name: str) -> Any:
    """A module of tests/k8s (the tool builders); test tiers are not packages."""
    spec = importlib.util.spec_from_file_location(
        f"restlake_k8s_{name}", REPO / "tests" / "k8s" / f"{name}.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def run(*cmd: str | Path, timeout: float = 1800, env: dict[str, str] | None = None, cwd: Path = REPO) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        cwd=cwd,
        env=dict(os.environ) | (env or {}),
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return proc.stdout


@pytest.fixture(scope="module")
def environment(tools: dict[str, Path]) -> Iterator[dict[str, Any]]:
    tofu = tools["tofu"]
    for target, image in IMAGES.items():
        run("docker", "build", "-f", "docker/Dockerfile", "--target", target, "-t", image, ".", timeout=3600)
    chdir = f"-chdir={MODULE}"
    run(tofu, chdir, "init", "-input=false")
    try:
        run(tofu, chdir, "apply", "-auto-approve", "-input=false", "-target=kind_cluster.this")
        outputs = json.loads(run(tofu, chdir, "output", "-json"))
        run(
            tools["kind"],
            "load",
            "docker-image",
            *IMAGES.values(),
            "--name",
            outputs["cluster_name"]["value"],
        )
        run(
            tofu,
            chdir,
            "apply",
            "-auto-approve",
            "-input=false",
            "-target=helm_release.strimzi",
            "-target=helm_release.cloudnative_pg",
        )
        run(tofu, chdir, "apply", "-auto-approve", "-input=false", timeout=3600)
        outputs = json.loads(run(tofu, chdir, "output", "-json"))
        yield {name: out["value"] for name, out in outputs.items()} | {"kubectl": tools["kubectl"]}
    finally:
        run(tofu, chdir, "destroy", "-auto-approve", "-input=false", timeout=1800)


def kubectl(env: dict[str, Any], *args: str, stdin: str | None = None) -> str:
    cmd = [str(env["kubectl"]), f"--kubeconfig={env['kubeconfig_path']}", "-n", NAMESPACE, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, input=stdin, check=False, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def demo_api_manifests() -> str:
    labels = {"app.kubernetes.io/name": "demo-api"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "demo-api", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "demo-api",
                            "image": IMAGES["fetcher"],
                            "args": ["restlake", "demo-api", "serve", "--host", "0.0.0.0", "--port", "8085"],
                            "ports": [{"name": "http", "containerPort": 8085}],
                        }
                    ]
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "demo-api"},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 8085, "targetPort": "http"}]},
    }
    return yaml.safe_dump_all([deployment, service])


def example_in_cluster() -> str:
    """examples/demo-link.yaml, pointed at the demo API's Service instead of loopback."""
    path = REPO / "examples" / f"{SOURCE}.yaml"
    doc = yaml.safe_load(path.read_text())
    assert load_source(path).name == SOURCE
    doc["spec"]["request"]["url"] = doc["spec"]["request"]["url"].replace(
        "127.0.0.1:8085", f"demo-api.{NAMESPACE}.svc:8085"
    )
    return yaml.safe_dump(doc)


def eventually(check: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(10)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def test_source_lands_in_postgres_and_bronze_then_helm_upgrade(
    environment: dict[str, Any], tools: dict[str, Path]
) -> None:
    env = environment
    kubectl(env, "apply", "-f", "-", stdin=demo_api_manifests())
    kubectl(env, "rollout", "status", "deployment/demo-api", "--timeout=5m")
    kubectl(env, "apply", "-f", "-", stdin=example_in_cluster())

    def ready() -> bool:
        table = kubectl(env, "get", "isrc", SOURCE)
        header, row = table.splitlines()[:2]
        columns = dict(zip(header.split(), row.split(), strict=False))
        return columns.get("READY") == "True"

    eventually(ready, timeout=900, what=f"isrc/{SOURCE} Ready")

    def postgres_rows() -> int:
        out = kubectl(
            env,
            "exec",
            "restlake-pg-1",
            "-c",
            "postgres",
            "--",
            "psql",
            "-d",
            "restlake",
            "-tAc",
            f"select count(*), count(distinct external_id) from raw.api_events where source = '{SOURCE}'",
        )
        rows, distinct = (int(x) for x in out.strip().split("|"))
        assert rows == distinct, "duplicate rows in Postgres"
        return rows

    rows = eventually(postgres_rows, timeout=600, what="rows in raw.api_events")
    # The bronze table holds every version; its distinct ids must be exactly the Postgres rows.
    bronze = load_source(REPO / "examples" / f"{SOURCE}.yaml").bronze_path(env["lake_root"])
    count_bronze = (
        "from pyspark.sql import SparkSession;"
        "import os;"
        "s=SparkSession.builder.master('local[1]')"
        ".config('spark.sql.extensions','io.delta.sql.DeltaSparkSessionExtension')"
        ".config('spark.sql.catalog.spark_catalog','org.apache.spark.sql.delta.catalog.DeltaCatalog')"
        ".config('spark.hadoop.fs.s3a.endpoint',os.environ['AWS_ENDPOINT_URL'])"
        ".config('spark.hadoop.fs.s3a.path.style.access','true').getOrCreate();"
        f"print(s.read.format('delta').load('{bronze}')"
        f".where(\"source = '{SOURCE}'\").select('external_id').distinct().count())"
    )
    out = kubectl(env, "exec", f"deployment/{SOURCE}-stream", "--", "python", "-c", count_bronze)
    assert int(out.strip().splitlines()[-1]) == rows

    helm = tools["helm"]
    run(
        helm,
        "upgrade",
        "restlake",
        REPO / "charts" / "restlake",
        "-n",
        NAMESPACE,
        "--kubeconfig",
        env["kubeconfig_path"],
        "--reuse-values",
        "--set",
        "spark.worker.replicas=2",
        "--wait",
        "--timeout",
        "10m",
    )
    workers = json.loads(kubectl(env, "get", "deployment", "restlake-spark-worker", "-o", "json"))
    assert workers["status"]["readyReplicas"] == 2
    run(helm, "test", "restlake", "-n", NAMESPACE, "--kubeconfig", env["kubeconfig_path"], "--timeout", "5m")
