"""The whole pipeline as pods on a kind cluster: install, ingest, kill, heal, upgrade, delete.

Run by `make e2e`, which builds the cluster and the images first (tests/e2e/run.py). Each test is
one step of a single story and relies on the ones before it (a failed step skips the rest):

1. Kafka (KRaft), Postgres, MinIO, the demo API and Prometheus come up in `restlake-infra`;
2. `helm install` of the chart (from a copy whose CRD is one field older, to upgrade it later)
   and `helm test`;
3. two IngestionSources reach Ready=True, `kubectl get isrc` shows Events, Lag and Last Fetch;
4. Postgres and bronze (Delta on MinIO) hold exactly the API's records and versions;
5. the fetcher pod, then the driver pod, are deleted while new records arrive: counts stay exact;
6. an edited and a deleted child Deployment are restored within one timer period;
7. pause and resume; a fetcher-only spec change rolls the fetcher only;
8. `helm upgrade` to two workers and to the current CRD: the new field is served, nothing lost;
9. Prometheus scrapes fetchers and drivers, the alert rules evaluate and none fires;
10. a deleted source takes its topics with it; one deleted while the operator is down does not
    hang, and its topics go when the operator is back;
11. `helm uninstall`, then the namespace: nothing hangs, nothing is left.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import INFRA, RELEASE, RELEASE_NS, REPO, Figures
from kube import Kube, eventually

from restlake.demoapi.dataset import Dataset, DatasetConfig

pytestmark = [pytest.mark.e2e, pytest.mark.steps]

SERVICES = Path(__file__).resolve().parent / "services"
VALUES = Path(__file__).resolve().parent / "values.yaml"
CHART = REPO / "charts" / "restlake"
DEMO_API = f"http://demo-api.{INFRA}.svc:8085"
SOURCES = ("demo-link", "demo-cursor")
# The demo API's dataset (tests/e2e/services/demo-api.yaml passes the same numbers): the test
# recomputes every record the API serves from these, at the tick the API reports.
DATASET = DatasetConfig(seed=7, initial_records=600, growth_per_tick=40, update_fraction=0.05)
PG_DSN = f"postgresql://restlake:restlake-e2e@postgres.{INFRA}.svc:5432/restlake"
S3 = {
    "RESTLAKE_S3_ENDPOINT": f"http://minio.{INFRA}.svc:9000",
    "RESTLAKE_S3_ACCESS_KEY": "restlake",
    "RESTLAKE_S3_SECRET_KEY": "restlake-e2e-secret",
}
TIMER_PERIOD_S = 10  # RESTLAKE_OPERATOR_STATUS_INTERVAL in tests/e2e/values.yaml


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def source_document(name: str) -> dict[str, Any]:
    """An example source pointed at the in-cluster demo API, sized for a 2-core node."""
    doc = yaml.safe_load((REPO / "examples" / f"{name}.yaml").read_text())
    path = doc["spec"]["request"]["url"].split("/v1/", 1)[1]
    doc["spec"]["request"]["url"] = f"{DEMO_API}/v1/{path}"
    doc["spec"]["poll"] = {"interval": "5s"}
    doc["spec"]["resources"] = {
        "fetcher": {"requests": {"cpu": "20m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}},
        "driver": {"requests": {"cpu": "100m", "memory": "768Mi"}, "limits": {"memory": "1536Mi"}},
    }
    return doc


def isrc(kube: Kube, name: str) -> dict[str, Any]:
    return kube.json("get", "isrc", name, "-n", RELEASE_NS)


def condition(source: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (source.get("status") or {}).get("conditions", []) if c["type"] == kind), {})


def ready(kube: Kube, name: str) -> bool:
    return condition(isrc(kube, name), "Ready").get("status") == "True"


def api_state(kube: Kube) -> dict[str, Any]:
    return json.loads(_demo_api(kube, "GET", "/_admin/state"))


def advance(kube: Kube, ticks: int) -> dict[str, Any]:
    return json.loads(_demo_api(kube, "POST", f"/_admin/tick?n={ticks}"))


def _demo_api(kube: Kube, method: str, path: str) -> str:
    script = (
        "import sys, urllib.request\n"
        f"r = urllib.request.Request('http://127.0.0.1:8085{path}', method='{method}')\n"
        "sys.stdout.write(urllib.request.urlopen(r, timeout=10).read().decode())\n"
    )
    return kube.exec(INFRA, "deploy/demo-api", "python3", "-c", script)


def expected(tick: int) -> dict[str, str]:
    """``{external_id: updated_at}`` of every record the API serves at ``tick``."""
    dataset = Dataset(DATASET)
    dataset.advance(tick)
    return {str(r["id"]): r["updated_at"] for r in dataset.snapshot()}


def psql(kube: Kube, sql: str) -> list[list[str]]:
    local = PG_DSN.replace(f"postgres.{INFRA}.svc", "127.0.0.1")
    out = kube.exec(INFRA, "deploy/postgres", "psql", "-At", "-F", "\t", "-d", local, "-c", sql)
    return [line.split("\t") for line in out.splitlines() if line]


def postgres_versions(kube: Kube, source: str) -> dict[str, str]:
    rows = psql(
        kube, f"SELECT external_id, payload->>'updated_at' FROM raw.api_events WHERE source = '{source}'"
    )
    return dict((r[0], r[1]) for r in rows)


BRONZE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pyspark.sql import functions as F
    from restlake.jobs.spark.session import build_spark
    from restlake.settings import S3Settings
    spark = build_spark("e2e-bronze", jars=[], master="local[1]", extra_conf=S3Settings().spark_conf())
    spark.sparkContext.setLogLevel("ERROR")
    out = {}
    for source in sys.argv[1:]:
        df = spark.read.format("delta").load(f"s3a://restlake/lake/bronze/{source}")
        latest = df.groupBy("external_id").agg(F.max("version").alias("v")).collect()
        out[source] = {
            "rows": df.count(),
            "distinct": df.select("external_id", "version").distinct().count(),
            "latest": {r["external_id"]: r["v"] for r in latest},
        }
    print("BRONZE " + json.dumps(out))
    """
)


def spark_script_pod(container: str, script: str, *args: str, env_from: str | None = None) -> dict[str, Any]:
    """The spec of a one-off pod running ``python3 -c script args…`` in the restlake Spark image."""
    spec: dict[str, Any] = {
        "name": container,
        "image": "restlake/spark:0.1.0",
        "imagePullPolicy": "Never",
        "command": ["python3", "-c", script, *args],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": {"requests": {"cpu": "50m", "memory": "512Mi"}, "limits": {"memory": "1536Mi"}},
    }
    if env_from is not None:
        spec["envFrom"] = [{"secretRef": {"name": env_from}}]
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
        "containers": [spec],
    }


def bronze(kube: Kube, sources: tuple[str, ...]) -> dict[str, Any]:
    """Row counts and the newest version per id of each bronze table, read by a Spark Job in the cluster."""
    name = f"bronze-check-{int(time.time())}"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "spec": spark_script_pod("check", BRONZE_SCRIPT, *sources, env_from="restlake-lake")
            },
        },
    }
    kube.apply(RELEASE_NS, yaml.safe_dump(job))
    kube.kubectl(
        "wait", "-n", RELEASE_NS, f"job/{name}", "--for=condition=Complete", "--timeout=600s", timeout=660
    )
    logs = kube.kubectl("logs", "-n", RELEASE_NS, f"job/{name}").stdout
    line = next(line for line in logs.splitlines() if line.startswith("BRONZE "))
    return json.loads(line.removeprefix("BRONZE "))


def changed_versions(before: int, after: int) -> int:
    """Record versions the API serves at tick ``after`` that it did not at ``before`` (per source)."""
    old = expected(before)
    return sum(1 for key, version in expected(after).items() if old.get(key) != version)


def caught_up(kube: Kube, tick: int) -> dict[str, dict[str, str]] | None:
    want = expected(tick)
    found = {source: postgres_versions(kube, source) for source in SOURCES}
    return found if all(f == want for f in found.values()) else None


def assert_exact(kube: Kube, tick: int, figures: Figures, label: str) -> None:
    """Postgres and bronze hold exactly the API's records at ``tick``, newest version each, no duplicate."""
    want = expected(tick)
    started = time.monotonic()
    eventually(lambda: caught_up(kube, tick), timeout=900, interval=5, what=f"Postgres to hold tick {tick}")
    tables = bronze(kube, SOURCES)
    counts: dict[str, Any] = {"api_records": len(want)}
    for source in SOURCES:
        table = tables[source]
        assert table["rows"] == table["distinct"], f"{source}: bronze holds a record version twice"
        assert table["latest"] == want, f"{source}: bronze's newest versions differ from the API's"
        counts[source] = {"postgres": len(postgres_versions(kube, source)), "bronze_rows": table["rows"]}
    counts["seconds_to_catch_up"] = round(time.monotonic() - started, 1)
    figures.record(f"counts_{label}", counts)


def topics(kube: Kube) -> set[str]:
    script = (
        "from confluent_kafka.admin import AdminClient\n"
        f"a = AdminClient({{'bootstrap.servers': 'kafka.{INFRA}.svc:9092'}})\n"
        "print('\\n'.join(a.list_topics(timeout=20).topics))\n"
    )
    return set(kube.exec(INFRA, "deploy/demo-api", "python3", "-c", script).split())


# ---------------------------------------------------------------------------------------------
# the story
# ---------------------------------------------------------------------------------------------


def test_infrastructure_services_come_up(kube: Kube) -> None:
    kube.kubectl("create", "namespace", INFRA, check=False)
    rules = CHART / "files" / "restlake-rules.yaml"
    kube.create(INFRA, "configmap", "prometheus-rules", f"--from-file=restlake-rules.yaml={rules}")
    for manifest in sorted(SERVICES.glob("*.yaml")):
        kube.apply(INFRA, manifest.read_text())
    for name in ("kafka", "postgres", "minio", "demo-api", "prometheus"):
        kube.rollout(INFRA, f"deploy/{name}")
    kube.kubectl("wait", "-n", INFRA, "job/minio-bucket", "--for=condition=Complete", "--timeout=300s")
    state = api_state(kube)
    # The API serves the dataset this test recomputes (tick 0 on a fresh cluster, later on a kept one).
    assert state["total_records"] == len(expected(state["tick"]))


def older_chart(tmp: Path) -> Path:
    """The chart with an IngestionSource CRD that lacks spec.resources.executors: the release
    before this one, so step 8 can check that `helm upgrade` upgrades the CRD."""
    chart = tmp / "restlake"
    shutil.copytree(CHART, chart)
    path = chart / "files" / "crds" / "ingestionsources.restlake.io.yaml"
    crd = yaml.safe_load(path.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec["properties"]["resources"]["properties"]["executors"]
    path.write_text(yaml.safe_dump(crd, sort_keys=False))
    return chart


def test_helm_install_and_helm_test(
    kube: Kube, tmp_path_factory: pytest.TempPathFactory, figures: Figures
) -> None:
    kube.kubectl("create", "namespace", RELEASE_NS, check=False)
    kube.create(
        RELEASE_NS, "secret", "generic", "restlake-lake", *[f"--from-literal={k}={v}" for k, v in S3.items()]
    )
    kube.create(RELEASE_NS, "secret", "generic", "restlake-postgres", f"--from-literal=dsn={PG_DSN}")
    chart = older_chart(tmp_path_factory.mktemp("chart"))
    started = time.monotonic()
    kube.helm(
        "upgrade",
        "--install",
        RELEASE,
        str(chart),
        "-n",
        RELEASE_NS,
        "-f",
        str(VALUES),
        "--wait",
        "--timeout",
        "10m",
    )
    figures.record("helm_install_seconds", round(time.monotonic() - started, 1))
    out = kube.helm("test", RELEASE, "-n", RELEASE_NS, "--logs", "--timeout", "5m").stdout
    assert "Phase:          Succeeded" in out or "Succeeded" in out, out
    assert "serves ['Backfill', 'IngestionSource']" in out


def test_two_sources_reach_ready_with_figures(kube: Kube, figures: Figures) -> None:
    started = time.monotonic()
    for name in SOURCES:
        kube.apply(RELEASE_NS, yaml.safe_dump(source_document(name)))
    for name in SOURCES:
        eventually(lambda name=name: ready(kube, name), timeout=900, interval=5, what=f"{name} Ready=True")
    figures.record("apply_to_ready_seconds", round(time.monotonic() - started, 1))
    # New records, so that the fetchers running now have something to count (a rerun against a
    # kept cluster starts them with nothing new to fetch).
    advance(kube, 1)

    def columns_filled() -> list[list[str]] | None:
        rows = [line.split() for line in kube.kubectl("get", "isrc", "-n", RELEASE_NS).stdout.splitlines()]
        header, body = rows[0], rows[1:]
        assert header[:6] == ["NAME", "PHASE", "READY", "EVENTS", "LAG", "LAST"], header
        # NAME PHASE READY EVENTS LAG LAST-FETCH AGE: every column has a value.
        # Failing with the table, so that a timeout says which column stayed empty.
        assert len(body) == 2 and all(len(r) == 7 and r[2] == "True" and int(r[3]) > 0 for r in body), rows
        return body

    # Lag comes from the driver's first completed micro-batch, which on this one-node cluster (a
    # 1-core, 512 MiB executor per source, the lake on MinIO) can take minutes after Ready.
    body = eventually(
        columns_filled, timeout=600, interval=5, what="Events, Lag and Last Fetch in kubectl get isrc"
    )
    figures.record("kubectl_get_isrc", [" ".join(r) for r in body])
    for name in SOURCES:
        status = isrc(kube, name)["status"]
        assert status["eventsProduced"] > 0
        assert status["consumerLag"] >= 0 and status["lastFetchTime"].endswith("Z")


def test_postgres_and_bronze_hold_exactly_the_apis_records(kube: Kube, figures: Figures) -> None:
    assert_exact(kube, api_state(kube)["tick"], figures, "initial")


def master_state(kube: Kube) -> dict[str, Any]:
    """The standalone master's own view (its web UI's /json): workers, active and completed apps."""
    (master,) = kube.pods(RELEASE_NS, "app.kubernetes.io/component=spark-master")
    script = (
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/json/').read().decode())"
    )
    return dict(json.loads(kube.exec(RELEASE_NS, master["metadata"]["name"], "python3", "-c", script)))


def test_each_source_has_its_own_executor(kube: Kube) -> None:
    apps = {a["name"]: a for a in master_state(kube)["activeapps"]}
    for source in SOURCES:
        app = apps[f"restlake-stream-{source}"]
        assert app["cores"] == 1, app  # capped by spark.cores.max, so the other source fits too


# A Spark application that is not restlake's: it asks the master for executors and, were it
# admitted, would run its code on the workers beside the sources' executors.
INTRUDER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pyspark.sql import SparkSession
    builder = SparkSession.builder.master(sys.argv[1]).appName(sys.argv[2])
    for pair in sys.argv[3:]:
        key, _, value = pair.partition("=")
        builder = builder.config(key, value)
    print("INTRUDER RAN", builder.getOrCreate().range(10).count(), flush=True)
    """
)
# What the intruder's own log says when the master's authentication turns it away: without
# spark.authenticate the master answers its first message with this...
NO_SASL = "Expected SaslMessage"
# ... and with a wrong secret the authentication handshake fails before any message is sent.
BAD_SECRET = "Exception while bootstrapping client"


def test_the_spark_cluster_refuses_an_application_without_its_secret(kube: Kube) -> None:
    (service,) = kube.json("get", "svc", "-n", RELEASE_NS, "-l", "app.kubernetes.io/component=spark-master")[
        "items"
    ]
    rpc = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "rpc")
    url = f"spark://{service['metadata']['name']}.{RELEASE_NS}.svc:{rpc}"
    intruders = {
        "intruder-no-secret": ([], NO_SASL),
        "intruder-wrong-secret": (
            ["spark.authenticate=true", "spark.authenticate.secret=guessed"],
            BAD_SECRET,
        ),
    }
    for name, (conf, _) in intruders.items():
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": spark_script_pod("intruder", INTRUDER_SCRIPT, url, name, "spark.ui.enabled=false", *conf),
        }
        kube.apply(RELEASE_NS, yaml.safe_dump(pod))
    try:
        for name, (_, refusal) in intruders.items():

            def refused(name: str = name, refusal: str = refusal) -> bool:
                logs = kube.kubectl("logs", "-n", RELEASE_NS, name, check=False).stdout
                assert "INTRUDER RAN" not in logs, f"{name} ran on the cluster:\n{logs[-2000:]}"
                return refusal in logs

            # The first registration attempt comes seconds after the JVM starts; Spark itself gives
            # up only after three 20-second attempts, which the test need not wait for.
            eventually(refused, timeout=300, interval=3, what=f"{name} to be refused by the master")
        state = master_state(kube)
        registered = {app["name"] for app in [*state["activeapps"], *state["completedapps"]]}
        assert not registered & set(intruders), f"the master registered {registered & set(intruders)}"
        # The sources' drivers, which hold the secret, are registered with the same master.
        assert {f"restlake-stream-{source}" for source in SOURCES} <= registered
    finally:
        for name in intruders:
            kube.kubectl("delete", "pod", name, "-n", RELEASE_NS, "--wait=false", check=False)


def test_killed_fetcher_and_driver_lose_and_double_nothing(kube: Kube, figures: Figures) -> None:
    before = api_state(kube)["tick"]
    started = time.monotonic()
    advance(kube, 10)  # 400 new records and revisions of 5% of the rest, per tick
    for name in SOURCES:
        kube.kubectl(
            "delete",
            "pod",
            "-n",
            RELEASE_NS,
            "-l",
            f"app.kubernetes.io/instance={name},app.kubernetes.io/component=fetcher",
            "--wait=false",
        )
    time.sleep(3)
    advance(kube, 10)
    for name in SOURCES:
        kube.kubectl(
            "delete",
            "pod",
            "-n",
            RELEASE_NS,
            "-l",
            f"app.kubernetes.io/instance={name},app.kubernetes.io/component=stream",
            "--wait=false",
        )
    tick = api_state(kube)["tick"]
    assert tick == before + 20
    assert_exact(kube, tick, figures, "after_fetcher_and_driver_kill")
    figures.record(
        "kills",
        {
            "new_record_versions_per_source": changed_versions(before, tick),
            "seconds_until_exact_again": round(time.monotonic() - started, 1),
        },
    )
    for name in SOURCES:
        eventually(lambda name=name: ready(kube, name), timeout=600, interval=5, what=f"{name} Ready again")


def test_throughput_of_the_in_cluster_pipeline(kube: Kube, figures: Figures) -> None:
    """A burst of new records, end to end (API → fetcher → Kafka → Spark → bronze + Postgres)."""
    before = api_state(kube)["tick"]
    advance(kube, 25)  # 1,000 new records and revisions of 5% of the rest per tick
    tick = before + 25
    new_versions = changed_versions(before, tick)
    started = time.monotonic()
    eventually(lambda: caught_up(kube, tick), timeout=1200, interval=2, what=f"Postgres to hold tick {tick}")
    seconds = time.monotonic() - started
    figures.record(
        "throughput",
        {
            "new_record_versions_per_source": new_versions,
            "sources": 2,
            "seconds": round(seconds, 1),
            "record_versions_per_second": round(2 * new_versions / seconds, 1),
        },
    )


def _deployment(kube: Kube, name: str) -> dict[str, Any]:
    return kube.json("get", "deployment", name, "-n", RELEASE_NS)


def test_drifted_children_are_restored_within_one_timer_period(kube: Kube, figures: Figures) -> None:
    image = _deployment(kube, "demo-link-stream")["spec"]["template"]["spec"]["containers"][0]["image"]
    kube.kubectl("set", "image", "deployment/demo-link-stream", "driver=someone/else:1", "-n", RELEASE_NS)
    kube.kubectl("delete", "deployment", "demo-cursor-fetcher", "-n", RELEASE_NS, "--wait=true")
    started = time.monotonic()

    def restored() -> bool:
        edited = _deployment(kube, "demo-link-stream")["spec"]["template"]["spec"]["containers"][0]["image"]
        return edited == image and kube.exists("deployment", "demo-cursor-fetcher", RELEASE_NS)

    eventually(restored, timeout=TIMER_PERIOD_S + 20, interval=1, what="both Deployments restored")
    figures.record("drift_restored_seconds", round(time.monotonic() - started, 1))
    for name in SOURCES:
        eventually(lambda name=name: ready(kube, name), timeout=600, interval=5, what=f"{name} Ready again")


def test_pause_and_resume(kube: Kube) -> None:
    kube.kubectl("annotate", "isrc", "demo-cursor", "-n", RELEASE_NS, "restlake.io/pause-reconciliation=true")
    eventually(lambda: isrc(kube, "demo-cursor")["status"]["phase"] == "Paused", timeout=120, what="Paused")
    eventually(
        lambda: not kube.pods(RELEASE_NS, "app.kubernetes.io/instance=demo-cursor"),
        timeout=300,
        what="demo-cursor's pods gone",
    )
    # Paused means no fetch: records arriving now wait in the API.
    tick = advance(kube, 2)["tick"]
    kube.kubectl("annotate", "isrc", "demo-cursor", "-n", RELEASE_NS, "restlake.io/pause-reconciliation-")
    eventually(
        lambda: ready(kube, "demo-cursor"), timeout=900, interval=5, what="demo-cursor Ready after resume"
    )
    eventually(
        lambda: caught_up(kube, tick), timeout=900, interval=5, what="both sources caught up after resume"
    )


def test_a_fetcher_only_change_rolls_the_fetcher_only(kube: Kube) -> None:
    def pod_uids(component: str) -> set[str]:
        return {
            p["metadata"]["uid"]
            for p in kube.pods(
                RELEASE_NS, f"app.kubernetes.io/instance=demo-link,app.kubernetes.io/component={component}"
            )
        }

    drivers, fetchers = pod_uids("stream"), pod_uids("fetcher")
    kube.kubectl(
        "patch",
        "isrc",
        "demo-link",
        "-n",
        RELEASE_NS,
        "--type=merge",
        "-p",
        '{"spec":{"poll":{"interval":"6s"}}}',
    )
    eventually(
        lambda: pod_uids("fetcher") and not (pod_uids("fetcher") & fetchers),
        timeout=300,
        what="a new fetcher pod",
    )
    kube.rollout(RELEASE_NS, "deploy/demo-link-fetcher")
    assert pod_uids("stream") == drivers, "the driver restarted for a fetcher-only change"
    eventually(lambda: ready(kube, "demo-link"), timeout=600, interval=5, what="demo-link Ready")


def test_helm_upgrade_to_two_workers_and_the_current_crd(
    kube: Kube, figures: Figures, tmp_path_factory: pytest.TempPathFactory
) -> None:
    crd = "crd/ingestionsources.restlake.io"
    schema = kube.json("get", crd)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    if "executors" in schema["properties"]["spec"]["properties"]["resources"]["properties"]:
        # A rerun against a kept cluster (KEEP=1): go back to the older release first.
        chart = older_chart(tmp_path_factory.mktemp("chart"))
        kube.helm(
            "upgrade", RELEASE, str(chart), "-n", RELEASE_NS, "-f", str(VALUES), "--wait", "--timeout", "10m"
        )
        schema = kube.json("get", crd)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "executors" not in schema["properties"]["spec"]["properties"]["resources"]["properties"]
    kube.helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        RELEASE_NS,
        "-f",
        str(VALUES),
        "--set",
        "spark.worker.replicas=2",
        "--set",
        "spark.worker.cores=1",
        "--wait",
        "--timeout",
        "10m",
    )
    schema = kube.json("get", crd)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "executors" in schema["properties"]["spec"]["properties"]["resources"]["properties"]
    kube.rollout(RELEASE_NS, "deploy/restlake-spark-worker")
    assert len(kube.pods(RELEASE_NS, "app.kubernetes.io/component=spark-worker")) == 2
    # The new field is stored (an old CRD would prune it) and reaches the driver's Spark conf.
    patch = {"spec": {"resources": {"executors": {"cores": 1, "memory": "640m"}}}}
    kube.kubectl("patch", "isrc", "demo-cursor", "-n", RELEASE_NS, "--type=merge", "-p", json.dumps(patch))
    assert isrc(kube, "demo-cursor")["spec"]["resources"]["executors"] == {"cores": 1, "memory": "640m"}
    eventually(
        lambda: (
            "spark.executor.memory=640m"
            in _deployment(kube, "demo-cursor-stream")["spec"]["template"]["spec"]["containers"][0]["args"]
        ),
        timeout=120,
        what="the driver's args to carry the new executor memory",
    )
    for name in SOURCES:
        eventually(
            lambda name=name: ready(kube, name), timeout=900, interval=5, what=f"{name} Ready after upgrade"
        )
    tick = advance(kube, 3)["tick"]
    assert_exact(kube, tick, figures, "after_upgrade")


PROMETHEUS = f"http://prometheus.{INFRA}.svc:9090"


def _prometheus(kube: Kube, path: str) -> Any:
    """GET the Prometheus HTTP API from inside the cluster (the demo API pod has Python)."""
    script = (
        "import urllib.request\n"
        f"print(urllib.request.urlopen('{PROMETHEUS}{path}', timeout=10).read().decode())\n"
    )
    return json.loads(kube.exec(INFRA, "deploy/demo-api", "python3", "-c", script))


def test_prometheus_scrapes_fetchers_and_drivers_and_no_alert_fires(kube: Kube, figures: Figures) -> None:
    def targets_up() -> dict[str, int] | None:
        active = _prometheus(kube, "/api/v1/targets?state=active")["data"]["activeTargets"]
        up: dict[str, int] = {}
        for target in active:
            component = target["labels"].get("component", "")
            if target["health"] == "up":
                up[component] = up.get(component, 0) + 1
        return up if up.get("fetcher", 0) >= 2 and up.get("stream", 0) >= 2 else None

    up = eventually(targets_up, timeout=300, interval=5, what="two fetcher and two driver targets up")
    figures.record("prometheus_targets_up", up)

    def evaluated() -> list[dict[str, Any]] | None:
        groups = _prometheus(kube, "/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None

    rules = eventually(evaluated, timeout=180, interval=5, what="every alert rule evaluated")
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    alerts = _prometheus(kube, "/api/v1/alerts")["data"]["alerts"]
    assert [a for a in alerts if a["state"] in ("pending", "firing")] == []
    # The driver's series exist, so RestlakeStreamDown's `unless` has something to match.
    batches = _prometheus(kube, "/api/v1/query?query=sum%20by%20(source)%20(restlake_stream_batches_total)")
    assert {r["metric"]["source"] for r in batches["data"]["result"]} == set(SOURCES)


def test_a_deleted_source_takes_its_objects_and_topics(kube: Kube) -> None:
    assert {"restlake.demo-link", "restlake.demo-link.dlq"} <= topics(kube)
    kube.kubectl("delete", "isrc", "demo-link", "-n", RELEASE_NS, "--timeout=60s")
    eventually(
        lambda: (
            not kube.kubectl(
                "get", "all,cm,sa", "-n", RELEASE_NS, "-l", "restlake.io/source=demo-link", "-o", "name"
            ).stdout.strip()
        ),
        timeout=120,
        what="demo-link's objects garbage-collected",
    )
    eventually(
        lambda: not {"restlake.demo-link", "restlake.demo-link.dlq"} & topics(kube),
        timeout=120,
        what="topics deleted",
    )


def test_deleting_while_the_operator_is_down_does_not_hang(kube: Kube) -> None:
    operator = "deploy/restlake-operator"
    kube.kubectl("scale", operator, "-n", RELEASE_NS, "--replicas=0")
    eventually(
        lambda: not kube.pods(RELEASE_NS, "app.kubernetes.io/component=operator"),
        timeout=120,
        what="operator gone",
    )
    started = time.monotonic()
    kube.kubectl("delete", "isrc", "demo-cursor", "-n", RELEASE_NS, "--timeout=30s")
    assert time.monotonic() - started < 30
    assert {"restlake.demo-cursor", "restlake.demo-cursor.dlq"} <= topics(kube)  # nobody to delete them yet
    kube.kubectl("scale", operator, "-n", RELEASE_NS, "--replicas=1")
    eventually(
        lambda: not {"restlake.demo-cursor", "restlake.demo-cursor.dlq"} & topics(kube),
        timeout=300,
        what="topics swept at start",
    )


def test_uninstall_then_namespace_delete_leaves_nothing(kube: Kube) -> None:
    kube.helm("uninstall", RELEASE, "-n", RELEASE_NS, "--wait", "--timeout", "5m")
    kube.kubectl("delete", "namespace", RELEASE_NS, "--timeout=180s", timeout=240)
    assert not kube.exists("namespace", RELEASE_NS, "")
    left = kube.kubectl("get", "isrc,backfills", "-A", "-o", "name", check=False).stdout.strip()
    assert left == ""
    assert not {t for t in topics(kube) if t.startswith("restlake.")}
    # The CRDs stay (helm.sh/resource-policy: keep): deleting them would delete every source.
    assert kube.exists("crd", "ingestionsources.restlake.io", "")
