"""The spec corpus: bad IngestionSource files, each with the field it must be refused for.

One table for two tiers: tests/unit/contracts/test_spec_corpus.py runs every case through `restlake validate`,
tests/k8s/test_validation.py sends every case that has an ``api`` expectation to a real API server.
Each case changes one thing in a valid base (examples/demo-cursor.yaml), so the refusal can only
come from that change. A case without ``api`` says in ``validate_only`` why the CRD cannot hold it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BASE: dict[str, Any] = yaml.safe_load((REPO / "examples" / "demo-cursor.yaml").read_text(encoding="utf-8"))
BASE_URL = BASE["spec"]["request"]["url"]
# Stands for every credential in the corpus; a refusal must never repeat it.
CANARY = "c4nary-S3cret"


@dataclass(frozen=True)
class Expect:
    """A refusal: the field path (or file location) named, and a fragment of its message."""

    field: str
    message: str


@dataclass(frozen=True)
class BadSpec:
    name: str
    validate: Expect
    # What the API server says (None: the CRD cannot express the rule; validate_only says why).
    api: Expect | None
    document: dict[str, Any] | None = None
    # The file as written, for faults that live in the file rather than in the parsed document.
    raw: bytes | None = None
    validate_only: str = ""

    def file_bytes(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return yaml.safe_dump(self.document, sort_keys=False).encode("utf-8")


def variant(*changes: tuple[str, Any]) -> dict[str, Any]:
    """BASE with each dotted path set to its value (``...`` deletes the key)."""
    doc = copy.deepcopy(BASE)
    for path, value in changes:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return doc


def _case(
    name: str,
    document: dict[str, Any],
    field: str,
    message: str,
    api: tuple[str, str] | None,
    validate_only: str = "",
) -> BadSpec:
    return BadSpec(
        name=name,
        validate=Expect(field, message),
        api=Expect(*api) if api is not None else None,
        document=document,
        validate_only=validate_only,
    )


def _raw(name: str, raw: bytes, field: str, message: str, why: str) -> BadSpec:
    return BadSpec(name=name, validate=Expect(field, message), api=None, raw=raw, validate_only=why)


URL = "spec.request.url"
CREDENTIAL_URL = "looks like a credential; put credentials in spec.request.auth"
API_CREDENTIAL_URL = "has a query parameter that looks like a credential"
USERINFO = "must not contain user:password@"
OAUTH = {
    "type": "oauth2ClientCredentials",
    "tokenUrl": "https://auth.example.com/oauth/token",
    "clientId": "restlake",
    "clientSecretRef": {"name": "oauth", "key": "client-secret"},
}
INCREMENTAL = {"param": "since", "cursorPath": "$.updated_at"}
WINDOWS = {**INCREMENTAL, "window": "1d", "start": "2024-01-01T00:00:00Z", "endParam": "until"}
PARENT = {"source": "demo-org", "bind": {"repo": "$.name"}}
TABLE = "spec.sinks.postgres.table"
BRONZE = "spec.sinks.bronze.path"
QUARANTINE = "spec.sinks.quarantine.path"
SNOWFLAKE = {
    "enabled": True,
    "account": "myorg-analytics",
    "user": "RESTLAKE_LOADER",
    "database": "ANALYTICS",
    "schema": "RAW",
    "warehouse": "LOAD_WH",
    "auth": {"type": "keyPair", "privateKeySecretRef": {"name": "snowflake", "key": "rsa-key.p8"}},
}
SNOWFLAKE_REQUIRED = "required when snowflake.enabled is true"
LE = "must be less than or equal to"
API_LE = "should be less than or equal to"
JSON_REASON = "the API server receives JSON; YAML text problems are the client's to find"


def _dup(name: str, request_lines: str, line: int, column: int, key: str, first: int) -> BadSpec:
    text = (
        "apiVersion: restlake.io/v1alpha1\n"
        "kind: IngestionSource\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"{request_lines}"
    )
    return _raw(
        name,
        text.encode(),
        f"line {line}, column {column}",
        f"duplicate key {key!r} (first given on line {first}",
        "a duplicate key is gone once the YAML becomes JSON for the API server (the last one wins in "
        "the client), so only the file itself can show it",
    )


CORPUS: list[BadSpec] = [
    # --- what the validator already refused (16 kinds and their siblings) ---
    _case(
        "unknown-field",
        variant(("spec.pagination.cursorpath", "$.next")),
        "spec.pagination.cursorpath",
        "unknown field (did you mean 'cursorPath'?)",
        ("spec.pagination.cursorpath", "unknown field"),
    ),
    _case(
        "no-request",
        variant(("spec.request", ...)),
        "spec.request",
        "required",
        ("spec.request", "Required value"),
    ),
    _case(
        "url-not-http",
        variant((URL, "ftp://example.org/x")),
        URL,
        "must be an http:// or https:// URL",
        (URL, "should match"),
    ),
    _case(
        "method-put",
        variant(("spec.request.method", "PUT")),
        "spec.request.method",
        "must be 'GET' or 'POST', got 'PUT'",
        ("spec.request.method", 'Unsupported value: "PUT"'),
    ),
    _case(
        "param-not-a-string",
        variant(("spec.request.params", {"limit": 50})),
        "spec.request.params.limit",
        'must be a string, got 50 (quote it in YAML: "50")',
        ("spec.request.params.limit", "must be of type string"),
    ),
    _case(
        "interval-not-a-duration",
        variant(("spec.poll.interval", "soon")),
        "spec.poll.interval",
        "must be a duration such as 500ms, 30s, 5m, 1h or 1d, got 'soon'",
        ("spec.poll.interval", "should match"),
    ),
    _case(
        "interval-under-1s",
        variant(("spec.poll.interval", "500ms")),
        "spec.poll.interval",
        "must be at least 1s, got '500ms'",
        ("spec.poll.interval", "must be at least 1s"),
    ),
    _case(
        "jitter-over-1",
        variant(("spec.poll.jitter", 2)),
        "spec.poll.jitter",
        f"{LE} 1, got 2",
        ("spec.poll.jitter", f"{API_LE} 1"),
    ),
    _case(
        "table-injection",
        variant(("spec.sinks.postgres", {"table": "raw; drop table x"})),
        TABLE,
        "must be a lowercase schema.table identifier",
        (TABLE, "should match"),
    ),
    _case(
        "name-not-dns",
        variant(("metadata.name", "Orders_1")),
        "metadata.name",
        "must be a DNS-1123 label",
        ("metadata.name", "should match"),
    ),
    _case(
        "name-too-long",
        variant(("metadata.name", "a" * 64)),
        "metadata.name",
        "must have at most 63 characters",
        ("metadata.name", "63"),
    ),
    _case(
        "cursor-without-cursor-path",
        variant(("spec.pagination", {"type": "cursor", "param": "cursor"})),
        "spec.pagination.cursorPath",
        "required when pagination.type is cursor",
        ("spec.pagination.cursorPath", "cursorPath, cursorHeader or cursorFromLastRecord is required"),
    ),
    _case(
        "cursor-path-and-header",
        variant(("spec.pagination.cursorHeader", "X-Next")),
        "spec.pagination.cursorHeader",
        "cannot be combined with cursorPath",
        (
            "spec.pagination.cursorHeader",
            "set exactly one of cursorPath, cursorHeader or cursorFromLastRecord",
        ),
    ),
    _case(
        "body-with-get",
        variant(("spec.request.body", {"q": 1})),
        "spec.request.body",
        "only allowed when method is POST",
        ("spec.request.body", "only allowed when method is POST"),
    ),
    _case(
        "no-sink",
        variant(("spec.sinks", {"postgres": {"enabled": False}, "bronze": {"enabled": False}})),
        "spec.sinks.bronze.enabled",
        "at least one of postgres or bronze must be enabled",
        ("spec.sinks", "at least one of postgres or bronze must be enabled"),
    ),
    _case(
        "bronze-checks-without-bronze",
        variant(
            ("spec.quality", {"bronze": {"schedule": "@daily"}}),
            ("spec.sinks", {"bronze": {"enabled": False}}),
        ),
        "spec.quality.bronze",
        "checks the bronze table, and sinks.bronze.enabled is false",
        ("spec", "quality.bronze checks the bronze table"),
    ),
    # --- spec.sinks.snowflake: complete once enabled, loaded from bronze ---
    *(
        _case(
            f"snowflake-without-{field}",
            variant(("spec.sinks.snowflake", {k: v for k, v in SNOWFLAKE.items() if k != field})),
            f"spec.sinks.snowflake.{field}",
            SNOWFLAKE_REQUIRED,
            (f"spec.sinks.snowflake.{field}", f"{field} is {SNOWFLAKE_REQUIRED}"),
        )
        for field in ("account", "user", "database", "schema", "warehouse", "auth")
    ),
    _case(
        "snowflake-without-bronze",
        variant(("spec.sinks", {"bronze": {"enabled": False}, "snowflake": SNOWFLAKE})),
        "spec.sinks.snowflake.enabled",
        "snowflake loads from the bronze table, and sinks.bronze.enabled is false",
        ("spec.sinks.snowflake.enabled", "snowflake loads from the bronze table"),
    ),
    _case(
        "snowflake-table-not-an-identifier",
        variant(("spec.sinks.snowflake", {**SNOWFLAKE, "table": "api events; drop"})),
        "spec.sinks.snowflake.table",
        "must be an unquoted Snowflake identifier",
        ("spec.sinks.snowflake.table", "should match"),
    ),
    _case(
        "snowflake-password-auth-without-secret",
        variant(("spec.sinks.snowflake", {**SNOWFLAKE, "auth": {"type": "password"}})),
        "spec.sinks.snowflake.auth.passwordSecretRef",
        "required",
        (
            "spec.sinks.snowflake.auth.passwordSecretRef",
            "passwordSecretRef is required when type is password",
        ),
    ),
    _case(
        "pagination-in-body-with-get",
        variant(("spec.pagination", {"type": "cursor", "cursorPath": "$.next_cursor", "in": "body"})),
        "spec.pagination.in",
        "body needs request.method POST",
        ("spec.pagination", "pagination.in body needs request.method POST"),
    ),
    _case(
        "line-format-with-cursor-path",
        variant(("spec.records.format", "jsonl"), ("spec.records.path", "$")),
        "spec.pagination.cursorPath",
        "reads a JSON body, but records.format is jsonl",
        ("spec.pagination", "need records.format json"),
    ),
    # --- spec.parent: every {variable} of request.url bound, every binding used, none in the host ---
    _case(
        "url-variable-without-parent",
        variant((URL, f"{BASE_URL}/{{repo}}")),
        URL,
        "has the template variable {repo}, which needs spec.parent",
        (URL, "request.url has a {variable}, which needs spec.parent"),
    ),
    _case(
        "parent-variable-unbound",
        variant((URL, f"{BASE_URL}/{{owner}}/{{repo}}"), ("spec.parent", PARENT)),
        "spec.parent.bind",
        "has no entry for {owner} of request.url",
        ("spec.parent.bind", "every {variable} of request.url must be bound in parent.bind"),
    ),
    _case(
        "parent-bind-unused",
        variant(
            (URL, f"{BASE_URL}/{{repo}}"),
            ("spec.parent", {**PARENT, "bind": {"repo": "$.name", "org": "$.owner.login"}}),
        ),
        "spec.parent.bind.org",
        "is not used: request.url has no {org}",
        ("spec.parent.bind", "every parent.bind entry must be used as a {variable} in request.url"),
    ),
    _case(
        "parent-variable-in-host",
        variant(
            (URL, "http://{tenant}.example.com/v1/items"),
            ("spec.parent", {**PARENT, "bind": {"tenant": "$.slug"}}),
        ),
        URL,
        "may only stand in the path or query, not in the host",
        (URL, "may only stand in the path or query of request.url, not in its host"),
    ),
    _case(
        "parent-with-time-windows",
        variant((URL, f"{BASE_URL}/{{repo}}"), ("spec.parent", PARENT), ("spec.incremental", WINDOWS)),
        "spec.incremental.window",
        "a child source (spec.parent) cannot use incremental.window",
        ("spec.incremental.window", "a child source (spec.parent) cannot use incremental.window"),
    ),
    _case(
        "parent-refresh-too-often",
        variant((URL, f"{BASE_URL}/{{repo}}"), ("spec.parent", {**PARENT, "refreshEvery": "10s"})),
        "spec.parent.refreshEvery",
        "must be at least 1m",
        ("spec.parent.refreshEvery", "must be at least 1m"),
    ),
    _case(
        "parent-bind-bad-jsonpath",
        variant((URL, f"{BASE_URL}/{{repo}}"), ("spec.parent", {**PARENT, "bind": {"repo": "$.name[?("}})),
        "spec.parent.bind.repo",
        "not a valid JSONPath",
        None,
        "the API server has no JSONPath parser; the CRD only asks for a non-empty string",
    ),
    _case(
        "parent-is-itself",
        variant(
            (URL, f"{BASE_URL}/{{repo}}"), ("spec.parent", {**PARENT, "source": BASE["metadata"]["name"]})
        ),
        "spec.parent.source",
        "names this source itself",
        None,
        "the CRD's rules sit on spec, which cannot see metadata.name; the operator refuses it too "
        "(a cycle of one)",
    ),
    _case(
        "basic-without-username",
        variant(("spec.request.auth", {"type": "basic", "passwordSecretRef": {"name": "s", "key": "k"}})),
        "spec.request.auth.username",
        "required when auth.type is basic",
        ("spec.request.auth.username", "username"),
    ),
    _case(
        "pagination-type-unknown",
        variant(("spec.pagination", {"type": "scroll"})),
        "spec.pagination.type",
        "must be one of linkHeader, nextUrl, cursor, pageNumber, offset, none, got 'scroll'",
        ("spec.pagination.type", 'Unsupported value: "scroll"'),
    ),
    _case(
        "offset-without-limit",
        variant(("spec.pagination", {"type": "offset"})),
        "spec.pagination.limit",
        "required",
        ("spec.pagination.limit", "limit is required when type is offset"),
    ),
    _case(
        "size-param-without-size",
        variant(("spec.pagination", {"type": "pageNumber", "sizeParam": "per_page"})),
        "spec.pagination.size",
        "required when sizeParam is set",
        ("spec.pagination.size", "size is required when sizeParam is set"),
    ),
    _case(
        "jsonpath-invalid",
        variant(("spec.records.path", "$.[[")),
        "spec.records.path",
        "not a valid JSONPath",
        None,
        "CEL has no JSONPath parser, so only the model (validate, the operator) can check the syntax",
    ),
    _case(
        "json-schema-invalid",
        variant(("spec.schema.jsonSchema.properties.id.type", "integr")),
        "spec.schema.jsonSchema.properties.id.type",
        "not a valid JSON Schema",
        None,
        "jsonSchema is free-form in the CRD (x-kubernetes-preserve-unknown-fields); CEL cannot run a "
        "JSON Schema meta-validation",
    ),
    _case(
        "range-min-over-max",
        variant(("spec.quality.expectations", [{"type": "range", "field": "amount", "min": 5, "max": 1}])),
        "spec.quality.expectations[0].max",
        "must not be less than min (5), got 1",
        ("spec.quality.expectations[0].max", "min must not exceed max"),
    ),
    _case(
        "in-set-boolean",
        variant(("spec.quality.expectations", [{"type": "inSet", "field": "status", "values": ["a", True]}])),
        "spec.quality.expectations[0].values[1]",
        "must be a string or an integer, got True",
        ("spec.quality.expectations[0].values[1]", "must be of type"),
    ),
    _case(
        "executor-cores-over-job-cores",
        variant(("spec.resources", {"executors": {"cores": 1, "coresPerExecutor": 2}})),
        "spec.resources.executors.coresPerExecutor",
        "2 cores per executor exceed the job's 1 cores",
        ("spec.resources.executors", "coresPerExecutor must not exceed cores"),
    ),
    _case(
        "cron-invalid",
        variant(("spec.quality.bronze", {"schedule": "every hour"})),
        "spec.quality.bronze.schedule",
        "must be a cron schedule",
        ("spec.quality.bronze.schedule", "should match"),
    ),
    _case(
        "quantity-invalid",
        variant(("spec.resources", {"fetcher": {"limits": {"cpu": "lots"}}})),
        "spec.resources.fetcher.limits.cpu",
        "must be a Kubernetes quantity",
        ("spec.resources.fetcher.limits.cpu", "should match"),
    ),
    _case(
        "topic-invalid",
        variant(("spec.kafka", {"topic": "my topic!"})),
        "spec.kafka.topic",
        "must be a Kafka topic name",
        ("spec.kafka.topic", "should match"),
    ),
    _case(
        "rate-zero",
        variant(("spec.rateLimit.requestsPerSecond", 0)),
        "spec.rateLimit.requestsPerSecond",
        "must be greater than 0",
        ("spec.rateLimit.requestsPerSecond", "should be greater than 0"),
    ),
    _case(
        "timeout-zero",
        variant(("spec.request.timeout", "0s")),
        "spec.request.timeout",
        "must be greater than 0s, got '0s'",
        ("spec.request.timeout", "must be greater than 0s"),
    ),
    _case(
        "wrong-kind",
        variant(("kind", "IngestionSink")),
        "kind",
        "must be 'IngestionSource', got 'IngestionSink'",
        None,
        "apiVersion and kind choose the resource in the API, they are not checked by its schema",
    ),
    _case(
        "document-not-a-mapping",
        ["not", "a", "mapping"],  # type: ignore[arg-type]
        "<document>",
        "must be a mapping, got a list",
        None,
        "a list is not an object; there is no resource for the API server to validate",
    ),
    _raw(
        "yaml-syntax-error",
        b"kind: [\n",
        "line 2, column 1",
        "invalid YAML: expected the node content",
        JSON_REASON,
    ),
    # --- credentials in URLs, parameters and headers ---
    _case(
        "url-user-password",
        variant((URL, f"https://user:{CANARY}@api.example.com/v1/items")),
        URL,
        USERINFO,
        (URL, USERINFO),
    ),
    _case(
        "url-token-as-user",
        variant((URL, f"https://{CANARY}@api.example.com/v1/items")),
        URL,
        USERINFO,
        (URL, USERINFO),
    ),
    _case(
        "url-api-key",
        variant((URL, f"{BASE_URL}?api_key={CANARY}")),
        URL,
        f"query parameter 'api_key' {CREDENTIAL_URL}",
        (URL, API_CREDENTIAL_URL),
    ),
    _case(
        "url-access-token",
        variant((URL, f"{BASE_URL}?limit=5&access_token={CANARY}")),
        URL,
        f"query parameter 'access_token' {CREDENTIAL_URL}",
        (URL, API_CREDENTIAL_URL),
    ),
    _case(
        "url-amz-signature",
        variant((URL, f"https://bucket.s3.amazonaws.com/x.json?X-Amz-Expires=60&X-Amz-Signature={CANARY}")),
        URL,
        f"query parameter 'X-Amz-Signature' {CREDENTIAL_URL}",
        (URL, API_CREDENTIAL_URL),
    ),
    _case(
        "url-auth",
        variant((URL, f"{BASE_URL}?page=1&auth={CANARY}")),
        URL,
        f"query parameter 'auth' {CREDENTIAL_URL}",
        (URL, API_CREDENTIAL_URL),
    ),
    _case(
        "url-client-secret",
        variant((URL, f"{BASE_URL}?client_secret={CANARY}")),
        URL,
        f"query parameter 'client_secret' {CREDENTIAL_URL}",
        (URL, API_CREDENTIAL_URL),
    ),
    _case(
        "url-password",
        variant((URL, f"{BASE_URL}?user=a&Password={CANARY}")),
        URL,
        f"query parameter 'Password' {CREDENTIAL_URL}",
        (URL, API_CREDENTIAL_URL),
    ),
    _case(
        "url-sas-sig",
        variant((URL, f"https://acct.blob.core.windows.net/c/x.json?sv=2022-11-02&sig={CANARY}")),
        URL,
        f"query parameter 'sig' {CREDENTIAL_URL}",
        (URL, API_CREDENTIAL_URL),
    ),
    _case(
        "token-url-user-password",
        variant(("spec.request.auth", {**OAUTH, "tokenUrl": f"https://id:{CANARY}@auth.example.com/token"})),
        "spec.request.auth.tokenUrl",
        USERINFO,
        ("spec.request.auth.tokenUrl", USERINFO),
    ),
    _case(
        "token-url-client-secret",
        variant(
            (
                "spec.request.auth",
                {**OAUTH, "tokenUrl": f"https://auth.example.com/token?client_secret={CANARY}"},
            )
        ),
        "spec.request.auth.tokenUrl",
        f"query parameter 'client_secret' {CREDENTIAL_URL}",
        ("spec.request.auth.tokenUrl", API_CREDENTIAL_URL),
    ),
    _case(
        "param-api-key",
        variant(("spec.request.params", {"limit": "50", "api_key": CANARY})),
        "spec.request.params.api_key",
        f"query parameter 'api_key' {CREDENTIAL_URL}",
        ("spec.request.params", "a query parameter name looks like a credential"),
    ),
    _case(
        "param-token",
        variant(("spec.request.params", {"token": CANARY})),
        "spec.request.params.token",
        f"query parameter 'token' {CREDENTIAL_URL}",
        ("spec.request.params", "a query parameter name looks like a credential"),
    ),
    _case(
        "header-authorization",
        variant(("spec.request.headers", {"Authorization": f"Bearer {CANARY}"})),
        "spec.request.headers.Authorization",
        f"header 'Authorization' {CREDENTIAL_URL}",
        ("spec.request.headers", "a header name looks like a credential"),
    ),
    _case(
        "header-x-api-key",
        variant(("spec.request.headers", {"Accept": "application/json", "X-API-Key": CANARY})),
        "spec.request.headers.X-API-Key",
        f"header 'X-API-Key' {CREDENTIAL_URL}",
        ("spec.request.headers", "a header name looks like a credential"),
    ),
    # --- absurd numbers ---
    _case(
        "rate-1e12",
        variant(("spec.rateLimit.requestsPerSecond", 1e12)),
        "spec.rateLimit.requestsPerSecond",
        f"{LE} 1000",
        ("spec.rateLimit.requestsPerSecond", f"{API_LE} 1000"),
    ),
    _case(
        "burst-1e8",
        variant(("spec.rateLimit.burst", 100_000_000)),
        "spec.rateLimit.burst",
        f"{LE} 1000",
        ("spec.rateLimit.burst", f"{API_LE} 1000"),
    ),
    _case(
        "timeout-999999d",
        variant(("spec.request.timeout", "999999d")),
        "spec.request.timeout",
        "must be at most 10m, got '999999d'",
        ("spec.request.timeout", "must be at most 10m"),
    ),
    _case(
        "timeout-just-over-10m",
        variant(("spec.request.timeout", "10m1s")),
        "spec.request.timeout",
        "must be at most 10m, got '10m1s'",
        ("spec.request.timeout", "must be at most 10m"),
    ),
    _case(
        "interval-999999d",
        variant(("spec.poll.interval", "999999d")),
        "spec.poll.interval",
        "must be at most 30d, got '999999d'",
        ("spec.poll.interval", "must be at most 30d"),
    ),
    _case(
        "interval-overflow",
        variant(("spec.poll.interval", "100000000000000000000d")),
        "spec.poll.interval",
        "is too long a duration (at most 9 digits per number",
        ("spec.poll.interval", "should match"),
    ),
    _case(
        "interval-many-parts",
        variant(("spec.poll.interval", "999999999d999999999d999999999d")),
        "spec.poll.interval",
        "must be at most 30d",
        ("spec.poll.interval", "must be at most 30d"),
    ),
    _case(
        "lookback-999999d",
        variant(("spec.incremental", {**INCREMENTAL, "lookback": "999999d"})),
        "spec.incremental.lookback",
        "must be at most 30d, got '999999d'",
        ("spec.incremental.lookback", "must be at most 30d"),
    ),
    # --- spec.maintenance: VACUUM never undercuts the backfill's --as-of window ---
    _case(
        "maintenance-vacuum-under-window",
        variant(("spec.maintenance", {"vacuumRetention": "1d"})),
        "spec.maintenance.vacuumRetention",
        "1d is shorter than asOfWindow 7d",
        ("spec.maintenance.vacuumRetention", "vacuumRetention must be at least asOfWindow"),
    ),
    _case(
        "maintenance-window-over-vacuum",
        variant(("spec.maintenance", {"asOfWindow": "30d", "vacuumRetention": "14d"})),
        "spec.maintenance.vacuumRetention",
        "14d is shorter than asOfWindow 30d",
        ("spec.maintenance.vacuumRetention", "vacuumRetention must be at least asOfWindow"),
    ),
    _case(
        "maintenance-schedule-not-cron",
        variant(("spec.maintenance", {"schedule": "nightly"})),
        "spec.maintenance.schedule",
        "must be a cron schedule",
        ("spec.maintenance.schedule", "should match"),
    ),
    _case(
        "maintenance-ledger-horizon-10m",
        variant(("spec.maintenance", {"ledgerHorizon": "10m"})),
        "spec.maintenance.ledgerHorizon",
        "must be at least 1h, got '10m'",
        ("spec.maintenance.ledgerHorizon", "must be at least 1h"),
    ),
    _case(
        "maintenance-zorder-not-bool",
        variant(("spec.maintenance", {"zorder": "external_id"})),
        "spec.maintenance.zorder",
        "must be a valid boolean",
        ("spec.maintenance.zorder", "must be of type boolean"),
    ),
    # --- time windows of a first load ---
    _case(
        "window-without-start",
        variant(("spec.incremental", {**INCREMENTAL, "window": "1d"})),
        "spec.incremental.start",
        "required with window: window, start and endParam go together",
        ("spec.incremental.window", "window, start and endParam go together"),
    ),
    _case(
        "window-start-not-a-time",
        variant(("spec.incremental", {**WINDOWS, "start": "yesterday"})),
        "spec.incremental.start",
        "must be an ISO 8601 date or timestamp",
        ("spec.incremental.start", "should match"),
    ),
    _case(
        "window-zero",
        variant(("spec.incremental", {**WINDOWS, "window": "0s"})),
        "spec.incremental.window",
        "must be at least 1s, got '0s'",
        ("spec.incremental.window", "must be at least 1s"),
    ),
    _case(
        "window-start-with-initial-value",
        variant(("spec.incremental", {**WINDOWS, "initialValue": "2024-01-01T00:00:00Z"})),
        "spec.incremental.initialValue",
        "cannot be combined with start",
        ("spec.incremental.initialValue", "initialValue cannot be combined with start"),
    ),
    _case(
        "window-end-param-is-param",
        variant(("spec.incremental", {**WINDOWS, "endParam": "since"})),
        "spec.incremental.endParam",
        "must differ from param",
        ("spec.incremental.endParam", "endParam must differ from param"),
    ),
    _case(
        "window-start-month-13",
        variant(("spec.incremental", {**WINDOWS, "start": "2024-13-01T00:00:00Z"})),
        "spec.incremental.start",
        "is not a valid ISO 8601 timestamp",
        None,
        validate_only="the CRD's pattern checks the shape of a timestamp; the calendar (month 13) is "
        "checked by the model only",
    ),
    _case(
        "page-size-1e9",
        variant(("spec.pagination", {"type": "pageNumber", "sizeParam": "per_page", "size": 1_000_000_000})),
        "spec.pagination.size",
        f"{LE} 100000",
        ("spec.pagination.size", f"{API_LE} 100000"),
    ),
    _case(
        "offset-limit-1e9",
        variant(("spec.pagination", {"type": "offset", "limit": 1_000_000_000})),
        "spec.pagination.limit",
        f"{LE} 100000",
        ("spec.pagination.limit", f"{API_LE} 100000"),
    ),
    _case(
        "partitions-1e6",
        variant(("spec.kafka", {"partitions": 1_000_000})),
        "spec.kafka.partitions",
        f"{LE} 1000",
        ("spec.kafka.partitions", f"{API_LE} 1000"),
    ),
    _case(
        "url-too-long",
        variant((URL, f"{BASE_URL}?q={'a' * 2100}")),
        URL,
        "must have at most 2048 characters",
        (URL, "2048"),
    ),
    # --- table locations outside the lake root ---
    _case(
        "bronze-absolute",
        variant(("spec.sinks.bronze", {"path": "/data/bronze/orders"})),
        BRONZE,
        "not an absolute path",
        (BRONZE, "not an absolute path"),
    ),
    _case(
        "bronze-other-bucket",
        variant(("spec.sinks.bronze", {"path": "s3a://other-bucket/bronze/orders"})),
        BRONZE,
        "not a URL or another bucket",
        (BRONZE, "not a URL or another bucket"),
    ),
    _case(
        "bronze-climbs-out",
        variant(("spec.sinks.bronze", {"path": "../../etc/orders"})),
        BRONZE,
        "must not climb out of the lake root with '..'",
        (BRONZE, "must not climb out of the lake root"),
    ),
    _case(
        "bronze-climbs-out-midway",
        variant(("spec.sinks.bronze", {"path": "bronze/../../orders"})),
        BRONZE,
        "must not climb out of the lake root with '..'",
        (BRONZE, "must not climb out of the lake root"),
    ),
    _case(
        "bronze-in-checkpoints",
        variant(("spec.sinks.bronze", {"path": "_checkpoints/orders"})),
        BRONZE,
        "each starting with a letter or digit",
        (BRONZE, "should match"),
    ),
    _case(
        "quarantine-absolute",
        variant(("spec.sinks.quarantine", {"path": "/tmp/quarantine"})),
        QUARANTINE,
        "not an absolute path",
        (QUARANTINE, "not an absolute path"),
    ),
    _case(
        "quarantine-climbs-out",
        variant(("spec.sinks.quarantine", {"path": "../quarantine"})),
        QUARANTINE,
        "must not climb out of the lake root with '..'",
        (QUARANTINE, "must not climb out of the lake root"),
    ),
    _case(
        "quarantine-other-scheme",
        variant(("spec.sinks.quarantine", {"path": "file:///etc/quarantine"})),
        QUARANTINE,
        "not a URL or another bucket",
        (QUARANTINE, "not a URL or another bucket"),
    ),
    # --- Postgres tables that are not the sink's to write ---
    _case(
        "table-pg-catalog",
        variant(("spec.sinks.postgres", {"table": "pg_catalog.pg_class"})),
        TABLE,
        "'pg_catalog' is a PostgreSQL system schema",
        (TABLE, "must not be in a PostgreSQL system schema"),
    ),
    _case(
        "table-information-schema",
        variant(("spec.sinks.postgres", {"table": "information_schema.tables"})),
        TABLE,
        "'information_schema' is a PostgreSQL system schema",
        (TABLE, "must not be in a PostgreSQL system schema"),
    ),
    _case(
        "table-pg-toast",
        variant(("spec.sinks.postgres", {"table": "pg_toast.orders"})),
        TABLE,
        "'pg_toast' is a PostgreSQL system schema",
        (TABLE, "must not be in a PostgreSQL system schema"),
    ),
    *[
        _case(
            f"table-{table.split('.')[1].replace('_', '-')}",
            variant(("spec.sinks.postgres", {"table": table})),
            TABLE,
            f"{table} is restlake's own bookkeeping table",
            (TABLE, "must not be one of restlake's own bookkeeping tables"),
        )
        for table in ("raw.ingest_batches", "raw.fetch_state", "raw.bronze_keys", "raw.schema_migrations")
    ],
    # --- the file itself ---
    _dup(
        "dup-url",
        "  request:\n    url: http://127.0.0.1:8085/v1/a\n    url: http://127.0.0.1:8085/v1/b\n",
        7,
        5,
        "url",
        6,
    ),
    _dup(
        "dup-spec-section",
        "  request: {url: 'http://127.0.0.1:8085/v1/a'}\n  poll: {interval: 10s}\n  poll: {interval: 1h}\n",
        7,
        3,
        "poll",
        6,
    ),
    _raw(
        "binary-png",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01",
        "<file>",
        "not a UTF-8 text file (byte 0x89 at offset 0)",
        "kubectl reads the file, not the API server; the server only ever sees JSON",
    ),
    _raw(
        "latin-1-text",
        "# Bestellungen für das Lager\napiVersion: restlake.io/v1alpha1\n".encode("latin-1"),
        "<file>",
        "not a UTF-8 text file (byte 0xfc at offset 16)",
        "kubectl reads the file, not the API server; the server only ever sees JSON",
    ),
    _raw(
        "nul-bytes",
        b"apiVersion: restlake.io/v1alpha1\x00\x00kind: IngestionSource\n",
        "character 33",
        "not a YAML text file: control character #x0000 is not allowed",
        "kubectl reads the file, not the API server; the server only ever sees JSON",
    ),
]
