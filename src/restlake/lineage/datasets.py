"""OpenLineage dataset identities and facets of restlake's systems, built without credentials.

Namespaces follow the OpenLineage naming spec (``kafka://``, ``postgres://``, ``file``/``s3://``),
so a Marquez graph joins a fetcher's output topic to the stream job's input by identity alone.
Every URL is reduced to scheme, host and port: user info and query strings may carry secrets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

PRODUCER = "https://github.com/restlake/restlake"
_SPEC = "https://openlineage.io/spec"
SCHEMA_FACET_URL = f"{_SPEC}/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
OUTPUT_STATS_URL = (
    f"{_SPEC}/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet"
)
COLUMN_LINEAGE_URL = f"{_SPEC}/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet"
DATASOURCE_FACET_URL = f"{_SPEC}/facets/1-0-1/DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet"

# Columns are fixed by the envelope (contracts/envelope.py) and the migrations in sql/.
BRONZE_FIELDS: tuple[tuple[str, str], ...] = (
    ("envelope_version", "int"),
    ("source", "string"),
    ("external_id", "string"),
    ("idempotency_key", "string"),
    ("content_hash", "string"),
    ("version", "string"),
    ("fetched_at", "timestamp"),
    ("request", "struct"),
    ("payload", "variant"),
)
QUARANTINE_FIELDS: tuple[tuple[str, str], ...] = (*BRONZE_FIELDS, ("reason", "string"))
POSTGRES_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "bigserial"),
    ("source", "text"),
    ("external_id", "text"),
    ("payload", "jsonb"),
    ("pulled_at", "timestamptz"),
    ("content_hash", "text"),
    ("version", "text"),
    ("fetched_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("idempotency_key", "text"),
)


def facet(schema_url: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": schema_url, **fields}


def schema_facet(fields: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return facet(SCHEMA_FACET_URL, fields=[{"name": n, "type": t} for n, t in fields])


def output_statistics(rows: int, size_bytes: int | None = None) -> dict[str, Any]:
    stats: dict[str, Any] = {"rowCount": rows}
    if size_bytes is not None:
        stats["size"] = size_bytes
    return facet(OUTPUT_STATS_URL, **stats)


def dataset(namespace: str, name: str, facets: dict[str, Any] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"namespace": namespace, "name": name}
    if facets:
        found["facets"] = facets
    return found


def _host_port(netloc_url: str, default_port: int | None) -> str:
    parts = urlsplit(netloc_url)
    host = parts.hostname or "localhost"
    port = parts.port or default_port
    return f"{host}:{port}" if port else host


def http_endpoint(url: str) -> dict[str, Any]:
    """The REST endpoint: namespace ``http://host:port``, name the path (query dropped: it may hold keys)."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    namespace = f"{parts.scheme}://{_host_port(url, default)}"
    return dataset(namespace, parts.path or "/")


def kafka_topic(bootstrap: str, topic: str, fields: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """A topic: namespace ``kafka://<first bootstrap host:port>`` as the naming spec says."""
    first = bootstrap.split(",", maxsplit=1)[0].strip()
    facets = {"schema": schema_facet(fields)} if fields else None
    return dataset(f"kafka://{_host_port('//' + first, 9092)}", topic, facets)


def delta_table(uri: str, fields: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """A Delta table by location: ``file`` + absolute path, or ``s3://bucket`` + key for s3a URIs."""
    parts = urlsplit(uri)
    if parts.scheme in ("s3", "s3a", "s3n"):
        # The bucket only: an old-style ``s3a://key:secret@bucket`` must not name the dataset.
        namespace, name = f"s3://{parts.netloc.rpartition('@')[2]}", parts.path.lstrip("/")
    else:
        namespace, name = "file", parts.path if parts.scheme == "file" else uri
    facets = {"schema": schema_facet(fields)} if fields else None
    return dataset(namespace, name, facets)


# libpq's key=value connection string: ``host=db port=5432 password='a b' dbname=lake``.
_CONNINFO_PAIR = re.compile(r"([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")


def _conninfo(dsn: str) -> dict[str, str]:
    """The keys of a key=value DSN, unquoted (``\\'`` and ``\\\\`` escapes as libpq reads them)."""
    found: dict[str, str] = {}
    for key, raw in _CONNINFO_PAIR.findall(dsn):
        found[key.lower()] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith("'") else raw
    return found


def postgres_table(dsn: str, table: str, fields: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """A Postgres table: namespace ``postgres://host:port``, name ``db.schema.table``; no credentials.

    ``dsn`` is a URL (``postgresql://user:pw@host:port/db``) or a libpq key=value string; only host,
    port and database are read from either.
    """
    qualified = table if table.count(".") == 1 else f"public.{table}"
    facets = {"schema": schema_facet(fields)} if fields else None
    if "://" in dsn:
        database = urlsplit(dsn).path.lstrip("/") or "postgres"
        host_port = _host_port(dsn, 5432)
    else:
        keys = _conninfo(dsn)
        database = keys.get("dbname") or "postgres"
        # A comma-separated host list (libpq failover): the first one names the server.
        host = (keys.get("host") or keys.get("hostaddr") or "localhost").split(",")[0]
        port = (keys.get("port") or "5432").split(",")[0]
        host_port = f"{host}:{port}"
    return dataset(f"postgres://{host_port}", f"{database}.{qualified}", facets)


# (output field, input field, subtype): DIRECT transformations, as the ColumnLineageDatasetFacet names them.
FieldMapping = tuple[str, str, str]


def column_lineage(source: dict[str, Any], mappings: Sequence[FieldMapping]) -> dict[str, Any]:
    """The columnLineage facet of an output whose fields each come from one field of ``source``.

    ``subtype`` is IDENTITY for a copy and TRANSFORMATION for a converted value (a VARIANT cast to
    jsonb, a typed column extracted from the payload).
    """
    fields = {
        out: {
            "inputFields": [
                {
                    "namespace": source["namespace"],
                    "name": source["name"],
                    "field": inp,
                    "transformations": [{"type": "DIRECT", "subtype": subtype, "masking": False}],
                }
            ]
        }
        for out, inp, subtype in mappings
    }
    return facet(COLUMN_LINEAGE_URL, fields=fields)
