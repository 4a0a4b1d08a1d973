"""Spark settings that turn on OpenLineage's own Spark listener, from restlake's lineage settings.

restlake's events describe a micro-batch as the pipeline sees it (topic in; bronze, quarantine and
Postgres out). The listener adds what Spark itself sees: one run per Spark SQL execution, with the
Delta tables by location and the Kafka topic read by the stream. Both use the OpenLineage naming
spec (``file`` + absolute path, ``kafka://host:port`` + topic), so a backend joins their datasets.

What it does not give, with foreachBatch: the topic is the input of the streaming plan, which has
no output, and the Delta appends inside the batch function are separate runs whose input is the
bronze table read by the key dedupe, not the topic. The Postgres merge (psycopg on the driver) is
invisible to it. That is why restlake's own events stay the source of the topic -> tables graph.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from restlake.lineage.settings import LineageSettings

LISTENER_CLASS = "io.openlineage.spark.agent.OpenLineageSparkListener"
# The listener looks for connector extensions by reflecting into java.security.SecureClassLoader;
# on Java 17 without this it logs a stack trace at start and a warning on every SQL execution.
DRIVER_JAVA_OPTION = "--add-opens=java.base/java.security=ALL-UNNAMED"
# Spark's default redaction pattern plus api keys: the listener's key is a Spark setting, and the
# default pattern (secret, password, token, access key) would show it in the UI and event log.
REDACTION_REGEX = "(?i)secret|password|token|access[.]?key|api[._]?key"
# Loggers of the listener's transports: the console one logs events at INFO, under Spark's WARN.
CONSOLE_LOGGER = "io.openlineage.client.transports.ConsoleTransport"


def listener_file(settings: LineageSettings) -> Path:
    """The listener's own events file, next to restlake's: two writers never share one file."""
    path = settings.file_path
    return path.with_name(f"{path.stem}.spark{path.suffix or '.jsonl'}").absolute()


def _http_target(url: str, endpoint: str) -> tuple[str, str]:
    """(base URL, endpoint path): a path prefix in ``url`` moves into the endpoint, as the listener
    refuses a URL with a path next to an endpoint; restlake joins the two the same way."""
    parts = urlsplit(url)
    path = "/".join(p for p in (parts.path.strip("/"), endpoint.strip("/")) if p)
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")), f"/{path}"


def listener_enabled(settings: LineageSettings) -> bool:
    """Whether a Spark session runs the listener: asked for, and a transport to send to."""
    return settings.spark_listener and settings.transport != "none"


def spark_listener_conf(settings: LineageSettings, driver_java_options: str = "") -> dict[str, str]:
    """``spark.*`` settings for the listener, or none when it is off or the transport is ``none``.

    ``driver_java_options`` is the session's current ``spark.driver.extraJavaOptions``; the
    returned value keeps it and adds the listener's module opening.
    """
    if not listener_enabled(settings):
        return {}
    java_options = " ".join(o for o in (driver_java_options.strip(), DRIVER_JAVA_OPTION) if o)
    conf = {
        "spark.extraListeners": LISTENER_CLASS,
        "spark.openlineage.namespace": settings.namespace,
        "spark.openlineage.transport.type": settings.transport,
        "spark.driver.extraJavaOptions": java_options,
    }
    if settings.transport == "file":
        conf["spark.openlineage.transport.location"] = str(listener_file(settings))
    elif settings.transport == "http":
        url, endpoint = _http_target(settings.url, settings.endpoint)
        conf["spark.openlineage.transport.url"] = url
        conf["spark.openlineage.transport.endpoint"] = endpoint
        conf["spark.openlineage.transport.timeoutInMillis"] = str(int(settings.timeout * 1000))
        if settings.api_key is not None:
            conf["spark.openlineage.transport.auth.type"] = "api_key"
            conf["spark.openlineage.transport.auth.apiKey"] = settings.api_key.get_secret_value()
            conf["spark.redaction.regex"] = REDACTION_REGEX
    return conf


def describe(conf: dict[str, str]) -> str:
    """The listener's settings for a log line, with the api key left out."""
    shown = sorted(
        (k, v) for k, v in conf.items() if k.startswith("spark.openlineage.") and "apikey" not in k.lower()
    )
    return " ".join(f"{k}={v}" for k, v in shown)
