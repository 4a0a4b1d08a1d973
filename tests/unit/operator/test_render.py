"""The pure render functions: exact objects for the examples, hashes, secrets, pause, long names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from restlake.contracts.spec import load_source, load_sources, parse_source
from restlake.contracts.stream_job import StreamJobConfig
from restlake.errors import SpecError
from restlake.operator import credentials, render
from restlake.operator.settings import OperatorSettings

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
SETTINGS = OperatorSettings(release="rl", lake_root="s3a://lake/root", kafka_bootstrap="kafka:9092")


def owner(name: str) -> render.Owner:
    return render.Owner(name=name, namespace="team-a", uid="0000-uid")


def github() -> Any:
    return load_source(REPO / "examples" / "github-issues.yaml")


@pytest.mark.parametrize("source", [s for e in EXAMPLES for s in load_sources(e)], ids=lambda s: s.name)
def test_every_example_renders_the_same_set_of_owned_objects(source: Any) -> None:
    objects = render.render_all(
        source, owner(source.name), SETTINGS, paused=False, strimzi=render.STRIMZI_TOPIC_API, prometheus=True
    )
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("ConfigMap", f"{source.name}-config"),
        ("ServiceAccount", f"{source.name}-fetcher"),
        ("ServiceAccount", f"{source.name}-runtime"),
        ("Service", f"{source.name}-fetcher"),
        ("Service", f"{source.name}-stream"),
        ("Deployment", f"{source.name}-fetcher"),
        ("Deployment", f"{source.name}-stream"),
        ("KafkaTopic", f"{source.name}-topic"),
        ("KafkaTopic", f"{source.name}-dlq-topic"),
        ("ServiceMonitor", f"{source.name}-fetcher"),
        ("ServiceMonitor", f"{source.name}-stream"),
    ]
    for obj in objects:
        assert obj["metadata"]["namespace"] == "team-a"
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "restlake.io/v1alpha1",
                "kind": "IngestionSource",
                "name": source.name,
                "uid": "0000-uid",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert obj["metadata"]["labels"]["restlake.io/source"] == source.name


def test_optional_integrations_are_left_out_when_their_crds_are_absent() -> None:
    source = github()
    kinds = [
        o["kind"]
        for o in render.render_all(source, owner("g"), SETTINGS, paused=False, strimzi=None, prometheus=False)
    ]
    assert kinds == [
        "ConfigMap",
        "ServiceAccount",
        "ServiceAccount",
        "Service",
        "Service",
        "Deployment",
        "Deployment",
    ]


def test_config_map_round_trips_through_the_spec_model_and_the_stream_job_config() -> None:
    source = github()
    cm = render.config_map(source, owner(source.name), SETTINGS)
    reread = parse_source(yaml.safe_load(cm["data"][render.SOURCE_FILE]), "configmap")
    assert reread.spec == source.spec
    stream = StreamJobConfig.model_validate(json.loads(cm["data"][render.STREAM_FILE]))
    assert stream.topic == "restlake.github-issues"
    assert stream.kafka_bootstrap == "kafka:9092"
    # Per source object: a source deleted and created again starts a new checkpoint on its new topic.
    assert stream.checkpoint_path == "s3a://lake/root/_checkpoints/github-issues/0000-uid"
    assert stream.bronze_path == "s3a://lake/root/bronze/github-issues"
    assert stream.json_schema == source.spec.schema_.json_schema
    assert "pg_dsn" not in json.loads(cm["data"][render.STREAM_FILE])  # from the Secret, via env
    # The inline expectations reach the stream job as they do locally.
    assert source.spec.quality is not None and source.spec.quality.expectations
    assert stream.quality == source.spec.quality
    # The ops port the probes, the Lag figure and Prometheus use, reachable from outside the pod.
    assert (stream.metrics_port, stream.metrics_address) == (9109, "0.0.0.0")


def test_fetcher_deployment_security_probes_resources_and_secret_env() -> None:
    source = github()
    dep = render.fetcher_deployment(source, owner(source.name), SETTINGS, paused=False)
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert dep["spec"]["replicas"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 9108, "protocol": "TCP"}]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["RESTLAKE_SECRET_GITHUB_TOKEN_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "github-token", "key": "token"}
    }
    assert env["RESTLAKE_PG_DSN"]["valueFrom"]["secretKeyRef"]["name"] == "restlake-postgres"
    # Probes and Prometheus reach the pod IP, not loopback.
    assert env["RESTLAKE_FETCHER_OPS_HOST"]["value"] == "0.0.0.0"
    assert "value" not in env["RESTLAKE_SECRET_GITHUB_TOKEN_TOKEN"]
    assert container["args"] == [
        "restlake",
        "fetcher",
        "run",
        "-f",
        "/etc/restlake/source.yaml",
        "--ops-port",
        "9108",
        "--no-create-topics",
        "--json-logs",
    ]


def test_every_auth_secret_becomes_an_env_var() -> None:
    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text())
    doc["spec"]["request"]["auth"] = {
        "type": "basic",
        "usernameSecretRef": {"name": "api-creds", "key": "user"},
        "passwordSecretRef": {"name": "api-creds", "key": "pass.word"},
    }
    source = parse_source(doc, "test")
    dep = render.fetcher_deployment(source, owner(source.name), SETTINGS, paused=False)
    names = [e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert [n for n in names if n.startswith("RESTLAKE_SECRET_")] == [
        "RESTLAKE_SECRET_API_CREDS_PASS_WORD",
        "RESTLAKE_SECRET_API_CREDS_USER",
    ]


def test_stream_deployment_is_one_recreated_driver_in_client_mode() -> None:
    source = github()
    dep = render.stream_deployment(source, owner(source.name), SETTINGS, paused=False)
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert container["args"] == [
        "python3",
        "-m",
        "restlake.jobs.spark.stream",
        "--config",
        "/etc/restlake/stream.json",
        "--master",
        "spark://rl-spark-master:7077",
        # Capped: without spark.cores.max the first source takes every core of the cluster.
        "--conf",
        "spark.cores.max=1",
        "--conf",
        "spark.executor.cores=1",
        "--conf",
        "spark.executor.memory=512m",
    ]
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    env = {e["name"]: e for e in container["env"]}
    assert env["SPARK_LOCAL_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    # What executors connect back to: the pod IP (a pod's hostname resolves nowhere else).
    assert env["SPARK_LOCAL_HOSTNAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert {"name": "metrics", "containerPort": 9109, "protocol": "TCP"} in container["ports"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 300
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9109" and annotations["prometheus.io/scrape"] == "true"


def test_a_spec_change_changes_the_hash_of_the_component_it_concerns_only() -> None:
    source = github()
    o = owner(source.name)
    fetcher_before = render.fetcher_deployment(source, o, SETTINGS, paused=False)
    stream_before = render.stream_deployment(source, o, SETTINGS, paused=False)
    faster = source.model_copy(
        update={
            "spec": source.spec.model_copy(
                update={"poll": source.spec.poll.model_copy(update={"jitter": 0.5})}
            )
        }
    )
    fetcher_after = render.fetcher_deployment(faster, o, SETTINGS, paused=False)
    stream_after = render.stream_deployment(faster, o, SETTINGS, paused=False)

    def hash_of(dep: dict[str, Any]) -> str:
        return dep["spec"]["template"]["metadata"]["annotations"][render.CONFIG_HASH]

    assert hash_of(fetcher_before) != hash_of(fetcher_after)
    assert hash_of(stream_before) == hash_of(stream_after)  # the Spark driver does not restart for it


def test_pause_scales_to_zero_without_touching_the_hash() -> None:
    source = github()
    o = owner(source.name)
    running = render.fetcher_deployment(source, o, SETTINGS, paused=False)
    paused = render.fetcher_deployment(source, o, SETTINGS, paused=True)
    assert (running["spec"]["replicas"], paused["spec"]["replicas"]) == (1, 0)
    assert running["spec"]["template"] == paused["spec"]["template"]
    assert render.stream_deployment(source, o, SETTINGS, paused=True)["spec"]["replicas"] == 0


@pytest.mark.parametrize(
    ("annotations", "paused"),
    [
        (None, False),
        ({}, False),
        ({render.PAUSE_ANNOTATION: "true"}, True),
        ({render.PAUSE_ANNOTATION: "True "}, True),
        ({render.PAUSE_ANNOTATION: "false"}, False),
    ],
)
def test_pause_annotation(annotations: dict[str, str] | None, paused: bool) -> None:
    assert render.is_paused(annotations) is paused


def test_kafka_topics_and_service_monitors() -> None:
    source = github()
    topic, dlq = render.kafka_topics(source, owner(source.name), SETTINGS)
    assert topic["apiVersion"] == dlq["apiVersion"] == "kafka.strimzi.io/v1"
    assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "restlake-kafka"
    assert topic["spec"] == {"topicName": "restlake.github-issues", "partitions": 3, "replicas": 1}
    assert dlq["spec"] == {"topicName": "restlake.github-issues.dlq", "partitions": 1, "replicas": 1}
    older = render.kafka_topics(source, owner(source.name), SETTINGS, api_version="kafka.strimzi.io/v1beta2")
    assert {t["apiVersion"] for t in older} == {"kafka.strimzi.io/v1beta2"}
    fetcher, stream = render.service_monitors(owner(source.name), SETTINGS)
    assert fetcher["spec"]["selector"]["matchLabels"] == render.selector_labels(source.name, "fetcher")
    assert fetcher["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert stream["spec"]["selector"]["matchLabels"] == render.selector_labels(source.name, "stream")
    assert stream["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]


def test_the_dead_letter_topic_is_the_one_the_fetcher_writes() -> None:
    from restlake.fetcher.deadletter import dlq_topic

    source = github()
    assert render.topics(source, SETTINGS)[render.DLQ_TOPIC] == dlq_topic(source.topic(SETTINGS.topic_prefix))


def test_executor_share_comes_from_the_spec_else_the_installation() -> None:
    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text())
    doc["spec"]["resources"] = {"executors": {"cores": 2, "memory": "1g"}}
    source = parse_source(doc, "test")
    assert render.executor_conf(source, SETTINGS) == {
        "spark.cores.max": "2",
        "spark.executor.cores": "1",
        "spark.executor.memory": "1g",
    }
    wide = OperatorSettings(executor_cores=4, executor_cores_per_executor=2, executor_memory="2g")
    assert render.executor_conf(github(), wide) == {
        "spark.cores.max": "4",
        "spark.executor.cores": "2",
        "spark.executor.memory": "2g",
    }
    doc["spec"]["resources"] = {"executors": {"cores": 1, "coresPerExecutor": 2}}
    with pytest.raises(Exception, match="coresPerExecutor"):
        parse_source(doc, "test")


def test_pods_run_as_their_own_account_without_a_token_except_the_reporting_jobs() -> None:
    source = github()
    o = owner(source.name)
    for account, name in (
        (render.runtime_service_account(o), "github-issues-runtime"),
        (render.fetcher_service_account(o), "github-issues-fetcher"),
    ):
        assert (account["metadata"]["name"], account["automountServiceAccountToken"]) == (name, False)
    for dep, name in (
        (render.fetcher_deployment(source, o, SETTINGS, paused=False), "github-issues-fetcher"),
        (render.stream_deployment(source, o, SETTINGS, paused=False), "github-issues-runtime"),
    ):
        pod = dep["spec"]["template"]["spec"]
        assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == (name, False)
    # An installation-wide account is the lake writer's: the driver's, never the fetcher's.
    with_account = OperatorSettings(service_account="lake-writer")
    fetcher_pod = render.fetcher_deployment(source, o, with_account, paused=False)["spec"]["template"]["spec"]
    driver_pod = render.stream_deployment(source, o, with_account, paused=False)["spec"]["template"]["spec"]
    assert (fetcher_pod["serviceAccountName"], driver_pod["serviceAccountName"]) == (
        "github-issues-fetcher",
        "lake-writer",
    )
    assert [
        x["metadata"]["name"]
        for x in render.render_all(source, o, with_account, paused=False, strimzi=None, prometheus=False)
        if x["kind"] == "ServiceAccount"
    ] == ["github-issues-fetcher"]
    # Backfill and quality pods patch their status, so they keep a token (of the jobs account).
    jobs = OperatorSettings(job_service_account="rl-jobs")
    doc = yaml.safe_load((REPO / "examples" / "github-issues.yaml").read_text())
    doc["spec"]["quality"]["bronze"] = {"schedule": "@daily"}
    cron = render.quality_cron_job(parse_source(doc, "test"), o, jobs, paused=False)
    assert cron is not None
    job_pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert (job_pod["serviceAccountName"], job_pod["automountServiceAccountToken"]) == ("rl-jobs", True)


def test_spark_master_is_qualified_with_the_release_namespace() -> None:
    assert OperatorSettings(release="rl").spark_master_url == "spark://rl-spark-master:7077"
    qualified = OperatorSettings(release="rl", release_namespace="data")
    assert qualified.spark_master_url == "spark://rl-spark-master.data.svc:7077"


def test_default_images_are_the_ones_the_dockerfile_builds() -> None:
    from restlake import __version__

    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    settings = OperatorSettings()
    for image in (settings.fetcher_image, settings.spark_image):
        repository, tag = image.split(":")
        target = repository.split("/")[1]
        assert tag == __version__
        assert f" AS {target}" in dockerfile, f"docker/Dockerfile has no target {target} for {image}"


def test_long_names_stay_valid_dns_labels_and_distinct() -> None:
    a = render.child_name("a" * 63, "fetcher")
    b = render.child_name("a" * 62 + "b", "fetcher")
    assert len(a) <= 63 and len(b) <= 63 and a != b
    assert a.endswith("-fetcher")
    assert render.child_name("short", "fetcher") == "short-fetcher"


def test_rendering_is_deterministic() -> None:
    source = github()
    api = render.STRIMZI_TOPIC_API
    first = render.render_all(source, owner("g"), SETTINGS, paused=False, strimzi=api, prometheus=True)
    second = render.render_all(source, owner("g"), SETTINGS, paused=False, strimzi=api, prometheus=True)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_only_the_pods_that_write_the_lake_get_its_keys() -> None:
    source = github()
    o = owner(source.name)
    with_lake = OperatorSettings(lake_secret="restlake-lake", job_service_account="rl-jobs")
    fetcher = render.fetcher_deployment(source, o, with_lake, paused=False)
    stream = render.stream_deployment(source, o, with_lake, paused=False)
    (fetcher_container,) = fetcher["spec"]["template"]["spec"]["containers"]
    (driver,) = stream["spec"]["template"]["spec"]["containers"]
    assert "envFrom" not in fetcher_container
    assert "restlake-lake" not in json.dumps(fetcher)
    assert driver["envFrom"] == [{"secretRef": {"name": "restlake-lake"}}]
    doc = yaml.safe_load((REPO / "examples" / "github-issues.yaml").read_text())
    doc["spec"]["quality"]["bronze"] = {"schedule": "@daily"}
    cron = render.quality_cron_job(parse_source(doc, "test"), o, with_lake, paused=False)
    assert cron is not None
    (checker,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert checker["envFrom"] == [{"secretRef": {"name": "restlake-lake"}}]


def test_egress_policy_allows_dns_kafka_postgres_and_the_api_ports_only() -> None:
    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text())
    doc["spec"]["request"]["url"] = "https://api.example.com:8443/v1/items"
    doc["spec"]["request"]["auth"] = {
        "type": "oauth2ClientCredentials",
        "tokenUrl": "https://auth.example.com/token",
        "clientId": "restlake",
        "clientSecretRef": {"name": "api-creds", "key": "client-secret"},
    }
    doc["spec"]["egress"] = {"cidrs": ["203.0.113.0/24", "2001:db8::/32"]}
    source = parse_source(doc, "test")
    settings = OperatorSettings(
        network_policy=True,
        kafka_bootstrap="kafka-0.k:9092,kafka-1.k:9093",
        network_policy_kafka_peers=[{"namespaceSelector": {"matchLabels": {"name": "kafka"}}}],
    )
    o = owner(source.name)
    objects = render.render_all(source, o, settings, paused=False, strimzi=None, prometheus=False)
    kinds = [x["kind"] for x in objects]
    # Applied before the Deployment, so no fetcher pod ever starts unconfined.
    assert kinds.index("NetworkPolicy") < kinds.index("Deployment")
    policy = objects[kinds.index("NetworkPolicy")]
    assert policy["metadata"]["name"] == f"{source.name}-fetcher"
    assert policy["spec"]["podSelector"] == {"matchLabels": render.selector_labels(source.name, "fetcher")}
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert policy["spec"]["egress"] == [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {
            "ports": [{"protocol": "TCP", "port": 9092}, {"protocol": "TCP", "port": 9093}],
            "to": [{"namespaceSelector": {"matchLabels": {"name": "kafka"}}}],
        },
        {
            "to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}, {"ipBlock": {"cidr": "2001:db8::/32"}}],
            "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 8443}],
        },
        {"ports": [{"protocol": "TCP", "port": 5432}]},
    ]


def test_egress_policy_without_cidrs_keeps_the_api_ports_off_link_local_and_is_off_by_default() -> None:
    source = load_source(REPO / "examples" / "demo-pages.yaml")
    o = owner(source.name)
    assert "NetworkPolicy" not in [
        x["kind"]
        for x in render.render_all(source, o, SETTINGS, paused=False, strimzi=None, prometheus=False)
    ]
    settings = OperatorSettings(
        network_policy=True, lineage_transport="http", lineage_url="http://marquez:5000"
    )
    rules = render.egress_policy(source, o, settings)["spec"]["egress"]
    assert rules[2] == {
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}],
        "ports": [{"protocol": "TCP", "port": 8085}],  # the port of its request.url
    }
    # Kafka without declared peers: its port anywhere; the lineage receiver's port is allowed too.
    assert rules[1] == {"ports": [{"protocol": "TCP", "port": 9092}]}
    assert rules[-1] == {"ports": [{"protocol": "TCP", "port": 5000}]}


def test_a_cidr_that_is_not_one_is_refused_naming_the_field() -> None:
    doc = yaml.safe_load((REPO / "examples" / "demo-pages.yaml").read_text())
    doc["spec"]["egress"] = {"cidrs": ["api.example.com"]}
    with pytest.raises(SpecError, match=r"spec\.egress\.cidrs\[0\]: must be an IP range in CIDR notation"):
        parse_source(doc, "test")
    doc["spec"]["egress"] = {"cidrs": ["10.0.0.300/8"]}
    with pytest.raises(SpecError, match=r"spec\.egress\.cidrs\[0\]: must be an IP range in CIDR notation"):
        parse_source(doc, "test")


def test_secret_refs_are_found_wherever_the_spec_holds_them() -> None:
    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text())
    doc["spec"]["request"]["auth"] = {
        "type": "basic",
        "usernameSecretRef": {"name": "api-creds", "key": "user"},
        "passwordSecretRef": {"name": "api-pass", "key": "password"},
    }
    source = parse_source(doc, "test")
    assert [(field, ref.name) for field, ref in credentials.secret_fields(source.spec)] == [
        ("spec.request.auth.usernameSecretRef", "api-creds"),
        ("spec.request.auth.passwordSecretRef", "api-pass"),
    ]


def test_snowflake_credentials_are_checked_but_never_given_to_a_pod() -> None:
    from ...spec_corpus import SNOWFLAKE

    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text())
    doc["spec"]["request"]["auth"] = {"type": "bearer", "secretRef": {"name": "api-token", "key": "token"}}
    doc["spec"]["sinks"] = {"snowflake": SNOWFLAKE}
    source = parse_source(doc, "test")
    assert [field for field, _ in credentials.secret_fields(source.spec)] == [
        "spec.request.auth.secretRef",
        "spec.sinks.snowflake.auth.privateKeySecretRef",
    ]
    assert [ref.name for ref in render.secret_refs(source)] == ["api-token"]
