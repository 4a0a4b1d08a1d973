"""terraform/kind: `tofu fmt`, `tofu validate` where the providers can be built, and structure checks.

OpenTofu is built from the Go module proxy (tests/k8s/gotools.py). `tofu validate` needs the
three providers' schemas; they are built from the proxy too and handed to tofu through a CLI
config with `dev_overrides`, so nothing is fetched from a provider registry. Where the proxy
refuses a provider, the validate test skips with the proxy's exact answer, and the structure
tests below (python-hcl2) still check what validate would not: pins, provider wiring, no
local-exec, every variable used and documented, references that resolve.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from .gotools import PROVIDERS, REPO_ROOT, TOFU, TOOLS_ROOT, build, try_build

pytestmark = pytest.mark.k8s

MODULE = REPO_ROOT / "terraform" / "kind"
FILES = {
    "versions.tf",
    "providers.tf",
    "variables.tf",
    "outputs.tf",
    "cluster.tf",
    "kafka.tf",
    "storage.tf",
    "postgres.tf",
    "marquez.tf",
    "monitoring.tf",
    "restlake.tf",
}


@pytest.fixture(scope="session")
def tofu() -> Path:
    return build(TOFU)


@pytest.fixture(scope="module")
def parsed() -> dict[str, dict[str, Any]]:
    return {path.name: unquote_keys(hcl2.loads(path.read_text())) for path in sorted(MODULE.glob("*.tf"))}


def unquote_keys(value: Any) -> Any:
    """python-hcl2 keeps the quotes of labels and string literals; drop them recursively."""
    if isinstance(value, dict):
        # `__is_block__` and `__comments__` are the parser's own markers, not HCL.
        return {unquote(key): unquote_keys(item) for key, item in value.items() if not key.startswith("__")}
    if isinstance(value, list):
        return [unquote_keys(item) for item in value]
    return unquote(value)


def blocks(parsed: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [block for doc in parsed.values() for block in doc.get(kind, [])]


def resources(parsed: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`type.name` → body of every resource in the module."""
    found: dict[str, dict[str, Any]] = {}
    for block in blocks(parsed, "resource"):
        for rtype, named in block.items():
            for name, body in named.items():
                found[f"{rtype}.{name}"] = body
    return found


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals' quotes and wraps expressions in ${...}; strip both."""
    if isinstance(value, str):
        value = value.strip()
        if value.startswith('"') and value.endswith('"'):
            value = value[1:-1]
        if value.startswith("${") and value.endswith("}"):
            value = value[2:-1]
    return value


# ---------------------------------------------------------------------------------------------
# the OpenTofu CLI
# ---------------------------------------------------------------------------------------------


def run_tofu(tofu: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # An empty CLI config unless the test brings one: whatever the machine's TF_CLI_CONFIG_FILE
    # says (mirrors, credentials) must not change the outcome.
    empty = TOOLS_ROOT / "empty.tfrc"
    if not empty.exists():
        empty.parent.mkdir(parents=True, exist_ok=True)
        empty.write_text("")
    base = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", TF_CLI_CONFIG_FILE=str(empty))
    return subprocess.run(
        [str(tofu), *args], capture_output=True, text=True, check=False, env=base | (env or {}), timeout=300
    )


def test_tofu_is_the_pinned_build(tofu: Path) -> None:
    proc = run_tofu(tofu, "version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"OpenTofu {TOFU.version}"), proc.stdout


def test_fmt_check(tofu: Path) -> None:
    proc = run_tofu(tofu, "fmt", "-check", "-recursive", "-diff", str(MODULE))
    assert proc.returncode == 0, f"run `tofu fmt -recursive terraform/`:\n{proc.stdout}{proc.stderr}"


def test_fmt_check_catches_bad_formatting(tofu: Path, tmp_path: Path) -> None:
    # Guards the test above against passing vacuously (e.g. on a wrong path).
    (tmp_path / "bad.tf").write_text('variable "x" {\ndescription="y"\n}\n')
    assert run_tofu(tofu, "fmt", "-check", "-recursive", str(tmp_path)).returncode == 3


def test_validate(tofu: Path, tmp_path: Path) -> None:
    overrides: dict[str, Path] = {}
    refused: list[str] = []
    for address, provider in PROVIDERS.items():
        binary, error = try_build(provider)
        if binary is None:
            refused.append(f"{address}: {' '.join(error.split())}")
        else:
            overrides[address] = binary.parent
    if refused:
        pytest.skip(
            "providers not buildable from the Go module proxy, HCL checked by parsing instead: "
            + "; ".join(refused)
        )
    config = tmp_path / "tofu.tfrc"
    lines = [f'    "{address}" = "{directory}"' for address, directory in overrides.items()]
    config.write_text(
        "provider_installation {\n  dev_overrides {\n" + "\n".join(lines) + "\n  }\n  direct {}\n}\n"
    )
    env = {"TF_CLI_CONFIG_FILE": str(config), "TF_DATA_DIR": str(tmp_path / ".terraform")}
    proc = run_tofu(tofu, f"-chdir={MODULE}", "validate", "-no-color", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "The configuration is valid" in proc.stdout


# ---------------------------------------------------------------------------------------------
# structure, from the parsed HCL
# ---------------------------------------------------------------------------------------------


def test_module_has_the_standard_files() -> None:
    assert {p.name for p in MODULE.glob("*.tf")} == FILES


def test_providers_are_pinned_exactly_and_match_the_built_ones(parsed: dict[str, dict[str, Any]]) -> None:
    (terraform,) = parsed["versions.tf"]["terraform"]
    (required,) = terraform["required_providers"]
    pins = {name: (unquote(spec["source"]), unquote(spec["version"])) for name, spec in required.items()}
    assert pins == {
        "kind": ("tehcyx/kind", PROVIDERS["tehcyx/kind"].version.removeprefix("v")),
        "helm": ("hashicorp/helm", PROVIDERS["hashicorp/helm"].version.removeprefix("v")),
        "kubernetes": ("hashicorp/kubernetes", PROVIDERS["hashicorp/kubernetes"].version.removeprefix("v")),
    }
    for _source, version in pins.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{version} is a range, not a pin"


def test_providers_are_wired_from_the_kind_cluster(parsed: dict[str, dict[str, Any]]) -> None:
    wiring = {
        "host": "kind_cluster.this.endpoint",
        "client_certificate": "kind_cluster.this.client_certificate",
        "client_key": "kind_cluster.this.client_key",
        "cluster_ca_certificate": "kind_cluster.this.cluster_ca_certificate",
    }
    providers = {name: body for block in parsed["providers.tf"]["provider"] for name, body in block.items()}
    assert set(providers) == {"kind", "kubernetes", "helm"}
    assert {k: unquote(providers["kubernetes"][k]) for k in wiring} == wiring
    (helm_kube,) = providers["helm"]["kubernetes"]
    assert {k: unquote(helm_kube[k]) for k in wiring} == wiring
    text = "\n".join(p.read_text() for p in MODULE.glob("*.tf"))
    assert not re.search(r"\bconfig_path\b", text) and "~/.kube" not in text


def test_no_local_exec_or_provisioners() -> None:
    for path in MODULE.glob("*.tf"):
        text = path.read_text()
        assert "local-exec" not in text and "provisioner" not in text, path.name


def test_the_environment_has_every_component(parsed: dict[str, dict[str, Any]]) -> None:
    found = resources(parsed)
    charts = {
        name: unquote(body["chart"]) for name, body in found.items() if name.startswith("helm_release.")
    }
    assert charts == {
        "helm_release.strimzi": "strimzi-kafka-operator",
        "helm_release.cloudnative_pg": "cloudnative-pg",
        "helm_release.minio": "minio",
        "helm_release.kube_prometheus_stack": "kube-prometheus-stack",
        "helm_release.restlake": "${path.module}/../../charts/restlake",
    }
    assert (MODULE / "../../charts/restlake/Chart.yaml").resolve().is_file()
    for name, body in found.items():
        if name.startswith("helm_release.") and name != "helm_release.restlake":
            assert unquote(body["version"]).startswith("var.chart_versions."), f"{name} has no pinned version"
    kafka = found["kubernetes_manifest.kafka"]["manifest"]
    assert kafka["kind"] == "Kafka"
    assert kafka["metadata"]["annotations"] == {
        "strimzi.io/node-pools": "enabled",
        "strimzi.io/kraft": "enabled",
    }
    pool = found["kubernetes_manifest.kafka_node_pool"]["manifest"]
    assert pool["kind"] == "KafkaNodePool"
    assert pool["spec"]["roles"] == ["controller", "broker"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert found["kubernetes_manifest.postgres"]["manifest"]["kind"] == "Cluster"
    assert "kubernetes_deployment.marquez" in found and "kind_cluster.this" in found


def test_variables_are_documented_typed_and_used(parsed: dict[str, dict[str, Any]]) -> None:
    declared: dict[str, dict[str, Any]] = {}
    for block in parsed["variables.tf"]["variable"]:
        declared.update(block)
    for name, body in declared.items():
        assert unquote(body.get("description", "")), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"
    text = "\n".join(p.read_text() for p in MODULE.glob("*.tf") if p.name != "variables.tf")
    used = set(re.findall(r"\bvar\.([a-z_]+)", text))
    assert used == set(declared), f"undeclared: {used - set(declared)}, unused: {set(declared) - used}"


def test_outputs_are_documented(parsed: dict[str, dict[str, Any]]) -> None:
    outputs = {name: body for block in parsed["outputs.tf"]["output"] for name, body in block.items()}
    assert {"kubeconfig_path", "endpoint", "namespace", "kafka_bootstrap", "lake_root"} <= set(outputs)
    for name, body in outputs.items():
        assert unquote(body.get("description", "")), f"output {name} has no description"
    assert outputs["kubeconfig"].get("sensitive") is True


def test_references_resolve(parsed: dict[str, dict[str, Any]]) -> None:
    declared = set(resources(parsed))
    text = "\n".join(p.read_text() for p in MODULE.glob("*.tf"))
    kinds = {name.split(".")[0] for name in declared}
    pattern = r"\b(" + "|".join(sorted(kinds)) + r")\.([a-z_]+)\b"
    referenced = {f"{kind}.{name}" for kind, name in re.findall(pattern, text)}
    assert referenced - declared == set(), "references to resources that do not exist"


def test_tool_cache_is_outside_the_checkout() -> None:
    # Built binaries are large: they live in a per-machine cache that every clone reuses, and can
    # therefore never be committed.
    assert not TOOLS_ROOT.resolve().is_relative_to(REPO_ROOT.resolve())
