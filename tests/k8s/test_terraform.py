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
import yaml

from restlake.settings import S3Settings

from ..installed_source import module_source
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
    "secrets.tf",
    "restlake.tf",
    "prefect.tf",
}
CHART = REPO_ROOT / "charts" / "restlake"
# Kafka versions each Strimzi release the module may pin supports (`supported: true` in that
# release's kafka-versions.yaml). Strimzi 1.x serves only the kafka.strimzi.io/v1 API.
STRIMZI_KAFKA_VERSIONS = {"1.2.0": {"4.2.0", "4.2.1", "4.3.0", "4.3.1"}}
# The CRDs a kubernetes_manifest may use, and the helm_release that installs them: it must be in
# the operators' `-target` step of the documented bring-up, before the full apply plans them.
CRD_RELEASES = {
    "kafka.strimzi.io": "helm_release.strimzi",
    "postgresql.cnpg.io": "helm_release.cloudnative_pg",
    "external-secrets.io": "helm_release.external_secrets",
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


def yamlencoded(value: Any) -> dict[str, Any]:
    """The object literal of a `values = [yamlencode({...})]` entry, parsed (references stay text)."""
    expression = unquote(value)
    assert expression.startswith("yamlencode(") and expression.endswith(")"), expression[:80]
    return unquote_keys(hcl2.loads(f"x = {expression.removeprefix('yamlencode(')[:-1]}\n"))["x"]


def variable_defaults(parsed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        name: body.get("default")
        for block in parsed["variables.tf"]["variable"]
        for name, body in block.items()
    }


def spark_bytes(size: str) -> int:
    """Spark's memory notation (512m, 1g) in bytes."""
    number, unit = re.fullmatch(r"(\d+)([kmgt]?)", size.lower()).groups()  # type: ignore[union-attr]
    return int(number) * 1024 ** " kmgt".index(unit or " ")


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
        "helm_release.openbao": "openbao",
        "helm_release.external_secrets": "external-secrets",
        "helm_release.prefect_server": "prefect-server",
        "helm_release.prefect_worker": "prefect-worker",
        "helm_release.restlake": "${path.module}/../../charts/restlake",
    }
    assert (MODULE / "../../charts/restlake/Chart.yaml").resolve().is_file()
    for name, body in found.items():
        if name.startswith("helm_release.") and name != "helm_release.restlake":
            assert unquote(body["version"]).startswith("var.chart_versions."), f"{name} has no pinned version"
    kafka = found["kubernetes_manifest.kafka"]["manifest"]
    assert kafka["kind"] == "Kafka"
    pool = found["kubernetes_manifest.kafka_node_pool"]["manifest"]
    assert pool["kind"] == "KafkaNodePool"
    assert pool["spec"]["roles"] == ["controller", "broker"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert found["kubernetes_manifest.postgres"]["manifest"]["kind"] == "Cluster"
    assert "kubernetes_deployment.marquez" in found and "kind_cluster.this" in found


def test_strimzi_speaks_the_api_the_operator_writes(parsed: dict[str, dict[str, Any]]) -> None:
    found = resources(parsed)
    kafka = found["kubernetes_manifest.kafka"]["manifest"]
    pool = found["kubernetes_manifest.kafka_node_pool"]["manifest"]
    # The operator writes KafkaTopics in the first API of STRIMZI_TOPIC_APIS the cluster serves;
    # the pinned Strimzi must serve that one, and the module's own objects use it too.
    source = module_source("restlake.operator.render")
    apis = re.search(r"^STRIMZI_TOPIC_APIS = \(([^)]*)\)", source, re.MULTILINE)
    assert apis, "restlake.operator.render no longer defines STRIMZI_TOPIC_APIS"
    newest = re.findall(r'"([^"]+)"', apis.group(1))[0]
    assert newest == "kafka.strimzi.io/v1"
    assert kafka["apiVersion"] == pool["apiVersion"] == newest
    # v1 has no ZooKeeper mode and no per-Kafka nodes: no mode annotations, the pool sizes the nodes.
    assert not any(key.startswith("strimzi.io/") for key in kafka["metadata"].get("annotations", {}))
    assert set(kafka["spec"]) <= {
        "kafka",
        "entityOperator",
        "cruiseControl",
        "kafkaExporter",
        "clusterCa",
        "clientsCa",
    }
    assert not {"replicas", "storage", "resources"} & set(kafka["spec"]["kafka"])
    assert unquote(kafka["spec"]["kafka"]["version"]) == "var.kafka_version"
    for listener in kafka["spec"]["kafka"]["listeners"]:
        assert {"name", "port", "type", "tls"} <= set(listener)  # all four are required in v1
    assert kafka["spec"]["entityOperator"]["topicOperator"] == {}
    defaults = variable_defaults(parsed)
    strimzi = defaults["chart_versions"]["strimzi"]
    assert strimzi in STRIMZI_KAFKA_VERSIONS, (
        f"Strimzi {strimzi}: add its Kafka versions to STRIMZI_KAFKA_VERSIONS"
    )
    assert int(strimzi.split(".")[0]) >= 1, "Strimzi before 1.0 may serve v1beta2 only"
    assert defaults["kafka_version"] in STRIMZI_KAFKA_VERSIONS[strimzi]


def test_restlake_values_are_the_charts_and_consistent(parsed: dict[str, dict[str, Any]]) -> None:
    values = yamlencoded(resources(parsed)["helm_release.restlake"]["values"][0])
    chart_defaults = yaml.safe_load((CHART / "values.yaml").read_text())

    def known(set_: dict[str, Any], chart: dict[str, Any], path: str = "") -> None:
        for key, value in set_.items():
            assert key in chart, f"{path}{key} is not a value of charts/restlake"
            if isinstance(value, dict) and chart[key]:  # an empty map in the chart takes any keys
                known(value, chart[key], f"{path}{key}.")

    known(values, chart_defaults)
    assert values["crds"] == {"install": True}
    kafka = values["config"]["kafka"]
    # The chart derives <cluster>-kafka-bootstrap.<namespace>.svc:9092 from the Strimzi cluster name.
    assert not unquote(kafka.get("bootstrap", ""))
    assert unquote(kafka["cluster"]) == "kubernetes_manifest.kafka.manifest.metadata.name"
    outputs = {name: body for block in parsed["outputs.tf"]["output"] for name, body in block.items()}
    assert unquote(outputs["kafka_bootstrap"]["value"]).startswith(
        "${kubernetes_manifest.kafka.manifest.metadata.name}-kafka-bootstrap."
    )
    worker, executors = values["spark"]["worker"], values["spark"]["executors"]
    assert executors["coresPerExecutor"] <= executors["cores"] <= worker["cores"] * worker["replicas"]
    assert spark_bytes(unquote(executors["memory"])) <= spark_bytes(unquote(worker["memory"]))


def test_lineage_goes_to_the_marquez_of_the_module(parsed: dict[str, dict[str, Any]]) -> None:
    values = yamlencoded(resources(parsed)["helm_release.restlake"]["values"][0])
    lineage = values["config"]["lineage"]
    assert unquote(lineage["transport"]) == 'var.lineage_enabled ? "http" : "none"'
    assert unquote(lineage["url"]) == 'var.lineage_enabled ? local.marquez_url : ""'
    assert variable_defaults(parsed)["lineage_enabled"] is True
    (locals_,) = parsed["marquez.tf"]["locals"]
    assert unquote(locals_["marquez_url"]) == (
        "http://${kubernetes_service.marquez.metadata[0].name}.${kubernetes_namespace.marquez.metadata[0].name}"
        ".svc:${kubernetes_service.marquez.spec[0].port[0].port}"
    )
    depends = {unquote(d) for d in resources(parsed)["helm_release.restlake"]["depends_on"]}
    assert "kubernetes_deployment.marquez" in depends


def test_lake_secret_names_settings_restlake_reads(parsed: dict[str, dict[str, Any]]) -> None:
    (lake,) = [
        body
        for block in parsed["storage.tf"]["resource"]
        for body in block.get("kubernetes_secret", {}).values()
    ]
    keys = set(lake["data"])
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION"} <= keys
    assert unquote(lake["data"]["RESTLAKE_S3_PATH_STYLE_ACCESS"]) == "true"
    for key in keys:
        if key.startswith("RESTLAKE_S3_"):
            assert key.removeprefix("RESTLAKE_S3_").lower() in S3Settings.model_fields, key


def test_external_secrets_are_optional_and_feed_the_examples_secret(
    parsed: dict[str, dict[str, Any]],
) -> None:
    found = resources(parsed)
    assert variable_defaults(parsed)["external_secrets_enabled"] is False
    optional = {
        f"{rtype}.{name}"
        for block in parsed["secrets.tf"]["resource"]
        for rtype, named in block.items()
        for name in named
    }
    assert {
        "helm_release.openbao",
        "helm_release.external_secrets",
        "kubernetes_manifest.openbao_store",
    } < optional
    for name in optional:
        assert unquote(found[name]["count"]) == "var.external_secrets_enabled ? 1 : 0", name
    store = found["kubernetes_manifest.openbao_store"]["manifest"]
    assert (store["apiVersion"], store["kind"]) == ("external-secrets.io/v1", "ClusterSecretStore")
    vault = store["spec"]["provider"]["vault"]
    assert re.fullmatch(
        r"http://\$\{helm_release\.openbao\[0\]\.name\}\..+\.svc:8200", unquote(vault["server"])
    )
    assert (unquote(vault["path"]), unquote(vault["version"])) == ("secret", "v2")
    assert "tokenSecretRef" in vault["auth"]
    assert [unquote(n) for n in store["spec"]["conditions"][0]["namespaces"]] == [
        "kubernetes_namespace.restlake.metadata[0].name"
    ]
    external = found["kubernetes_manifest.github_token"]["manifest"]
    assert (external["apiVersion"], external["kind"]) == ("external-secrets.io/v1", "ExternalSecret")
    assert unquote(external["metadata"]["namespace"]) == "kubernetes_namespace.restlake.metadata[0].name"
    assert unquote(external["spec"]["secretStoreRef"]["kind"]) == "ClusterSecretStore"
    # The Secret it writes is the one the GitHub examples' secretRef names.
    example = yaml.safe_load((REPO_ROOT / "examples" / "github-issues.yaml").read_text())
    ref = example["spec"]["request"]["auth"]["secretRef"]
    assert unquote(external["spec"]["target"]["name"]) == ref["name"]
    assert [unquote(d["secretKey"]) for d in external["spec"]["data"]] == [ref["key"]]
    # ... labelled, so the operator lets the examples read it.
    labels = external["spec"]["target"]["template"]["metadata"]["labels"]
    assert {unquote(k): unquote(v) for k, v in labels.items()} == {"restlake.io/source-credentials": "true"}
    # OpenBao's values hold a heredoc (its postStart script), which python-hcl2 cannot re-read.
    text = (MODULE / "secrets.tf").read_text()
    assert "dev = { enabled = true }" in text and "injector = { enabled = false }" in text
    assert "installCRDs = true" in text


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
    locals_ = {name for block in blocks(parsed, "locals") for name in block}
    assert set(re.findall(r"\blocal\.([a-z_]+)", text)) <= locals_, "references to locals that do not exist"


def test_crd_operators_come_before_their_manifests(parsed: dict[str, dict[str, Any]]) -> None:
    """Each kubernetes_manifest waits for the release of its CRDs, which the README's bring-up
    (the steps of `make kind-up`) applies with `-target` before the full apply plans the manifest."""
    found = resources(parsed)

    pattern = re.compile(r"\b(?:" + "|".join({n.split(".")[0] for n in found}) + r")\.[a-z_]+\b")

    def depends(name: str) -> set[str]:
        """Every resource `name` comes after: its depends_on and its references, transitively."""
        direct = set(pattern.findall(str(found[name]))) & set(found)
        return direct.union(*(depends(d) for d in direct))

    readme = (MODULE / "README.md").read_text()
    step = next(line for line in readme.splitlines() if "apply" in line and "-target=helm_release." in line)
    targeted = set(re.findall(r"-target=(\S+)", step))
    for name, body in found.items():
        if name.startswith("kubernetes_manifest."):
            group = unquote(body["manifest"]["apiVersion"]).split("/")[0]
            assert group in CRD_RELEASES, f"{name}: which release installs the {group} CRDs?"
            assert CRD_RELEASES[group] in depends(name), f"{name} does not depend on {CRD_RELEASES[group]}"
            assert CRD_RELEASES[group] in targeted, (
                f"{CRD_RELEASES[group]} is not in the operators' apply step"
            )


def test_tool_cache_is_outside_the_checkout() -> None:
    # Built binaries are large: they live in a per-machine cache that every clone reuses, and can
    # therefore never be committed.
    assert not TOOLS_ROOT.resolve().is_relative_to(REPO_ROOT.resolve())
