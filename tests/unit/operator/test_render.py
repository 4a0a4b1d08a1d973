"""The pure render functions: exact objects for the examples, hashes, secrets, pause, long names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from restlake.contracts.spec import load_source, parse_source
from restlake.jobs.spark.config import StreamJobConfig
from restlake.operator import render
from restlake.operator.settings import OperatorSettings

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
SETTINGS = OperatorSettings(release="rl", lake_root="s3a://lake/root", kafka_bootstrap="kafka:9092")


def owner(name: str) -> render.Owner:
    return render.Owner(name=name, namespace="team-a", uid="0000-uid")


def github() -> Any:
    return load_source(REPO / "examples" / "github-issues.yaml")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_renders_the_same_set_of_owned_objects(example: Path) -> None:
    source = load_source(example)
    objects = render.render_all(
        source, owner(source.name), SETTINGS, paused=False, strimzi=True, prometheus=True
    )
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("ConfigMap", f"{source.name}-config"),
        ("Service", f"{source.name}-fetcher"),
        ("Deployment", f"{source.name}-fetcher"),
        ("Deployment", f"{source.name}-stream"),
        ("KafkaTopic", f"{source.name}-topic"),
        ("ServiceMonitor", f"{source.name}-fetcher"),
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
        for o in render.render_all(
            source, owner("g"), SETTINGS, paused=False, strimzi=False, prometheus=False
        )
    ]
    assert kinds == ["ConfigMap", "Service", "Deployment", "Deployment"]


def test_config_map_round_trips_through_the_spec_model_and_the_stream_job_config() -> None:
    source = github()
    cm = render.config_map(source, owner(source.name), SETTINGS)
    reread = parse_source(yaml.safe_load(cm["data"][render.SOURCE_FILE]), "configmap")
    assert reread.spec == source.spec
    stream = StreamJobConfig.model_validate(json.loads(cm["data"][render.STREAM_FILE]))
    assert stream.topic == "restlake.github-issues"
    assert stream.kafka_bootstrap == "kafka:9092"
    assert stream.checkpoint_path == "s3a://lake/root/_checkpoints/github-issues"
    assert stream.bronze_path == "s3a://lake/root/bronze/github-issues"
    assert stream.json_schema == source.spec.schema_.json_schema
    assert "pg_dsn" not in json.loads(cm["data"][render.STREAM_FILE])  # from the Secret, via env


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
        "python",
        "-m",
        "restlake.jobs.spark.stream",
        "--config",
        "/etc/restlake/stream.json",
        "--master",
        "spark://rl-spark-master:7077",
    ]
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    env = {e["name"]: e for e in container["env"]}
    assert env["SPARK_LOCAL_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}


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


def test_kafka_topic_and_service_monitor() -> None:
    source = github()
    topic = render.kafka_topic(source, owner(source.name), SETTINGS)
    assert topic["apiVersion"] == "kafka.strimzi.io/v1"
    assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "restlake-kafka"
    assert topic["spec"] == {"topicName": "restlake.github-issues", "partitions": 3, "replicas": 1}
    monitor = render.service_monitor(owner(source.name), SETTINGS)
    assert monitor["spec"]["selector"]["matchLabels"] == render.selector_labels(source.name, "fetcher")
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]


def test_long_names_stay_valid_dns_labels_and_distinct() -> None:
    a = render.child_name("a" * 63, "fetcher")
    b = render.child_name("a" * 62 + "b", "fetcher")
    assert len(a) <= 63 and len(b) <= 63 and a != b
    assert a.endswith("-fetcher")
    assert render.child_name("short", "fetcher") == "short-fetcher"


def test_rendering_is_deterministic() -> None:
    source = github()
    first = render.render_all(source, owner("g"), SETTINGS, paused=False, strimzi=True, prometheus=True)
    second = render.render_all(source, owner("g"), SETTINGS, paused=False, strimzi=True, prometheus=True)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
