"""The Helm chart: lint, render (exact objects, exact RBAC, manifest shape), install and upgrade.

helm is built from the Go module proxy on first use (tests/k8s/gotools.py). Install and upgrade
run against the real API server of tests/k8s/harness.py: there is no kubelet, so pods never
start; `helm install` runs without --wait and the tests check the API objects themselves.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from restlake.operator import render as operator_render
from restlake.operator.settings import OperatorSettings

from .gotools import HELM, REPO_ROOT, build

pytestmark = pytest.mark.k8s

CHART = REPO_ROOT / "charts" / "restlake"
RELEASE = "rl"
NAMESPACE = "lake"
# Rendering needs a Kubernetes version for Chart.yaml's kubeVersion check; any supported one.
KUBE_VERSION = "1.34.0"

# What the operator may do, rule by rule: the contract of templates/_helpers.tpl.
OPERATOR_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["restlake.io"],
        "resources": ["ingestionsources", "backfills"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": ["restlake.io"],
        "resources": ["ingestionsources/status", "backfills/status"],
        "verbs": ["patch"],
    },
    {
        "apiGroups": ["restlake.io"],
        "resources": ["ingestionsources/finalizers", "backfills/finalizers"],
        "verbs": ["update"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps", "services", "serviceaccounts"],
        "verbs": ["get", "create", "patch"],
    },
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create", "patch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "create", "patch"]},
    {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "create", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["get", "create", "patch"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": ["kafka.strimzi.io"], "resources": ["kafkatopics"], "verbs": ["get", "create", "patch"]},
    {
        "apiGroups": ["monitoring.coreos.com"],
        "resources": ["servicemonitors"],
        "verbs": ["get", "create", "patch"],
    },
]


DISCOVERY_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    },
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
]


# What the Backfill Job and quality CronJob pods may do: report into status, nothing else
# (the same rules tests/k8s/test_backfill.py binds to exercise the reporters).
JOB_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["restlake.io"],
        "resources": ["backfills/status", "ingestionsources/status"],
        "verbs": ["get", "patch"],
    }
]


def _peering_rule(resource: str) -> dict[str, Any]:
    return {"apiGroups": ["kopf.dev"], "resources": [resource], "verbs": ["get", "list", "watch", "patch"]}


@pytest.fixture(scope="session")
def helm() -> Path:
    return build(HELM)


def run_helm(helm: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, check=False, env=env, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
    return proc.stdout + proc.stderr


def render(helm: Path, *sets: str) -> list[dict[str, Any]]:
    args = ["template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", KUBE_VERSION]
    for item in sets:
        args += ["--set", item]
    return [doc for doc in yaml.safe_load_all(run_helm(helm, *args)) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


# ---------------------------------------------------------------------------------------------
# lint and render
# ---------------------------------------------------------------------------------------------


def operator_settings(env: dict[str, Any], prefix: str, monkeypatch: pytest.MonkeyPatch) -> OperatorSettings:
    """OperatorSettings read from the rendered operator env's variables that start with ``prefix`` alone."""
    for key in list(OperatorSettings.model_fields):
        monkeypatch.delenv(f"RESTLAKE_OPERATOR_{key.upper()}", raising=False)
    for key, value in env.items():
        if key.startswith(prefix):
            monkeypatch.setenv(key, value)
    return OperatorSettings()


@pytest.mark.parametrize("scope", ["operator.watchAllNamespaces=false", "operator.watchAllNamespaces=true"])
def test_lint_strict(helm: Path, scope: str) -> None:
    out = run_helm(helm, "lint", "--strict", str(CHART), "--set", scope)
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_default_render_has_exactly_the_expected_objects(helm: Path) -> None:
    objects = sorted(by_kind(render(helm)))
    assert objects == sorted(
        [
            ("ServiceAccount", "rl-restlake-operator"),
            ("Role", "rl-restlake-operator"),
            ("RoleBinding", "rl-restlake-operator"),
            ("ServiceAccount", "rl-restlake-jobs"),
            ("Role", "rl-restlake-jobs"),
            ("RoleBinding", "rl-restlake-jobs"),
            ("KopfPeering", "rl-restlake-operator"),
            ("Deployment", "rl-restlake-operator"),
            ("Service", "rl-restlake-operator"),
            ("Deployment", "rl-restlake-spark-master"),
            ("Service", "rl-restlake-spark-master"),
            ("Deployment", "rl-restlake-spark-worker"),
            ("Secret", "rl-restlake-spark-auth"),
            ("NetworkPolicy", "rl-restlake-spark"),
            ("Pod", "rl-restlake-operator-test"),
            ("ServiceAccount", "rl-restlake-operator-test"),
            ("ClusterRole", f"rl-restlake-operator-discovery-{NAMESPACE}"),
            ("ClusterRoleBinding", f"rl-restlake-operator-discovery-{NAMESPACE}"),
            ("CustomResourceDefinition", "ingestionsources.restlake.io"),
            ("CustomResourceDefinition", "backfills.restlake.io"),
        ]
    )


def test_crds_are_templates_helm_upgrades_and_uninstall_keeps(helm: Path) -> None:
    docs = by_kind(render(helm))
    crds = {name: doc for (kind, name), doc in docs.items() if kind == "CustomResourceDefinition"}
    for name, doc in crds.items():
        assert doc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", name
        generated = yaml.safe_load((CHART / "files" / "crds" / f"{name}.yaml").read_text())
        assert doc["spec"] == generated["spec"], name
    assert not [k for k in by_kind(render(helm, "crds.install=false")) if k[0] == "CustomResourceDefinition"]


def test_namespaced_rbac_is_exact(helm: Path) -> None:
    docs = by_kind(render(helm))
    role = docs["Role", "rl-restlake-operator"]
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [*OPERATOR_RULES, _peering_rule("kopfpeerings")]
    binding = docs["RoleBinding", "rl-restlake-operator"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rl-restlake-operator", "namespace": NAMESPACE}
    ]
    # Cluster-wide only the read-only discovery kopf needs: CRDs and namespaces, list and watch.
    cluster_scoped = {key for key in docs if key[0].startswith("Cluster")}
    assert cluster_scoped == {
        ("ClusterRole", f"rl-restlake-operator-discovery-{NAMESPACE}"),
        ("ClusterRoleBinding", f"rl-restlake-operator-discovery-{NAMESPACE}"),
    }
    assert docs["ClusterRole", f"rl-restlake-operator-discovery-{NAMESPACE}"]["rules"] == DISCOVERY_RULES
    jobs = docs["Role", "rl-restlake-jobs"]
    assert jobs["rules"] == JOB_RULES
    assert docs["RoleBinding", "rl-restlake-jobs"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "rl-restlake-jobs", "namespace": NAMESPACE}
    ]
    env = env_of(container(docs["Deployment", "rl-restlake-operator"], "operator"))
    assert env["RESTLAKE_OPERATOR_JOB_SERVICE_ACCOUNT"] == "rl-restlake-jobs"


def test_watch_all_namespaces_switches_to_cluster_scope(helm: Path) -> None:
    docs = by_kind(render(helm, "operator.watchAllNamespaces=true"))
    assert ("Role", "rl-restlake-operator") not in docs
    assert ("RoleBinding", "rl-restlake-operator") not in docs
    assert ("KopfPeering", "rl-restlake-operator") not in docs
    role = docs["ClusterRole", "rl-restlake-operator"]
    assert "namespace" not in role["metadata"]
    assert role["rules"] == [*OPERATOR_RULES, _peering_rule("clusterkopfpeerings")]
    binding = docs["ClusterRoleBinding", "rl-restlake-operator"]
    assert binding["roleRef"]["kind"] == "ClusterRole"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rl-restlake-operator", "namespace": NAMESPACE}
    ]
    assert ("ClusterKopfPeering", "rl-restlake-operator") in docs
    env = env_of(container(docs["Deployment", "rl-restlake-operator"], "operator"))
    assert env["RESTLAKE_OPERATOR_NAMESPACES"] == "[]"
    # A ServiceAccount serves pods of its own namespace only: the job pods go without it here.
    assert not [key for key in docs if key[1] == "rl-restlake-jobs"]
    assert "RESTLAKE_OPERATOR_JOB_SERVICE_ACCOUNT" not in env


def test_operator_env_is_what_the_operator_settings_read(helm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = by_kind(render(helm, "config.kafka.topicReplicas=3", "operator.image.tag=dev"))
    deployment = docs["Deployment", "rl-restlake-operator"]
    operator = container(deployment, "operator")
    assert operator["image"] == "restlake/operator:dev"
    assert operator["command"] == ["restlake", "operator", "run"]
    assert operator["args"] == ["--liveness=http://0.0.0.0:8080/healthz"]
    env = {k: v for k, v in env_of(operator).items() if isinstance(v, str)}
    known = {f"RESTLAKE_OPERATOR_{name.upper()}" for name in OperatorSettings.model_fields}
    ours = {k for k in env if k.startswith("RESTLAKE_OPERATOR_")}
    assert ours <= known, f"variables OperatorSettings does not read: {sorted(ours - known)}"
    for key in list(OperatorSettings.model_fields):
        monkeypatch.delenv(f"RESTLAKE_OPERATOR_{key.upper()}", raising=False)
    for key in ours:
        monkeypatch.setenv(key, env[key])
    settings = OperatorSettings()
    assert settings.namespaces == [NAMESPACE]
    assert settings.peering == "rl-restlake-operator"
    assert settings.peering_mandatory is True
    assert settings.fetcher_image == "restlake/fetcher:0.1.0"
    assert settings.spark_image == "restlake/spark:0.1.0"
    assert settings.topic_replicas == 3
    # Qualified: drivers and fetchers of other namespaces (watchAllNamespaces) resolve it too.
    assert settings.kafka_bootstrap == f"restlake-kafka-kafka-bootstrap.{NAMESPACE}.svc:9092"
    assert (settings.executor_cores, settings.executor_cores_per_executor, settings.executor_memory) == (
        1,
        1,
        "512m",
    )
    assert settings.lake_secret == "restlake-lake"
    assert settings.job_service_account == "rl-restlake-jobs"
    assert (settings.pg_dsn_secret, settings.pg_dsn_key) == ("restlake-postgres", "dsn")
    # The drivers the operator renders must reach the master Service this chart renders.
    master = docs["Service", "rl-restlake-spark-master"]
    rpc = next(p["port"] for p in master["spec"]["ports"] if p["name"] == "rpc")
    assert env_of(operator)["RESTLAKE_OPERATOR_RELEASE_NAMESPACE"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    monkeypatch.setenv("RESTLAKE_OPERATOR_RELEASE_NAMESPACE", NAMESPACE)
    qualified = OperatorSettings().spark_master_url
    assert qualified == f"spark://{master['metadata']['name']}.{NAMESPACE}.svc:{rpc}"


def test_fetcher_network_policy_values_reach_the_operator_settings(
    helm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = env_of(container(by_kind(render(helm))["Deployment", "rl-restlake-operator"], "operator"))
    assert not [k for k in off if k.startswith("RESTLAKE_OPERATOR_NETWORK_POLICY")]
    docs = by_kind(
        render(
            helm,
            "fetcher.networkPolicy.enabled=true",
            "fetcher.networkPolicy.kafkaPeers[0].podSelector.matchLabels.strimzi\\.io/cluster=restlake-kafka",
            "fetcher.networkPolicy.postgresPort=6432",
        )
    )
    env = env_of(container(docs["Deployment", "rl-restlake-operator"], "operator"))
    settings = operator_settings(env, "RESTLAKE_OPERATOR_NETWORK_POLICY", monkeypatch)
    assert settings.network_policy is True
    assert settings.network_policy_kafka_peers == [
        {"podSelector": {"matchLabels": {"strimzi.io/cluster": "restlake-kafka"}}}
    ]
    assert (settings.network_policy_except_cidrs, settings.network_policy_postgres_port) == (
        ["169.254.0.0/16"],
        6432,
    )


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and In expressions, what the chart uses) matches."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_spark_network_policy_admits_the_cluster_and_the_drivers_only(helm: Path) -> None:
    """The policy is written against labels other code sets: the chart's master and worker pods and
    the driver pods the operator renders. Checked against both, so a renamed label cannot leave the
    drivers locked out (the e2e cluster's CNI does not enforce NetworkPolicy, so it would not tell)."""
    docs = by_kind(render(helm, "spark.networkPolicy.extraPeers[0].namespaceSelector.matchLabels.team=ops"))
    policy = docs["NetworkPolicy", "rl-restlake-spark"]["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    spark_pods = {
        name: docs["Deployment", f"rl-restlake-spark-{name}"]["spec"]["template"]["metadata"]["labels"]
        for name in ("master", "worker")
    }
    operator_pod = docs["Deployment", "rl-restlake-operator"]["spec"]["template"]["metadata"]["labels"]
    assert all(_selects(policy["podSelector"], labels) for labels in spark_pods.values())
    assert not _selects(policy["podSelector"], operator_pod)

    (rule,) = policy["ingress"]
    assert "ports" not in rule  # Spark picks executor and block manager ports at run time
    peers = rule["from"]
    cluster = [p for p in peers if "namespaceSelector" not in p]
    assert len(cluster) == 1 and all(
        _selects(cluster[0]["podSelector"], labels) for labels in spark_pods.values()
    )
    drivers = [p for p in peers if p.get("namespaceSelector") == {}]
    assert len(drivers) == 1
    driver = operator_render.labels("orders", operator_render.STREAM)
    fetcher = operator_render.labels("orders", operator_render.FETCHER)
    assert _selects(drivers[0]["podSelector"], driver)
    assert not _selects(drivers[0]["podSelector"], fetcher)
    assert not _selects(cluster[0]["podSelector"], driver)
    assert {"namespaceSelector": {"matchLabels": {"team": "ops"}}} in peers

    assert ("NetworkPolicy", "rl-restlake-spark") not in by_kind(
        render(helm, "spark.networkPolicy.enabled=false")
    )


def test_spark_workers_follow_the_values(helm: Path) -> None:
    docs = by_kind(render(helm, "spark.worker.replicas=3", "spark.worker.cores=2", "spark.worker.memory=3g"))
    workers = docs["Deployment", "rl-restlake-spark-worker"]
    assert workers["spec"]["replicas"] == 3
    args = container(workers, "worker")["args"]
    assert args[:5] == ["org.apache.spark.deploy.worker.Worker", "--cores", "2", "--memory", "3g"]
    assert args[-1] == "spark://rl-restlake-spark-master:7077"
    master = docs["Service", "rl-restlake-spark-master"]
    assert {(p["name"], p["port"]) for p in master["spec"]["ports"]} == {("rpc", 7077), ("webui", 8080)}


def _spark_daemon_env(docs: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: env_of(container(docs["Deployment", f"rl-restlake-spark-{name}"], name))
        for name in ("master", "worker")
    }


def test_spark_cluster_authenticates_with_one_shared_secret(
    helm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = by_kind(render(helm))
    secret = docs["Secret", "rl-restlake-spark-auth"]
    assert len(base64.b64decode(secret["data"]["secret"])) == 48
    # A second render draws another value: only lookup (a real install) keeps it, see the upgrade test.
    assert by_kind(render(helm))["Secret", "rl-restlake-spark-auth"]["data"] != secret["data"]
    ref = {"secretKeyRef": {"name": "rl-restlake-spark-auth", "key": "secret"}}
    for name, env in _spark_daemon_env(docs).items():
        assert env["_SPARK_AUTH_SECRET"] == ref, name
        options = env["SPARK_DAEMON_JAVA_OPTS"].split()
        assert {"-Dspark.authenticate=true", "-Dspark.network.crypto.enabled=true"} <= set(options), name
        assert "-Dspark.ui.killEnabled=false" in options, name
    # The operator is told the Secret's name and key, never its value, and hands drivers a reference.
    operator = env_of(container(docs["Deployment", "rl-restlake-operator"], "operator"))
    settings = operator_settings(operator, "RESTLAKE_OPERATOR_SPARK_AUTH", monkeypatch)
    assert (settings.spark_auth_secret, settings.spark_auth_secret_key) == (
        "rl-restlake-spark-auth",
        "secret",
    )

    mine = by_kind(render(helm, "spark.auth.existingSecret=spark-shared", "spark.auth.key=token"))
    assert not [k for k in mine if k[0] == "Secret"]
    ref = {"secretKeyRef": {"name": "spark-shared", "key": "token"}}
    assert all(env["_SPARK_AUTH_SECRET"] == ref for env in _spark_daemon_env(mine).values())
    operator = env_of(container(mine["Deployment", "rl-restlake-operator"], "operator"))
    assert (
        operator["RESTLAKE_OPERATOR_SPARK_AUTH_SECRET"],
        operator["RESTLAKE_OPERATOR_SPARK_AUTH_SECRET_KEY"],
    ) == (
        "spark-shared",
        "token",
    )

    off = by_kind(render(helm, "spark.auth.enabled=false"))
    assert not [k for k in off if k[0] == "Secret"]
    for name, env in _spark_daemon_env(off).items():
        assert "_SPARK_AUTH_SECRET" not in env, name
        assert env["SPARK_DAEMON_JAVA_OPTS"] == "-Dspark.ui.killEnabled=false", name
    operator = env_of(container(off["Deployment", "rl-restlake-operator"], "operator"))
    assert not [k for k in operator if k.startswith("RESTLAKE_OPERATOR_SPARK_AUTH")]


def test_rendered_manifests_are_well_formed(helm: Path) -> None:
    docs = render(helm)
    pods: dict[str, dict[str, Any]] = {}
    for doc in docs:
        meta = doc["metadata"]
        assert doc["apiVersion"] and doc["kind"] and meta["name"]
        assert len(meta["name"]) <= 63
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        if not doc["kind"].startswith("Cluster") and doc["kind"] != "CustomResourceDefinition":
            assert meta["namespace"] == NAMESPACE, f"{doc['kind']}/{meta['name']} has no namespace"
        if doc["kind"] == "Deployment":
            spec = doc["spec"]
            selector = spec["selector"]["matchLabels"]
            labels = spec["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), f"{meta['name']}: selector does not match its pods"
            pods[meta["name"]] = spec["template"]
        if doc["kind"] == "Pod":
            pods[meta["name"]] = doc
    for name, pod in pods.items():
        pod_spec = pod["spec"]
        assert pod_spec["securityContext"]["runAsNonRoot"] is True, name
        for c in pod_spec["containers"]:
            security = c["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name
            assert c["image"].startswith("restlake/") and c["image"].endswith(":0.1.0"), name
    # Every Service selects the pods of exactly one Deployment and targets named ports they have.
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        (target,) = [
            d for d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        ports = {
            p["name"] for c in target["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{service['metadata']['name']}: no port {port['targetPort']}"


def test_helm_test_pod_probes_the_operator_service(helm: Path) -> None:
    pod = by_kind(render(helm))["Pod", "rl-restlake-operator-test"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    assert 'url = "http://rl-restlake-operator:8080/healthz"' in script
    assert '{"IngestionSource", "Backfill"} - served' in script
    compile(script, "helm-test", "exec")


def test_values_schema_rejects_a_bad_value(helm: Path) -> None:
    proc = subprocess.run(
        [
            str(helm),
            "template",
            RELEASE,
            str(CHART),
            "--kube-version",
            KUBE_VERSION,
            "--set",
            "spark.worker.memory=2",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "spark/worker/memory" in proc.stderr and "want string" in proc.stderr


# ---------------------------------------------------------------------------------------------
# install and upgrade against the real API server
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Any:
    """The session's control plane from tests/k8s/conftest.py (harness.ControlPlane)."""
    try:
        return request.getfixturevalue("control_plane")
    except pytest.FixtureLookupError:
        pytest.skip("tests/k8s/conftest.py provides no `control_plane` fixture (the API-server harness)")


def installable_chart(cluster: Any, tmp_path: Path) -> Path:
    """The chart, or a copy without `kubeVersion` when the API server does not know its version.

    An API server built from source without version stamping reports v0.0.0-master, which no
    `kubeVersion` range admits; the constraint itself is covered by lint and template above.
    """
    version = json.loads(cluster.kubectl("get", "--raw", "/version").stdout)["gitVersion"]
    if not version.startswith("v0.0.0"):
        return CHART
    copy = tmp_path / "restlake"
    shutil.copytree(CHART, copy)
    chart_yaml = copy / "Chart.yaml"
    chart_yaml.write_text(re.sub(r"(?m)^kubeVersion:.*\n", "", chart_yaml.read_text()))
    return copy


@pytest.fixture(scope="module")
def installed(
    helm: Path, cluster: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """`helm install` of the chart into a fresh namespace; uninstalled afterwards."""
    namespace = f"helm-{uuid.uuid4().hex[:6]}"
    release = "restlake"
    # The session's `crds` fixture (conftest) applies the same CRDs server-side, as an administrator
    # would; the release then leaves them alone (crds.install=false), as a second release must.
    with contextlib.suppress(pytest.skip.Exception):
        request.getfixturevalue("crds")
    chart = installable_chart(cluster, tmp_path_factory.mktemp("chart"))
    base = ["--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
    out = run_helm(
        helm,
        "install",
        release,
        str(chart),
        *base,
        "--create-namespace",
        "--wait=false",
        "--timeout",
        "2m",
        "--set",
        "crds.install=false",
    )
    assert "STATUS: deployed" in out
    yield {"namespace": namespace, "release": release, "chart": str(chart)}
    run_helm(helm, "uninstall", release, *base, "--wait=false", check=False)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _get(cluster: Any, namespace: str, kind: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)


def test_install_creates_the_objects(helm: Path, cluster: Any, installed: dict[str, str]) -> None:
    ns, release = installed["namespace"], installed["release"]
    # release name "restlake" contains the chart name, so the prefix is just "restlake".
    for kind, name in [
        ("serviceaccount", "restlake-operator"),
        ("role", "restlake-operator"),
        ("rolebinding", "restlake-operator"),
        ("serviceaccount", "restlake-jobs"),
        ("role", "restlake-jobs"),
        ("rolebinding", "restlake-jobs"),
        ("kopfpeerings.kopf.dev", "restlake-operator"),
        ("deployment", "restlake-operator"),
        ("service", "restlake-operator"),
        ("deployment", "restlake-spark-master"),
        ("service", "restlake-spark-master"),
        ("deployment", "restlake-spark-worker"),
        ("secret", "restlake-spark-auth"),
    ]:
        assert _get(cluster, ns, kind, name)["metadata"]["labels"]["app.kubernetes.io/instance"] == release
    crd = json.loads(cluster.kubectl("get", "crd", "ingestionsources.restlake.io", "-o", "json").stdout)
    assert crd["spec"]["names"]["shortNames"] == ["isrc"]
    backfills = json.loads(cluster.kubectl("get", "crd", "backfills.restlake.io", "-o", "json").stdout)
    assert backfills["spec"]["names"]["shortNames"] == ["bf"]
    status = json.loads(
        run_helm(helm, "status", release, "-n", ns, "--kubeconfig", str(cluster.kubeconfig), "-o", "json")
    )
    assert status["info"]["status"] == "deployed" and status["version"] == 1


def _can(cluster: Any, namespace: str, verb: str, resource: str, *, within: str | None = None) -> bool:
    """`kubectl auth can-i` as the operator's ServiceAccount (impersonated by the admin)."""
    who = f"system:serviceaccount:{namespace}:restlake-operator"
    args = ["auth", "can-i", verb, "-n", within or namespace, f"--as={who}"]
    resource, _, subresource = resource.partition("/")  # kubectl reads `kind/x` as an object name
    args += [resource, f"--subresource={subresource}"] if subresource else [resource]
    proc = cluster.kubectl(*args, check=False)
    return proc.stdout.strip() == "yes"


def test_installed_rbac_grants_exactly_the_operator_verbs(cluster: Any, installed: dict[str, str]) -> None:
    ns = installed["namespace"]
    for verb, resource in [
        ("watch", "ingestionsources.restlake.io"),
        ("patch", "ingestionsources.restlake.io"),
        ("patch", "ingestionsources.restlake.io/status"),
        ("update", "ingestionsources.restlake.io/finalizers"),
        ("patch", "deployments.apps"),
        ("watch", "backfills.restlake.io"),
        ("patch", "backfills.restlake.io/status"),
        ("create", "jobs.batch"),
        ("delete", "cronjobs.batch"),
        ("list", "pods"),
        ("create", "configmaps"),
        ("create", "events"),
        ("patch", "kopfpeerings.kopf.dev"),
    ]:
        assert _can(cluster, ns, verb, resource), f"cannot {verb} {resource}"
    assert not _can(cluster, ns, "delete", "deployments.apps"), "the garbage collector deletes children"
    # One Secret at a time, by the name a source gives, for its restlake.io/source-credentials
    # label (the operator asks for metadata only); never a listing of the namespace's Secrets.
    assert _can(cluster, ns, "get", "secrets")
    for verb in ("list", "watch", "patch"):
        assert not _can(cluster, ns, verb, "secrets"), f"the operator may {verb} secrets"
    assert not _can(cluster, ns, "watch", "ingestionsources.restlake.io", within="default"), (
        "Role is namespaced"
    )
    assert not _can(cluster, ns, "patch", "clusterkopfpeerings.kopf.dev")
    assert not _can(cluster, ns, "update", "ingestionsources.restlake.io/status"), "status is patched only"
    assert not _can(cluster, ns, "delete", "jobs.batch"), "a finished Job goes by its TTL"
    assert not _can(cluster, ns, "get", "pods"), "pods are only listed, for termination messages"


def test_installed_job_pods_may_only_report_status(cluster: Any, installed: dict[str, str]) -> None:
    ns = installed["namespace"]

    def can(verb: str, resource: str) -> bool:
        who = f"system:serviceaccount:{ns}:restlake-jobs"
        resource, _, subresource = resource.partition("/")
        args = ["auth", "can-i", verb, "-n", ns, f"--as={who}", resource]
        args += [f"--subresource={subresource}"] if subresource else []
        return cluster.kubectl(*args, check=False).stdout.strip() == "yes"

    for resource in ("backfills.restlake.io/status", "ingestionsources.restlake.io/status"):
        assert can("patch", resource) and can("get", resource), resource
    for verb, resource in [
        ("get", "ingestionsources.restlake.io"),
        ("patch", "backfills.restlake.io"),
        ("update", "ingestionsources.restlake.io/status"),
        ("get", "secrets"),
        ("create", "jobs.batch"),
    ]:
        assert not can(verb, resource), f"job pods may {verb} {resource}"


def test_installed_rbac_covers_the_integrations(
    cluster: Any, installed: dict[str, str], crds: list[str]
) -> None:
    # `crds` (conftest) installs Strimzi's KafkaTopic and the ServiceMonitor CRDs: can-i only
    # answers for resource types the API server serves.
    ns = installed["namespace"]
    assert {"kafkatopics.kafka.strimzi.io", "servicemonitors.monitoring.coreos.com"} <= set(crds)
    for resource in ("kafkatopics.kafka.strimzi.io", "servicemonitors.monitoring.coreos.com"):
        assert _can(cluster, ns, "create", resource) and _can(cluster, ns, "patch", resource), resource
        assert not _can(cluster, ns, "delete", resource), resource


def test_upgrade_changes_what_it_should(helm: Path, cluster: Any, installed: dict[str, str]) -> None:
    ns, release = installed["namespace"], installed["release"]
    before = _get(cluster, ns, "deployment", "restlake-spark-worker")
    assert before["spec"]["replicas"] == 2
    operator_before = _get(cluster, ns, "deployment", "restlake-operator")
    master_uid = _get(cluster, ns, "service", "restlake-spark-master")["metadata"]["uid"]
    auth_before = _get(cluster, ns, "secret", "restlake-spark-auth")["data"]["secret"]
    run_helm(
        helm,
        "upgrade",
        release,
        installed["chart"],
        "-n",
        ns,
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--reuse-values",
        "--set",
        "spark.worker.replicas=3",
        "--set",
        "spark.worker.memory=2g",
        "--set",
        "operator.image.tag=0.1.1",
        "--wait=false",
    )
    after = _get(cluster, ns, "deployment", "restlake-spark-worker")
    assert after["spec"]["replicas"] == 3
    assert "2g" in container(after, "worker")["args"]
    operator_after = _get(cluster, ns, "deployment", "restlake-operator")
    assert container(operator_after, "operator")["image"] == "restlake/operator:0.1.1"
    assert operator_after["metadata"]["generation"] == operator_before["metadata"]["generation"] + 1
    history = json.loads(
        run_helm(helm, "history", release, "-n", ns, "--kubeconfig", str(cluster.kubeconfig), "-o", "json")
    )
    assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed"
    # Untouched objects keep their identity: an upgrade patches, it does not recreate.
    assert _get(cluster, ns, "service", "restlake-spark-master")["metadata"]["uid"] == master_uid
    # The generated Spark secret is read back, not drawn again: running drivers, master and workers
    # would otherwise stop agreeing until every one of them restarted.
    assert _get(cluster, ns, "secret", "restlake-spark-auth")["data"]["secret"] == auth_before
