"""Where credentials live: Kubernetes Secrets (by reference) or mounted files, or env locally.

Every credential the product handles (the REST API's token, the Postgres DSN, the S3 keys, the
lineage receiver's API key, the Pushgateway password) is checked here in one place: no object the
operator renders holds a value, every credential variable of every pod is a ``secretKeyRef``, the
settings read ``<VARIABLE>_FILE`` mounts, and neither a settings repr nor an OpenLineage event of
the fetcher, stream or quality job carries a value. The fetcher's logs, errors, DLQ events and
metrics are checked with a real broker in tests/integration/test_fetcher.py.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from restlake.contracts.spec import parse_source
from restlake.errors import ConfigError
from restlake.lineage.datasets import http_endpoint, postgres_table
from restlake.lineage.emitter import LineageEmitter
from restlake.lineage.settings import LineageSettings
from restlake.lineage.stream import BatchCounts, StreamTargets, emit_stream_batch
from restlake.operator import render
from restlake.operator.settings import OperatorSettings
from restlake.quality.settings import QualitySettings
from restlake.settings import PostgresSettings, S3Settings

from ..openlineage_events import Recorder

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "pg-Pa55word-never-shown"
TOKEN = "tok-0123456789-never-shown"
# Credential variables a pod may carry; each must come from a Secret, never from a literal value.
CREDENTIAL_VARS = (
    "RESTLAKE_PG_DSN",
    "RESTLAKE_LINEAGE_API_KEY",
    "RESTLAKE_S3_SECRET_KEY",
    "RESTLAKE_SECRET_",
    "RESTLAKE_SPARK_AUTH_SECRET",
)

SETTINGS = OperatorSettings(
    release="rl",
    kafka_bootstrap="rl-kafka-bootstrap:9092",
    lake_root="s3a://lake",
    lake_secret="restlake-lake",
    job_service_account="rl-restlake-jobs",
    lineage_transport="http",
    lineage_url="http://marquez.marquez:5000",
    lineage_api_key_secret="marquez-token",
    spark_auth_secret="rl-restlake-spark-auth",
)


def _source_with_every_secret() -> Any:
    doc = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text(encoding="utf-8"))
    doc["spec"]["request"]["auth"] = {
        "type": "oauth2ClientCredentials",
        "tokenUrl": "https://auth.example.com/oauth/token",
        "clientId": "restlake",
        "clientSecretRef": {"name": "api-creds", "key": "client-secret"},
    }
    doc["spec"].setdefault("quality", {})["bronze"] = {"schedule": "@hourly"}
    return parse_source(doc, "test:secrets")


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod = spec.get("template", {}).get("spec", {})
    return list(pod.get("containers", []))


def test_rendered_objects_reference_credentials_and_never_hold_them() -> None:
    source = _source_with_every_secret()
    owner = render.Owner(name=source.name, namespace="team-a", uid="uid-1")
    objects = render.render_all(source, owner, SETTINGS, paused=False, strimzi=True, prometheus=True)
    kinds = {o["kind"] for o in objects}
    assert {"ConfigMap", "Deployment", "CronJob"} <= kinds
    credential_env: dict[str, dict[str, Any]] = {}
    for obj in objects:
        for container in _containers(obj):
            for env in container.get("env", []):
                if env["name"].startswith(CREDENTIAL_VARS):
                    # A literal value would put the credential into the object, readable by anyone
                    # who may read Deployments: only a reference is allowed.
                    assert "value" not in env, (obj["kind"], env)
                    assert set(env["valueFrom"]) == {"secretKeyRef"}, (obj["kind"], env)
                    credential_env[f"{obj['metadata']['name']}:{env['name']}"] = env["valueFrom"]
            for ref in container.get("envFrom", []):
                assert set(ref) == {"secretRef"}, (obj["kind"], ref)
    refs = {v["secretKeyRef"]["name"] for v in credential_env.values()}
    assert refs == {"restlake-postgres", "marquez-token", "api-creds", "rl-restlake-spark-auth"}
    # The Spark cluster's secret reaches the driver only: batch pods run Spark in local mode.
    spark_auth = sorted(
        k for k, v in credential_env.items() if v["secretKeyRef"]["name"] == "rl-restlake-spark-auth"
    )
    assert spark_auth == [f"{source.name}-stream:RESTLAKE_SPARK_AUTH_SECRET"]
    # The API's OAuth2 client secret reaches the fetcher, and only the fetcher: the driver and the
    # quality job never call the REST API.
    api_creds = sorted(k for k, v in credential_env.items() if v["secretKeyRef"]["name"] == "api-creds")
    assert api_creds == [f"{source.name}-fetcher:RESTLAKE_SECRET_API_CREDS_CLIENT_SECRET"]
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"]
    text = json.dumps(config_map)
    # The ConfigMap names the Secret (the source's spec does) but holds no DSN or connection string.
    assert "postgresql://" not in text and "pg_dsn" not in text
    assert "RESTLAKE_LINEAGE_API_KEY" not in text


def test_settings_read_credentials_from_mounted_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    files = {
        "RESTLAKE_PG_DSN_FILE": f"postgresql://app:{PASSWORD}@db:5432/ingest\n",
        "RESTLAKE_S3_SECRET_KEY_FILE": f"{PASSWORD}\n",
        "RESTLAKE_LINEAGE_API_KEY_FILE": TOKEN,
        "RESTLAKE_QUALITY_PUSHGATEWAY_PASSWORD_FILE": TOKEN,
    }
    for variable, content in files.items():
        path = tmp_path / variable.lower()
        path.write_text(content, encoding="utf-8")
        monkeypatch.setenv(variable, str(path))
    with caplog.at_level(logging.DEBUG):
        pg, s3, lineage, quality = PostgresSettings(), S3Settings(), LineageSettings(), QualitySettings()
        logging.getLogger("test").info("settings %r %r %r %r", pg, s3, lineage, quality)
    # The trailing newline of `kubectl create secret --from-file` is not part of the value.
    assert pg.dsn.get_secret_value() == f"postgresql://app:{PASSWORD}@db:5432/ingest"
    assert s3.secret_key.get_secret_value() == PASSWORD
    assert lineage.api_key is not None and lineage.api_key.get_secret_value() == TOKEN
    assert quality.pushgateway_password is not None
    assert quality.pushgateway_password.get_secret_value() == TOKEN
    shown = caplog.text + repr(pg) + repr(s3) + repr(lineage) + repr(quality)
    assert PASSWORD not in shown and TOKEN not in shown
    # A variable set directly wins over its file (local overrides).
    monkeypatch.setenv("RESTLAKE_PG_DSN", "postgresql://local@127.0.0.1:5432/postgres")
    assert PostgresSettings().dsn.get_secret_value() == "postgresql://local@127.0.0.1:5432/postgres"


def test_an_unreadable_secret_file_names_the_variable_not_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTLAKE_PG_DSN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"RESTLAKE_PG_DSN_FILE=.*missing: cannot read the file"):
        PostgresSettings()


def test_lineage_events_carry_no_credential() -> None:
    rec = Recorder()
    targets = StreamTargets(
        source="orders",
        kafka_bootstrap="broker:9092",
        topic="restlake.orders",
        bronze_uri="s3a://lake/bronze/orders",
        quarantine_uri="s3a://lake/quarantine/orders",
        pg_dsn=f"postgresql://app:{PASSWORD}@db:5432/ingest?sslmode=require&password={PASSWORD}",
    )
    emit_stream_batch(LineageEmitter(rec), targets, BatchCounts(1, 0, 1))
    endpoint = http_endpoint(f"https://api.example.com/v1/orders?api_key={TOKEN}&page=1")
    table = postgres_table(f"postgresql://app:{PASSWORD}@db/ingest", "raw.api_events")
    text = json.dumps([rec.events, endpoint, table])
    assert rec.events and PASSWORD not in text and TOKEN not in text


def test_the_lake_secret_terraform_writes_is_what_the_jobs_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key of terraform/kind's lake Secret configures S3Settings (the jobs' s3a access)."""
    text = (Path(__file__).resolve().parents[2] / "terraform" / "kind" / "storage.tf").read_text()
    block = text[text.index('resource "kubernetes_secret" "lake"') :]
    start = block.index("data = {") + len("data = {")
    data = block[start : block.index("}", start)]
    keys = re.findall(r"^\s*(\w+)\s*=", data, re.M)
    assert keys, "no keys found in the lake Secret"
    for variable in [v for v in os.environ if v.startswith(("RESTLAKE_S3_", "AWS_"))]:
        monkeypatch.delenv(variable)
    values = {key: f"value-of-{key.lower()}" for key in keys}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    s3 = S3Settings()
    read = {
        s3.access_key.get_secret_value(),
        s3.secret_key.get_secret_value(),
        s3.endpoint,
        s3.region,
    }
    assert set(values.values()) <= read, (
        f"keys the jobs ignore: {[k for k, v in values.items() if v not in read]}"
    )
    # The restlake name still wins where both are set.
    monkeypatch.setenv("RESTLAKE_S3_ACCESS_KEY", "restlake-wins")
    assert S3Settings().access_key.get_secret_value() == "restlake-wins"


def test_component_settings_read_file_variables_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from restlake.fetcher.settings import FetcherSettings
    from restlake.operator.settings import OperatorSettings

    values = {
        "RESTLAKE_FETCHER_OPS_HOST": "0.0.0.0\n",
        "RESTLAKE_OPERATOR_LAKE_SECRET": "lake-credentials\n",
        # A list field's file holds JSON, as its variable does.
        "RESTLAKE_OPERATOR_NAMESPACES": '["team-a", "team-b"]\n',
    }
    for variable, content in values.items():
        path = tmp_path / variable.lower()
        path.write_text(content, encoding="utf-8")
        monkeypatch.setenv(f"{variable}_FILE", str(path))
    assert FetcherSettings().ops_host == "0.0.0.0"
    operator = OperatorSettings()
    assert (operator.lake_secret, operator.namespaces) == ("lake-credentials", ["team-a", "team-b"])
    (tmp_path / "restlake_operator_namespaces").write_text("team-a", encoding="utf-8")
    with pytest.raises(ConfigError, match="NAMESPACES_FILE: the file does not hold valid JSON"):
        OperatorSettings()
