"""The IngestionSource model: defaults, accessors, secrets, and the exact wording of spec errors."""

from __future__ import annotations

import copy
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from restlake.contracts.spec import (
    CursorPagination,
    Duration,
    IngestionSource,
    JsonPath,
    load_source,
    load_sources,
    parse_source,
)
from restlake.errors import ConfigError, SpecError

MINIMAL: dict[str, Any] = {
    "apiVersion": "restlake.io/v1alpha1",
    "kind": "IngestionSource",
    "metadata": {"name": "orders"},
    "spec": {"request": {"url": "http://127.0.0.1:8085/v1/cursor/items"}},
}


def source(**spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(MINIMAL)
    doc["spec"].update(spec)
    return doc


def problems(doc: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_source(doc, "test.yaml")
    return info.value.problems


def test_defaults() -> None:
    src = parse_source(source(), "test.yaml")
    spec = src.spec
    assert spec.request.method == "GET"
    assert spec.request.timeout == "30s"
    assert spec.request.timeout.timedelta == dt.timedelta(seconds=30)
    assert spec.records.path == "$"
    assert spec.pagination.type == "none"
    assert spec.poll.interval.total_seconds() == 60.0
    assert spec.poll.jitter == 0.1
    assert (spec.rate_limit.requests_per_second, spec.rate_limit.burst, spec.rate_limit.respect_headers) == (
        5,
        1,
        True,
    )
    assert spec.sinks.postgres.table == "raw.api_events"
    assert spec.sinks.bronze.partition_by == ["source", "ingest_date"]
    assert spec.incremental is None and spec.schema_ is None and spec.quality is None


def test_durations_parse() -> None:
    assert Duration("500ms").timedelta == dt.timedelta(milliseconds=500)
    assert Duration("1h30m").timedelta == dt.timedelta(hours=1, minutes=30)
    assert Duration("1d").total_seconds() == 86400.0
    with pytest.raises(ValueError, match="must be a duration"):
        Duration("5 minutes")


def test_jsonpath_compiles_and_evaluates() -> None:
    assert [m.value for m in JsonPath("$.data[*].id").compile().find({"data": [{"id": 1}, {"id": 2}]})] == [
        1,
        2,
    ]


def test_cursor_pagination_and_accessors(tmp_path: Path) -> None:
    src = parse_source(
        source(
            pagination={"type": "cursor", "cursorPath": "$.next_cursor"},
            sinks={"bronze": {"path": "custom/orders"}},
            kafka={"topic": "shop.orders"},
        ),
        "test.yaml",
    )
    assert isinstance(src.spec.pagination, CursorPagination)
    assert src.spec.pagination.param == "cursor"
    assert src.topic() == "shop.orders"
    assert src.bronze_path("s3a://lake/") == "s3a://lake/custom/orders"
    assert src.quarantine_path("s3a://lake") == "s3a://lake/quarantine/orders"
    assert src.checkpoint_path(str(tmp_path)) == str(tmp_path / "_checkpoints" / "orders")


def test_topic_and_bronze_path_default_from_the_name(tmp_path: Path) -> None:
    src = parse_source(source(), "test.yaml")
    assert src.topic() == "restlake.orders"
    assert src.topic(prefix="dev.") == "dev.orders"
    assert src.bronze_path(str(tmp_path)) == str(tmp_path / "bronze" / "orders")


def test_snake_case_keys_are_rejected_in_yaml_but_python_may_use_names() -> None:
    assert problems(source(rate_limit={"requestsPerSecond": 1})) == [
        ("spec.rate_limit", "unknown field (did you mean 'rateLimit'?)")
    ]
    assert CursorPagination(type="cursor", cursor_path=JsonPath("$.c")).cursor_path == "$.c"


def test_typo_names_the_path_and_suggests_the_field() -> None:
    assert problems(source(request={"url": "http://a", "timout": "5s"})) == [
        ("spec.request.timout", "unknown field (did you mean 'timeout'?)")
    ]
    assert problems(source(pagination={"type": "cursor", "cursorpath": "$.c"})) == [
        ("spec.pagination.cursorpath", "unknown field (did you mean 'cursorPath'?)"),
    ]


def test_cursor_needs_exactly_one_cursor_source() -> None:
    assert problems(source(pagination={"type": "cursor"})) == [
        (
            "spec.pagination.cursorPath",
            "required when pagination.type is cursor (or cursorHeader, cursorFromLastRecord)",
        )
    ]
    assert problems(source(pagination={"type": "cursor", "cursorPath": "$.c", "cursorHeader": "X-Next"})) == [
        ("spec.pagination.cursorHeader", "cannot be combined with cursorPath; set exactly one")
    ]
    both = {"type": "cursor", "cursorPath": "$.c", "cursorFromLastRecord": "$.id"}
    assert problems(source(pagination=both)) == [
        ("spec.pagination.cursorFromLastRecord", "cannot be combined with cursorPath; set exactly one")
    ]


def test_field_of_another_pagination_type_is_an_unknown_field() -> None:
    assert problems(source(pagination={"type": "linkHeader", "limit": 5})) == [
        ("spec.pagination.limit", "unknown field")
    ]


def test_bad_union_tag_lists_the_choices() -> None:
    assert problems(source(pagination={"type": "cursr"})) == [
        (
            "spec.pagination.type",
            "must be one of linkHeader, nextUrl, cursor, pageNumber, offset, none, got 'cursr'",
        )
    ]
    assert problems(
        source(request={"url": "http://a", "auth": {"secretRef": {"name": "s", "key": "k"}}})
    ) == [("spec.request.auth.type", "required: one of bearer, basic, apiKey, oauth2ClientCredentials")]


def test_list_indices_in_paths() -> None:
    quality = {
        "expectations": [
            {"type": "notNull", "field": "id"},
            {"type": "inSet", "field": "status", "values": ["a", True]},
            {"type": "range", "fieldd": "amount", "min": 0},
            {"type": "range", "field": "amount", "min": 5, "max": 1},
        ]
    }
    assert problems(source(quality=quality)) == [
        ("spec.quality.expectations[1].values[1]", "must be a string or an integer, got True"),
        ("spec.quality.expectations[2].field", "required"),
        ("spec.quality.expectations[2].fieldd", "unknown field (did you mean 'field'?)"),
        ("spec.quality.expectations[3].max", "must not be less than min (5), got 1"),
    ]


def test_values_are_named_in_messages() -> None:
    doc = source(
        request={"url": "ftp://host/x", "method": "PUT", "params": {"per_page": 100}},
        poll={"interval": "500ms", "jitter": 2},
        sinks={"postgres": {"table": "raw; drop table x"}},
        stream={"trigger": "50ms", "maxRecordsPerBatch": 5_000_000},
    )
    doc["metadata"]["name"] = "Orders_1"
    assert problems(doc) == [
        (
            "metadata.name",
            "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a "
            "letter or digit), got 'Orders_1'",
        ),
        ("spec.request.url", "must be an http:// or https:// URL, got 'ftp://host/x'"),
        ("spec.request.method", "must be 'GET' or 'POST', got 'PUT'"),
        ("spec.request.params.per_page", 'must be a string, got 100 (quote it in YAML: "100")'),
        ("spec.poll.interval", "must be at least 1s, got '500ms'"),
        ("spec.poll.jitter", "must be less than or equal to 1, got 2"),
        (
            "spec.sinks.postgres.table",
            "must be a lowercase schema.table identifier such as raw.api_events, got 'raw; drop table x'",
        ),
        ("spec.stream.trigger", "must be at least 100ms, got '50ms'"),
        ("spec.stream.maxRecordsPerBatch", "must be less than or equal to 1000000, got 5000000"),
    ]


def test_name_longer_than_a_dns_label() -> None:
    doc = source()
    doc["metadata"]["name"] = "a" * 64
    assert problems(doc) == [("metadata.name", f"must have at most 63 characters, got '{'a' * 64}'")]


def test_jsonpath_and_json_schema_are_checked() -> None:
    assert problems(
        source(
            records={"path": "$.[[", "idPath": "$.id"},
            schema={"jsonSchema": {"type": "object", "properties": {"id": {"type": "integr"}}}},
        )
    ) == [
        ("spec.records.path", "not a valid JSONPath (Parse error at 1:3 near token [ ([)), got '$.[['"),
        (
            "spec.schema.jsonSchema.properties.id.type",
            "not a valid JSON Schema: 'integr' is not valid under any of the given schemas",
        ),
    ]


def test_body_needs_post_and_a_sink_must_be_enabled() -> None:
    assert problems(
        source(
            request={"url": "http://a", "body": {"q": 1}},
            sinks={"postgres": {"enabled": False}, "bronze": {"enabled": False}},
        )
    ) == [
        ("spec.request.body", "only allowed when method is POST, got method 'GET'"),
        ("spec.sinks.bronze.enabled", "at least one of postgres or bronze must be enabled"),
    ]


def test_bronze_checks_need_the_bronze_sink() -> None:
    assert problems(
        source(
            quality={"bronze": {"schedule": "@daily"}},
            sinks={"bronze": {"enabled": False}},
        )
    ) == [
        (
            "spec.quality.bronze",
            "checks the bronze table, and sinks.bronze.enabled is false: enable the bronze sink or "
            "remove quality.bronze",
        )
    ]
    # Without bronze checks, a source may write Postgres only.
    assert not parse_source(source(sinks={"bronze": {"enabled": False}}), "t.yaml").spec.sinks.bronze.enabled


def test_basic_auth_needs_one_username() -> None:
    auth = {"type": "basic", "passwordSecretRef": {"name": "api", "key": "password"}}
    assert problems(source(request={"url": "http://a", "auth": auth})) == [
        ("spec.request.auth.username", "required when auth.type is basic (or set usernameSecretRef)")
    ]


def test_quantities_accept_integers_like_kubernetes() -> None:
    src = parse_source(source(resources={"driver": {"requests": {"cpu": 2, "memory": "1Gi"}}}), "t")
    assert src.spec.resources is not None and src.spec.resources.driver is not None
    assert src.spec.resources.driver.requests is not None
    assert src.spec.resources.driver.requests.cpu == "2"
    assert problems(source(resources={"driver": {"limits": {"memory": "lots"}}})) == [
        (
            "spec.resources.driver.limits.memory",
            "must be a Kubernetes quantity such as 500m, 2, 512Mi or 1Gi, got 'lots'",
        )
    ]


def test_wrong_kind_reports_only_the_header() -> None:
    with pytest.raises(SpecError) as info:
        parse_source({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}, "mixed.yaml#2")
    assert info.value.source == "s (mixed.yaml#2)"
    assert info.value.problems == [
        ("apiVersion", "must be 'restlake.io/v1alpha1', got 'v1'"),
        ("kind", "must be 'IngestionSource', got 'Secret'"),
    ]
    assert problems(["not", "a", "mapping"]) == [("<document>", "must be a mapping, got a list")]


def test_object_read_back_from_the_api_server_parses() -> None:
    doc = source()
    doc["metadata"].update(
        {"uid": "1234", "resourceVersion": "77", "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z"}
    )
    doc["status"] = {
        "phase": "Running",
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Running", "message": "ok"}],
        "eventsProduced": 10,
    }
    src = parse_source(doc, "cluster")
    assert src.status is not None and src.status.conditions[0].type == "Ready"


def test_yaml_syntax_error_has_a_location(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("apiVersion: restlake.io/v1alpha1\nkind: [IngestionSource\n")
    with pytest.raises(SpecError) as info:
        load_source(path)
    assert info.value.source == str(path)
    assert info.value.problems == [
        (
            "line 3, column 1",
            "invalid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence)",
        )
    ]


def test_multi_document_files(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    first = "apiVersion: restlake.io/v1alpha1\nkind: IngestionSource\nmetadata: {name: a}\n"
    path.write_text(
        first
        + "spec: {request: {url: 'http://a'}}\n---\n"
        + first.replace("name: a", "name: b")
        + "spec: {}\n---\n"
    )
    with pytest.raises(SpecError) as info:
        load_sources(path)
    assert info.value.source == f"b ({path}#2)"
    assert info.value.problems == [("spec.request", "required")]
    with pytest.raises(SpecError) as one:
        load_source(path)
    assert one.value.problems == [("<document>", "expected one IngestionSource document, found 2")]


def test_secret_resolution_env_then_file(tmp_path: Path) -> None:
    src = parse_source(
        source(
            request={
                "url": "http://a",
                "auth": {"type": "bearer", "secretRef": {"name": "gh-token", "key": "api.key"}},
            }
        ),
        "t",
    )
    auth = src.spec.request.auth
    assert auth is not None and auth.type == "bearer"
    ref = auth.secret_ref
    assert ref.env_var() == "RESTLAKE_SECRET_GH_TOKEN_API_KEY"
    assert ref.resolve(environ={"RESTLAKE_SECRET_GH_TOKEN_API_KEY": "s3cr3t"}).get_secret_value() == "s3cr3t"
    (tmp_path / "gh-token").mkdir()
    (tmp_path / "gh-token" / "api.key").write_text("from-file\n")
    assert ref.resolve(environ={"RESTLAKE_SECRETS_DIR": str(tmp_path)}).get_secret_value() == "from-file"
    with pytest.raises(ConfigError) as info:
        ref.resolve(directory=tmp_path / "missing", environ={})
    assert str(info.value) == (
        "secret gh-token/api.key not found: looked in environment variable RESTLAKE_SECRET_GH_TOKEN_API_KEY "
        f"and file {tmp_path / 'missing' / 'gh-token' / 'api.key'}"
    )


def test_resolved_secret_never_shows_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    from restlake.contracts.spec import SecretRef

    value = SecretRef(name="t", key="k").resolve(environ={"RESTLAKE_SECRET_T_K": "tok-123456"})
    logging.getLogger("test").warning("resolved %s %r", value, value)
    assert "tok-123456" not in repr(value) and "tok-123456" not in str(value)
    assert "tok-123456" not in caplog.text


def test_round_trip_by_alias() -> None:
    src = parse_source(source(pagination={"type": "offset", "limit": 50}), "t")
    dumped = src.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["spec"]["pagination"] == {
        "type": "offset",
        "offsetParam": "offset",
        "limitParam": "limit",
        "limit": 50,
        "in": "query",
        "maxPages": 10_000,
    }
    assert IngestionSource.model_validate(dumped, by_alias=True, by_name=False) == src


def test_next_url_pagination_and_has_more() -> None:
    src = parse_source(
        source(pagination={"type": "nextUrl", "nextUrlPath": "$._links.next.href", "hasMorePath": "$.more"}),
        "t",
    )
    assert src.spec.pagination.type == "nextUrl"
    assert (src.spec.pagination.next_url_path, src.spec.pagination.has_more_path) == (
        "$._links.next.href",
        "$.more",
    )
    assert problems(source(pagination={"type": "nextUrl"})) == [("spec.pagination.nextUrlPath", "required")]
    # nextUrl carries its own query, so there is no parameter to place.
    assert problems(source(pagination={"type": "nextUrl", "nextUrlPath": "$.next", "in": "body"})) == [
        ("spec.pagination.in", "unknown field")
    ]


def test_pagination_in_body_needs_post() -> None:
    paginated = {"type": "cursor", "cursorFromLastRecord": "$.id", "param": "start", "in": "body"}
    assert problems(source(pagination=paginated)) == [
        ("spec.pagination.in", "body needs request.method POST, got 'GET' (or use in: query)")
    ]
    post = {"url": "http://a/query", "method": "POST", "body": {"page_size": 10}}
    src = parse_source(source(request=post, pagination=paginated), "t")
    assert (src.spec.request.method, src.spec.pagination.in_) == ("POST", "body")


def test_line_formats_take_whole_lines_and_no_body_paths() -> None:
    assert parse_source(source(records={"format": "csv"}), "t").spec.records.format == "csv"
    assert problems(source(records={"format": "jsonl", "path": "$.data"})) == [
        ("spec.records.path", "must be $ when format is jsonl (every line is a record), got '$.data'")
    ]
    assert problems(source(records={"format": "xml"})) == [
        ("spec.records.format", "must be 'json', 'jsonl' or 'csv', got 'xml'")
    ]
    assert problems(
        source(records={"format": "csv"}, pagination={"type": "offset", "limit": 5, "hasMorePath": "$.m"})
    ) == [
        (
            "spec.pagination.hasMorePath",
            "reads a JSON body, but records.format is csv; "
            "use linkHeader, pageNumber, offset or cursorHeader/cursorFromLastRecord",
        )
    ]
    last = {"type": "cursor", "cursorFromLastRecord": "$.id"}
    assert parse_source(source(records={"format": "jsonl"}, pagination=last), "t").spec.pagination == (
        CursorPagination(type="cursor", cursor_from_last_record=JsonPath("$.id"))
    )


def test_hostile_api_defaults_and_their_fields_are_named_when_wrong() -> None:
    spec = parse_source(
        source(
            records={"path": "$.items", "idPath": "$.id"},
            pagination={"type": "pageNumber"},
            incremental={"param": "since", "cursorPath": "$.updated_at"},
        ),
        "test.yaml",
    ).spec
    assert spec.records.on_missing_id == "quarantine"
    assert spec.pagination is not None and spec.pagination.max_pages == 10_000
    assert spec.incremental is not None and spec.incremental.max_future_skew.timedelta == dt.timedelta(
        hours=1
    )
    bad = problems(
        source(
            records={"idPath": "$.id", "onMissingId": "drop"},
            pagination={"type": "offset", "limit": 10, "maxPages": 0},
            incremental={"param": "since", "cursorPath": "$.u", "maxFutureSkew": "soon"},
        )
    )
    fields = sorted(field for field, _ in bad)
    assert fields == [
        "spec.incremental.maxFutureSkew",
        "spec.pagination.maxPages",
        "spec.records.onMissingId",
    ], bad
