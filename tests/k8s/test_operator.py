"""The operator against a real API server (+ controller manager): objects, rollouts, pause, deletion, status.

There is no kubelet, so pods never run: the tests assert that status says so honestly.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import OPERATOR_PG_SECRET, eventually
from harness import REPO_ROOT as REPO

from restlake.contracts.spec import load_source, load_sources, parse_source
from restlake.operator import pod_secrets, render
from restlake.operator.credentials import secret_fields
from restlake.operator.settings import OperatorSettings

pytestmark = pytest.mark.k8s

# One source per file; the parent -> child example (two documents) has its own test below.
EXAMPLES = [p for p in sorted((REPO / "examples").glob("*.yaml")) if len(load_sources(p)) == 1]
SOURCE_LABEL = "restlake.io/source"
HASH = "restlake.io/config-hash"


class Cluster:
    """Reads for assertions, on the kubernetes client's typed APIs."""

    def __init__(self, api: Any, namespace: str) -> None:
        from kubernetes import client

        self.api = api
        self.ns = namespace
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def _dicts(self, items: Any) -> list[dict[str, Any]]:
        return [self.api.sanitize_for_serialization(i) for i in items]

    def source(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(
            "restlake.io", "v1alpha1", self.ns, "ingestionsources", name
        )

    def owned(self, source: str) -> dict[tuple[str, str], dict[str, Any]]:
        """Every object in the namespace labelled as belonging to ``source``, by (kind, name)."""
        selector = f"{SOURCE_LABEL}={source}"
        found: list[tuple[str, dict[str, Any]]] = []
        found += [
            ("ConfigMap", o)
            for o in self._dicts(self.core.list_namespaced_config_map(self.ns, label_selector=selector).items)
        ]
        found += [
            ("Service", o)
            for o in self._dicts(self.core.list_namespaced_service(self.ns, label_selector=selector).items)
        ]
        found += [
            ("Deployment", o)
            for o in self._dicts(self.apps.list_namespaced_deployment(self.ns, label_selector=selector).items)
        ]
        found += [
            ("ServiceAccount", o)
            for o in self._dicts(
                self.core.list_namespaced_service_account(self.ns, label_selector=selector).items
            )
        ]
        for group, version, plural, kind in (
            ("kafka.strimzi.io", "v1", "kafkatopics", "KafkaTopic"),
            ("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor"),
        ):
            listing = self.custom.list_namespaced_custom_object(
                group, version, self.ns, plural, label_selector=selector
            )
            found += [(kind, o) for o in listing["items"]]
        return {(kind, o["metadata"]["name"]): o for kind, o in found}

    def deployment(self, name: str) -> dict[str, Any]:
        return self.api.sanitize_for_serialization(self.apps.read_namespaced_deployment(name, self.ns))

    def replica_sets(self, source: str, component: str) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={source},app.kubernetes.io/component={component}"
        return self._dicts(self.apps.list_namespaced_replica_set(self.ns, label_selector=selector).items)

    def events(self, source: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.name={source}"
        return self._dicts(self.core.list_namespaced_event(self.ns, field_selector=selector).items)


def create_secret(control_plane: Any, namespace: str, name: str, *, labelled: bool) -> None:
    labels = {"restlake.io/source-credentials": "true"} if labelled else {}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "stringData": {"token": "tok-never-in-status"},
    }
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(secret))


def condition(source: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (source.get("status") or {}).get("conditions", []) if c["type"] == kind), None)


def apply(control_plane: Any, namespace: str, document: dict[str, Any] | Path) -> None:
    text = document.read_text() if isinstance(document, Path) else yaml.safe_dump(document)
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=text)


def expected_objects(name: str) -> set[tuple[str, str]]:
    return {
        ("ConfigMap", f"{name}-config"),
        ("ServiceAccount", f"{name}-fetcher"),
        ("ServiceAccount", f"{name}-runtime"),
        ("Service", f"{name}-fetcher"),
        ("Service", f"{name}-stream"),
        ("Deployment", f"{name}-fetcher"),
        ("Deployment", f"{name}-stream"),
        ("KafkaTopic", f"{name}-topic"),
        ("KafkaTopic", f"{name}-dlq-topic"),
        ("ServiceMonitor", f"{name}-fetcher"),
        ("ServiceMonitor", f"{name}-stream"),
    }


def reconciled(cluster: Cluster, name: str, generation: int) -> dict[str, Any] | None:
    source = cluster.source(name)
    status = source.get("status") or {}
    return source if status.get("observedGeneration") == generation else None


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_creates_exactly_the_expected_objects(
    example: Path, operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    name = example.stem
    # What a user does for a source with auth: the Secret carries restlake's label.
    for secret in sorted({ref.name for _, ref in secret_fields(load_source(example).spec)}):
        create_secret(control_plane, namespace, secret, labelled=True)
    apply(control_plane, namespace, example)
    cluster = Cluster(api, namespace)
    eventually(lambda: set(cluster.owned(name)) == expected_objects(name), what=f"the objects of {name}")
    source = eventually(lambda: reconciled(cluster, name, 1), what="status.observedGeneration 1")
    uid = source["metadata"]["uid"]
    for (kind, obj_name), obj in cluster.owned(name).items():
        refs = obj["metadata"].get("ownerReferences") or []
        assert [(r["kind"], r["name"], r["uid"], r.get("controller")) for r in refs] == [
            ("IngestionSource", name, uid, True)
        ], f"{kind}/{obj_name}"
        managers = {
            m["manager"] for m in obj["metadata"].get("managedFields", []) if m["operation"] == "Apply"
        }
        assert managers == {"restlake-operator"}, f"{kind}/{obj_name} applied by {managers}"

    topic = cluster.owned(name)[("KafkaTopic", f"{name}-topic")]
    # The operator here runs outside the test namespace (no RESTLAKE_OPERATOR_RELEASE_NAMESPACE).
    assert topic["spec"]["topicName"] == f"restlake.{namespace}.{name}"
    assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "restlake-kafka"
    monitor = cluster.owned(name)[("ServiceMonitor", f"{name}-fetcher")]
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]

    status = source["status"]
    assert status["phase"] == "Provisioning"
    ready = condition(source, "Ready")
    assert ready is not None and ready["status"] in ("False", "Unknown")
    assert condition(source, "QualityPassing")["status"] == "Unknown"  # type: ignore[index]
    assert condition(source, "SchemaCompatible")["status"] == "True"  # type: ignore[index]
    assert condition(source, "CredentialsAllowed")["status"] == "True"  # type: ignore[index]
    # Nothing runs pods here: the topic operator never answers, and the deployment controller sees
    # pods that no kubelet will start. Status must say exactly that.
    topic_ready = condition(source, "TopicReady")
    assert (topic_ready["status"], topic_ready["reason"]) == ("Unknown", "WaitingForTopicOperator")  # type: ignore[index]

    def fetcher_not_available() -> dict[str, Any] | None:
        found = condition(cluster.source(name), "FetcherReady")
        return found if found and found["reason"] == "MinimumReplicasUnavailable" else None

    fetcher = eventually(fetcher_not_available, what="FetcherReady from the observed Deployment status")
    assert fetcher["status"] == "False"
    assert fetcher["message"].startswith("0/1 replicas available")
    assert [e["reason"] for e in cluster.events(name) if e["reason"] == "Reconciled"]


def _spec_patch(control_plane: Any, namespace: str, name: str, patch: dict[str, Any]) -> None:
    control_plane.kubectl("patch", "isrc", name, "-n", namespace, "--type=merge", "-p", json.dumps(patch))


def test_spec_update_rolls_the_fetcher_only(
    operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    apply(control_plane, namespace, REPO / "examples" / "demo-cursor.yaml")
    cluster = Cluster(api, namespace)
    eventually(lambda: reconciled(cluster, "demo-cursor", 1), what="first reconcile")
    eventually(lambda: cluster.replica_sets("demo-cursor", "fetcher"), what="the first fetcher ReplicaSet")
    before = {c: cluster.deployment(f"demo-cursor-{c}") for c in ("fetcher", "stream")}

    _spec_patch(control_plane, namespace, "demo-cursor", {"spec": {"poll": {"interval": "30s"}}})
    eventually(lambda: reconciled(cluster, "demo-cursor", 2), what="status.observedGeneration 2")
    after = {c: cluster.deployment(f"demo-cursor-{c}") for c in ("fetcher", "stream")}

    def template_hash(dep: dict[str, Any]) -> str:
        return dep["spec"]["template"]["metadata"]["annotations"][HASH]

    assert template_hash(after["fetcher"]) != template_hash(before["fetcher"])
    assert after["fetcher"]["metadata"]["generation"] == before["fetcher"]["metadata"]["generation"] + 1
    assert template_hash(after["stream"]) == template_hash(before["stream"])
    assert after["stream"]["metadata"]["generation"] == before["stream"]["metadata"]["generation"]
    config = cluster.core.read_namespaced_config_map("demo-cursor-config", namespace)
    assert "interval: 30s" in config.data["source.yaml"]
    # The deployment controller rolls it: a second ReplicaSet for the new template.
    eventually(
        lambda: len(cluster.replica_sets("demo-cursor", "fetcher")) == 2, what="a new fetcher ReplicaSet"
    )


def test_pause_scales_to_zero_and_resume_restores(
    operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    apply(control_plane, namespace, REPO / "examples" / "demo-pages.yaml")
    cluster = Cluster(api, namespace)
    eventually(lambda: reconciled(cluster, "demo-pages", 1), what="first reconcile")

    control_plane.kubectl(
        "annotate", "isrc", "demo-pages", "-n", namespace, "restlake.io/pause-reconciliation=true"
    )

    def replicas() -> tuple[int, int]:
        return tuple(cluster.deployment(f"demo-pages-{c}")["spec"]["replicas"] for c in ("fetcher", "stream"))

    eventually(lambda: replicas() == (0, 0), what="both Deployments scaled to zero")
    paused = eventually(
        lambda: (s := cluster.source("demo-pages"))["status"].get("phase") == "Paused" and s,
        what="phase Paused",
    )
    assert condition(paused, "ReconciliationPaused")["status"] == "True"  # type: ignore[index]
    assert condition(paused, "Ready")["reason"] == "ReconciliationPaused"  # type: ignore[index]

    control_plane.kubectl(
        "annotate", "isrc", "demo-pages", "-n", namespace, "restlake.io/pause-reconciliation-"
    )
    eventually(lambda: replicas() == (1, 1), what="both Deployments back to one replica")
    resumed = eventually(
        lambda: (s := cluster.source("demo-pages"))["status"].get("phase") != "Paused" and s,
        what="phase no longer Paused",
    )
    assert condition(resumed, "ReconciliationPaused")["status"] == "False"  # type: ignore[index]


def test_deletion_garbage_collects_everything(
    operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    apply(control_plane, namespace, REPO / "examples" / "demo-offset.yaml")
    cluster = Cluster(api, namespace)
    eventually(lambda: set(cluster.owned("demo-offset")) == expected_objects("demo-offset"), what="objects")
    eventually(lambda: cluster.replica_sets("demo-offset", "fetcher"), what="a ReplicaSet")
    control_plane.kubectl("delete", "isrc", "demo-offset", "-n", namespace, "--wait=true", "--timeout=60s")
    # kube-controller-manager's garbage collector follows the ownerReferences, down to ReplicaSets.
    eventually(lambda: cluster.owned("demo-offset") == {}, timeout=60, what="every owned object deleted")
    eventually(
        lambda: cluster.replica_sets("demo-offset", "fetcher") == [], timeout=60, what="ReplicaSets gone"
    )


def test_breaking_schema_change_is_refused_with_condition_and_event(
    operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    apply(control_plane, namespace, REPO / "examples" / "demo-link.yaml")
    cluster = Cluster(api, namespace)
    eventually(lambda: reconciled(cluster, "demo-link", 1), what="first reconcile")
    old = json.loads(
        cluster.core.read_namespaced_config_map("demo-link-config", namespace).data["stream.json"]
    )

    required = [*cluster.source("demo-link")["spec"]["schema"]["jsonSchema"]["required"], "name"]
    _spec_patch(
        control_plane, namespace, "demo-link", {"spec": {"schema": {"jsonSchema": {"required": required}}}}
    )
    source = eventually(lambda: reconciled(cluster, "demo-link", 2), what="observedGeneration 2")
    schema = condition(source, "SchemaCompatible")
    assert (schema["status"], schema["reason"]) == ("False", "IncompatibleSchemaChange")  # type: ignore[index]
    assert "new required field 'name'" in schema["message"]  # type: ignore[index]
    assert source["status"]["phase"] == "Degraded"
    kept = json.loads(
        cluster.core.read_namespaced_config_map("demo-link-config", namespace).data["stream.json"]
    )
    assert kept["json_schema"] == old["json_schema"]
    warning = eventually(
        lambda: [e for e in cluster.events("demo-link") if e["reason"] == "SchemaIncompatible"],
        what="the Event",
    )
    assert warning[0]["type"] == "Warning"
    assert "spec.schema.jsonSchema.required" in warning[0]["message"]


def test_kubectl_get_isrc_shows_the_printer_columns(
    operator: Any, control_plane: Any, api: Any, namespace: str, metrics_stub: Any
) -> None:
    # The pods label their series with the source's identity (namespace-qualified here).
    identity = f"{namespace}.github-issues"
    metrics_stub.set(
        namespace,
        "github-issues-fetcher",
        "# TYPE restlake_fetcher_records_produced counter\n"
        f'restlake_fetcher_records_produced_total{{source="{identity}"}} 1234\n'
        "# TYPE restlake_fetcher_last_success_timestamp_seconds gauge\n"
        f'restlake_fetcher_last_success_timestamp_seconds{{source="{identity}"}} 1.7e9\n',
    )
    # The lag is the stream job's: its driver exports it per partition, behind its own Service.
    metrics_stub.set(
        namespace,
        "github-issues-stream",
        "# TYPE restlake_stream_kafka_lag_records gauge\n"
        + "".join(
            f'restlake_stream_kafka_lag_records{{source="{identity}",topic="t",partition="{p}"}} {lag}\n'
            for p, lag in ((0, 3), (1, 4))
        ),
    )
    create_secret(control_plane, namespace, "github-token", labelled=True)
    apply(control_plane, namespace, REPO / "examples" / "github-issues.yaml")
    cluster = Cluster(api, namespace)
    eventually(
        lambda: (cluster.source("github-issues").get("status") or {}).get("consumerLag") == 7,
        what="status.eventsProduced and consumerLag from the fetcher's and the driver's metrics",
    )
    out = control_plane.kubectl("get", "isrc", "-n", namespace).stdout.splitlines()
    header = out[0].split()
    assert header == ["NAME", "PHASE", "READY", "EVENTS", "LAG", "LAST", "FETCH", "AGE"]
    row = out[1].split()
    assert row[:5] == ["github-issues", "Provisioning", "False", "1234", "7"]
    assert row[5].endswith(("d", "y"))  # 1.7e9 is in 2023: a relative age in days or years
    # The category holds IngestionSources and Backfills, so kubectl names each row with its kind.
    short = control_plane.kubectl("get", "restlake", "-n", namespace).stdout
    assert short.splitlines()[1].split()[0] == "ingestionsource.restlake.io/github-issues"


def test_replicas_register_in_the_kopf_peering(operator: Any, control_plane: Any) -> None:
    peering = json.loads(
        control_plane.kubectl("get", "clusterkopfpeering", "restlake-test", "-o", "json").stdout
    )
    peers = peering.get("status") or {}
    assert peers, "the operator did not register in ClusterKopfPeering restlake-test"
    assert all("lifetime" in p for p in peers.values())


def test_a_second_replica_stands_by_while_the_first_reconciles(
    operator: Any, control_plane: Any, api: Any, namespace: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    log_path = tmp_path / "standby.log"
    with log_path.open("wb") as handle:
        standby = subprocess.Popen(
            [sys.executable, "-m", "restlake.cli.operator", "run"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**operator.env, "RESTLAKE_OPERATOR_PRIORITY": "1"},
        )
    try:

        def priorities() -> list[int] | None:
            peering = control_plane.kubectl("get", "clusterkopfpeering", "restlake-test", "-o", "json").stdout
            found = sorted(p["priority"] for p in (json.loads(peering).get("status") or {}).values())
            return found if found == [1, 100] else None

        # kopf starts paused and stays so while a higher-priority peer is alive.
        eventually(priorities, timeout=60, what="both replicas registered with their priorities")
        apply(control_plane, namespace, REPO / "examples" / "demo-pages.yaml")
        eventually(lambda: reconciled(Cluster(api, namespace), "demo-pages", 1), what="a reconcile")
        assert "reconciled source=demo-pages" not in log_path.read_text(errors="replace")
        assert f"reconciled source=demo-pages namespace={namespace}" in operator.log()
    finally:
        standby.terminate()
        standby.wait(30)


def test_a_deleted_and_an_edited_child_are_restored_by_the_timer(
    operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    apply(control_plane, namespace, REPO / "examples" / "demo-link.yaml")
    cluster = Cluster(api, namespace)
    eventually(lambda: reconciled(cluster, "demo-link", 1), what="first reconcile")
    wanted = cluster.deployment("demo-link-stream")["spec"]["template"]["spec"]["containers"][0]["image"]

    control_plane.kubectl("delete", "deployment", "demo-link-fetcher", "-n", namespace, "--wait=true")
    control_plane.kubectl(
        "set", "image", "deployment/demo-link-stream", "driver=someone/else:1", "-n", namespace
    )
    # The status timer runs every second here: both are back within a few periods.
    eventually(
        lambda: (
            cluster.deployment("demo-link-stream")["spec"]["template"]["spec"]["containers"][0]["image"]
            == wanted
        ),
        what="the driver image put back",
    )
    eventually(lambda: cluster.deployment("demo-link-fetcher"), what="the fetcher Deployment recreated")
    restored = eventually(
        lambda: [e for e in cluster.events("demo-link") if e["reason"] == "DriftCorrected"],
        what="a DriftCorrected Event",
    )
    assert any("Deployment/demo-link" in e["message"] for e in restored)


def test_sources_carry_no_finalizer_so_deletion_never_waits_for_the_operator(
    operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    apply(control_plane, namespace, REPO / "examples" / "demo-pages.yaml")
    cluster = Cluster(api, namespace)
    eventually(lambda: reconciled(cluster, "demo-pages", 1), what="first reconcile")
    # kopf would add its finalizer before the first tick of the timer (interval 1 s here): give
    # it several periods to show up.
    time.sleep(5)
    assert cluster.source("demo-pages")["metadata"].get("finalizers") in (None, [])
    control_plane.kubectl("delete", "isrc", "demo-pages", "-n", namespace, "--wait=true", "--timeout=10s")


def _with_bearer(secret: str) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text())
    doc["spec"]["request"]["auth"] = {"type": "bearer", "secretRef": {"name": secret, "key": "token"}}
    parse_source(doc, "test")  # a valid spec: what is refused below is the Secret, not the spec
    return doc


def _fetcher_secret_refs(cluster: Cluster) -> list[dict[str, Any]]:
    (container,) = cluster.deployment("demo-cursor-fetcher")["spec"]["template"]["spec"]["containers"]
    return [
        e["valueFrom"]["secretKeyRef"]
        for e in container.get("env", [])
        if (e.get("valueFrom") or {}).get("secretKeyRef") and e["name"].startswith("RESTLAKE_SECRET_")
    ]


def test_a_source_reads_only_secrets_labelled_for_restlake(
    operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    create_secret(control_plane, namespace, "db-admin", labelled=False)
    apply(control_plane, namespace, _with_bearer("db-admin"))
    cluster = Cluster(api, namespace)
    source = eventually(lambda: reconciled(cluster, "demo-cursor", 1), what="first reconcile")
    allowed = condition(source, "CredentialsAllowed")
    assert allowed is not None
    assert (allowed["status"], allowed["reason"]) == ("False", "SecretNotLabelled")
    assert allowed["message"].startswith(
        'Secret db-admin (spec.request.auth.secretRef) is not labelled restlake.io/source-credentials: "true"'
    )
    assert "tok-never-in-status" not in json.dumps(source)
    assert (source["status"]["phase"], condition(source, "Ready")["reason"]) == (  # type: ignore[index]
        "Degraded",
        "SecretNotLabelled",
    )
    warned = eventually(
        lambda: [e for e in cluster.events("demo-cursor") if e["reason"] == "CredentialsNotAllowed"],
        what="a CredentialsNotAllowed Event",
    )
    assert warned[0]["type"] == "Warning" and "db-admin" in warned[0]["message"]
    fetcher = cluster.deployment("demo-cursor-fetcher")
    assert fetcher["spec"]["replicas"] == 0
    assert _fetcher_secret_refs(cluster) == []
    assert "db-admin" not in json.dumps(fetcher["spec"])

    # The namespace owner consents: the status timer (every second here) rolls the fetcher out.
    control_plane.kubectl(
        "label", "secret", "db-admin", "-n", namespace, "restlake.io/source-credentials=true"
    )
    eventually(
        lambda: cluster.deployment("demo-cursor-fetcher")["spec"]["replicas"] == 1,
        what="the fetcher scaled up once the Secret is labelled",
    )
    assert _fetcher_secret_refs(cluster) == [{"name": "db-admin", "key": "token"}]
    # The timer applies first and patches the status after: wait for the condition too.
    allowed = eventually(
        lambda: (
            (c := condition(cluster.source("demo-cursor"), "CredentialsAllowed"))
            and c["status"] == "True"
            and c
        ),
        what="CredentialsAllowed True",
    )
    assert allowed["reason"] == "SecretsLabelled"

    # A Secret that is not there (a typo, or deleted) holds the fetcher again, naming the field.
    _spec_patch(
        control_plane,
        namespace,
        "demo-cursor",
        {"spec": {"request": {"auth": {"secretRef": {"name": "no-such-secret", "key": "token"}}}}},
    )
    source = eventually(lambda: reconciled(cluster, "demo-cursor", 2), what="observedGeneration 2")
    allowed = condition(source, "CredentialsAllowed")
    assert (allowed["status"], allowed["reason"]) == ("False", "SecretNotFound")  # type: ignore[index]
    assert allowed["message"].startswith(  # type: ignore[index]
        "Secret no-such-secret (spec.request.auth.secretRef) does not exist"
    )
    assert cluster.deployment("demo-cursor-fetcher")["spec"]["replicas"] == 0
    assert _fetcher_secret_refs(cluster) == []


def test_same_named_sources_in_two_namespaces_share_no_data(
    operator: Any, control_plane: Any, api: Any, namespace: str, second_namespace: str
) -> None:
    for ns in (namespace, second_namespace):
        apply(control_plane, ns, REPO / "examples" / "demo-cursor.yaml")
    seen: dict[str, tuple[Any, ...]] = {}
    for ns in (namespace, second_namespace):
        cluster = Cluster(api, ns)
        eventually(lambda c=cluster: reconciled(c, "demo-cursor", 1), what=f"first reconcile in {ns}")
        config = cluster.core.read_namespaced_config_map("demo-cursor-config", ns).data
        stream = json.loads(config["stream.json"])
        pod_source = parse_source(yaml.safe_load(config["source.yaml"]), "configmap")
        topic = cluster.owned("demo-cursor")[("KafkaTopic", "demo-cursor-topic")]["spec"]["topicName"]
        identity = f"{ns}.demo-cursor"
        # What the fetcher keys its state, envelopes and metrics by, and what the driver writes.
        assert pod_source.identity == stream["source"] == identity
        assert topic == stream["topic"] == f"restlake.{identity}"
        assert stream["bronze_path"] == f"s3a://restlake/lake/bronze/{identity}"
        assert stream["quarantine_path"] == f"s3a://restlake/lake/quarantine/{identity}"
        assert stream["checkpoint_path"].startswith(f"s3a://restlake/lake/_checkpoints/{identity}/")
        seen[ns] = (stream["source"], topic, stream["bronze_path"], stream["checkpoint_path"])
    first, second = seen.values()
    assert all(a != b for a, b in zip(first, second, strict=True))


def test_the_egress_policy_is_one_the_api_server_accepts(control_plane: Any, namespace: str) -> None:
    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    doc["spec"]["egress"] = {"cidrs": ["203.0.113.0/24", "2001:db8::/32"]}
    settings = OperatorSettings(
        network_policy=True,
        kafka_bootstrap="kafka-0.k:9092,kafka-1.k:9093",
        network_policy_kafka_peers=[{"namespaceSelector": {"matchLabels": {"team": "kafka"}}}],
        lineage_transport="http",
        lineage_url="http://marquez.marquez:5000",
    )
    owner = render.Owner(name="demo-cursor", namespace=namespace, uid="00000000-0000-0000-0000-000000000000")
    policy = render.egress_policy(parse_source(doc, "test"), owner, settings)
    del policy["metadata"]["ownerReferences"]  # the owner does not exist; dry-run checks it
    out = control_plane.kubectl(
        "apply", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(policy)
    ).stdout
    # Accepted as rendered: nothing pruned, nothing defaulted away.
    assert json.loads(out)["spec"]["egress"] == policy["spec"]["egress"]


def test_a_child_source_waits_for_its_parent_then_reads_it_by_name(
    operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    parent, child = load_sources(REPO / "examples" / "demo-parent-child.yaml")
    docs = {s.name: d for s, d in zip((parent, child), _documents("demo-parent-child.yaml"), strict=True)}
    apply(control_plane, namespace, docs[child.name])
    cluster = Cluster(api, namespace)
    source = eventually(lambda: reconciled(cluster, child.name, 1), what="the child's first reconcile")
    resolved = condition(source, "ParentResolved")
    assert resolved is not None
    assert (resolved["status"], resolved["reason"]) == ("False", "ParentNotFound")
    assert resolved["message"].startswith(
        f"spec.parent.source '{parent.name}' is not an IngestionSource in namespace {namespace}"
    )
    assert (source["status"]["phase"], condition(source, "Ready")["reason"]) == (  # type: ignore[index]
        "Degraded",
        "ParentNotFound",
    )
    assert cluster.deployment(f"{child.name}-fetcher")["spec"]["replicas"] == 0
    eventually(
        lambda: [e for e in cluster.events(child.name) if e["reason"] == "ParentUnresolved"],
        what="a ParentUnresolved Event",
    )

    # The parent appears: the status timer (every second here) resolves it by name.
    apply(control_plane, namespace, docs[parent.name])
    resolved = eventually(
        lambda: (
            (c := condition(cluster.source(child.name), "ParentResolved")) and c["status"] == "True" and c
        ),
        what="ParentResolved True",
    )
    assert resolved["reason"] == "ParentFound"
    eventually(
        lambda: cluster.deployment(f"{child.name}-fetcher")["spec"]["replicas"] == 1,
        what="the child's fetcher scaled up once its parent exists",
    )
    config = cluster.owned(child.name)[("ConfigMap", f"{child.name}-config")]
    rendered = yaml.safe_load(config["data"][render.SOURCE_FILE])
    identity = render.identity(namespace, parent.name, OperatorSettings(release_namespace=""))
    assert rendered["metadata"]["annotations"]["restlake.io/parent-identity"] == identity
    assert rendered["metadata"]["annotations"]["restlake.io/parent-table"] == "raw.api_events"
    # What the fetcher pod does with it: the same resolution as `restlake fetcher run -f`.
    from restlake.contracts.parents import resolve_parents

    link = resolve_parents([parse_source(rendered, "configmap")])[child.name]
    assert (link.identity, link.table) == (identity, "raw.api_events")


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((REPO / "examples" / name).read_text()) if d]


def test_a_namespace_without_the_operators_secret_says_so_until_it_is_copied_in(
    operator: Any, control_plane: Any, api: Any, bare_namespace: str
) -> None:
    """watchAllNamespaces: the pods of a source in a namespace lacking the operator's Postgres Secret
    could only wait in CreateContainerConfigError; the source's status names the Secret instead."""
    apply(control_plane, bare_namespace, REPO / "examples" / "demo-cursor.yaml")
    cluster = Cluster(api, bare_namespace)

    def missing() -> dict[str, Any] | None:
        source = reconciled(cluster, "demo-cursor", 1)
        stream = condition(source, "StreamReady") if source else None
        return source if stream and stream["reason"] == "SecretMissing" else None

    source = eventually(missing, what="StreamReady SecretMissing")
    assert source["status"]["phase"] == "Degraded"
    assert condition(source, "StreamReady")["message"] == (  # type: ignore[index]
        f"Secret {OPERATOR_PG_SECRET} (read by env RESTLAKE_PG_DSN of container driver) does not exist "
        f"in namespace {bare_namespace}: the pods cannot start until it does (the operator's Secrets "
        "must be copied into every namespace that holds sources)"
    )
    assert condition(source, "FetcherReady")["reason"] == "SecretMissing"  # type: ignore[index]

    control_plane.kubectl(
        "create", "secret", "generic", OPERATOR_PG_SECRET, "-n", bare_namespace, "--from-literal=dsn=x"
    )
    # The status timer looks again: without a kubelet the Deployments now report their own state.
    eventually(
        lambda: (
            (s := cluster.source("demo-cursor"))
            and condition(s, "StreamReady")["reason"] != "SecretMissing"  # type: ignore[index]
            and s["status"]["phase"] == "Provisioning"
        ),
        what="the condition cleared once the Secret exists",
    )


def test_rotating_a_secret_the_pods_read_rolls_them(
    operator: Any, control_plane: Any, api: Any, namespace: str
) -> None:
    """Pods read the operator's Postgres DSN as an environment variable, fixed when they start: a new
    password in the Secret must roll the fetcher and the driver that read it (the status timer sees
    the Secret's new version), or they keep the old one until something else restarts them."""
    apply(control_plane, namespace, REPO / "examples" / "demo-cursor.yaml")
    cluster = Cluster(api, namespace)
    eventually(lambda: reconciled(cluster, "demo-cursor", 1), what="first reconcile")
    parts = ("fetcher", "stream")
    before = {c: cluster.deployment(f"demo-cursor-{c}") for c in parts}

    def stamp(deployment: dict[str, Any]) -> str:
        found = pod_secrets.versions_of(deployment)
        assert found, "the pod template carries no secret-versions stamp"
        return found

    rotated = json.dumps({"stringData": {"dsn": "postgresql://pg/db?password=rotated"}})
    control_plane.kubectl("patch", "secret", OPERATOR_PG_SECRET, "-n", namespace, "-p", rotated)

    def rolled() -> dict[str, dict[str, Any]] | None:
        found = {c: cluster.deployment(f"demo-cursor-{c}") for c in parts}
        return found if all(stamp(found[c]) != stamp(before[c]) for c in parts) else None

    after = eventually(rolled, what="both pod templates carry the Secret's new version")
    for c in parts:
        assert after[c]["metadata"]["generation"] == before[c]["metadata"]["generation"] + 1
        # Only the stamp moved: the rest of the template is what the source's spec renders.
        assert (
            after[c]["spec"]["template"]["metadata"]["annotations"][HASH]
            == (before[c]["spec"]["template"]["metadata"]["annotations"][HASH])
        )
    # Said as a rotation, not as drift put back.
    said = eventually(
        lambda: [e for e in cluster.events("demo-cursor") if e["reason"] == "SecretsRotated"],
        what="a SecretsRotated Event",
    )
    assert any("Deployment/demo-cursor-fetcher" in e["message"] for e in said)
    assert not [e for e in cluster.events("demo-cursor") if e["reason"] == "DriftCorrected"]
