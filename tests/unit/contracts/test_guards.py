"""The spec's guards: credentials in URLs, durations, lake paths, reserved tables, duplicate keys.

The corpus (test_spec_corpus.py) shows what is refused; this file shows what must stay accepted,
that each CEL twin's regular expression agrees with the Python check, and that the reserved table
list follows the SQL.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from restlake.contracts import guards, strict_yaml
from restlake.contracts.spec import Duration, parse_source
from restlake.errors import SpecError
from restlake.postgres import migrations

MINIMAL: dict[str, Any] = {
    "apiVersion": "restlake.io/v1alpha1",
    "kind": "IngestionSource",
    "metadata": {"name": "orders"},
    "spec": {"request": {"url": "https://api.example.com/v1/orders"}},
}

# Names that end like a credential word but are cursors, options or plain data.
HARMLESS_NAMES = ["pageToken", "nextToken", "continuation_token", "sort_key", "keys", "author", "signed", "q"]
SECRET_NAMES = [
    "api_key", "apiKey", "API-KEY", "x-api-key", "key", "token", "access_token", "accessToken",
    "X-Amz-Signature", "X-Amz-Credential", "x-amz-security-token", "sig", "auth", "client_secret",
    "clientSecret", "password", "db_passwd", "Authorization", "Cookie", "PRIVATE-TOKEN",
    "Ocp-Apim-Subscription-Key",
]  # fmt: skip


def source(**spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(MINIMAL)
    doc["spec"].update(spec)
    return doc


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_in_python_and_in_cel(name: str) -> None:
    assert guards.is_secret_name(name)
    url = f"https://api.example.com/v1?page=2&{name}=x"
    assert guards.url_credentials_problem(url) == (
        f"query parameter {name!r} looks like a credential; {guards.CREDENTIALS_ADVICE}"
    )
    # RE2 (CEL) and Python agree on these expressions; they are written in the common subset.
    assert re.search(guards.SECRET_QUERY_IN_URL, url)
    assert re.search(guards.SECRET_NAME, name)


@pytest.mark.parametrize("name", HARMLESS_NAMES)
def test_harmless_names_pass_in_python_and_in_cel(name: str) -> None:
    assert not guards.is_secret_name(name)
    url = f"https://api.example.com/v1?{name}=x&page=2"
    assert guards.url_credentials_problem(url) is None
    assert not re.search(guards.SECRET_QUERY_IN_URL, url)
    parse_source(source(request={"url": url, "params": {name: "1"}, "headers": {name: "1"}}), "t")


def test_user_info_in_python_and_in_cel() -> None:
    for url in ("https://u:p@h/x", "https://tok@h/x", "http://u@h:8080/x?y=1"):
        assert guards.url_credentials_problem(url) is not None
        assert re.search(guards.USERINFO_IN_URL, url)
    for url in ("https://h/x?email=a@b.c", "https://h/users/@me", "https://h/x#a@b"):
        assert guards.url_credentials_problem(url) is None
        assert not re.search(guards.USERINFO_IN_URL, url)
        parse_source(source(request={"url": url}), "t")


def test_the_refused_url_is_not_in_the_error() -> None:
    with pytest.raises(SpecError) as info:
        parse_source(source(request={"url": "ftp://me:hunter2@h/x"}), "t")
    assert "hunter2" not in str(info.value)
    assert info.value.problems == [
        (
            "spec.request.url",
            "must not contain user:password@ (or a token as user name); " + guards.CREDENTIALS_ADVICE,
        )
    ]


def test_reserved_tables_follow_the_sql() -> None:
    created = set()
    for migration in migrations.load():
        created |= set(re.findall(r"CREATE TABLE IF NOT EXISTS ([a-z_]+\.[a-z_]+)", migration.sql))
    applier = Path(migrations.__file__).read_text(encoding="utf-8")
    created |= set(re.findall(r"CREATE TABLE IF NOT EXISTS (raw\.[a-z_]+) \(", applier))
    # raw.api_events is the default sink table: writing it is the point.
    assert sorted(created - {"raw.api_events"}) == sorted(guards.RESTLAKE_TABLES)
    for table in ("raw.api_events", "raw.orders", "analytics.events", "pg.events", "public.pg_events"):
        assert guards.postgres_table_problem(table) is None
        assert not re.search(guards.SYSTEM_SCHEMA, table)


@pytest.mark.parametrize("path", ["bronze/orders", "custom/orders", "lake.v2/ingest_date=2026-01-01", "a"])
def test_relative_lake_paths_are_accepted_and_resolve_under_the_root(path: str, tmp_path: Path) -> None:
    parsed = parse_source(source(sinks={"bronze": {"path": path}, "quarantine": {"path": path + "-q"}}), "t")
    assert parsed.bronze_path(str(tmp_path)) == str(tmp_path.joinpath(*path.split("/")))
    assert parsed.bronze_path("s3a://lake/root") == f"s3a://lake/root/{path}"


def test_durations_are_exact_and_bounded() -> None:
    assert Duration("1h30m").milliseconds == 5_400_000
    assert Duration("999999999d").milliseconds == 999_999_999 * 86_400_000
    assert Duration("30d").timedelta.days == 30
    with pytest.raises(ValueError, match="too long a duration"):
        Duration("1000000000s")
    parse_source(source(request={"url": "https://h/x", "timeout": "10m"}, poll={"interval": "30d"}), "t")


def test_duplicate_keys_but_merge_keys_still_override() -> None:
    text = "base: &b {a: 1, b: 2}\nmerged:\n  <<: *b\n  b: 3\n"
    assert list(strict_yaml.load_all(text)) == [{"base": {"a": 1, "b": 2}, "merged": {"a": 1, "b": 3}}]
    with pytest.raises(strict_yaml.DuplicateKeyError) as info:
        list(strict_yaml.load_all("a: 1\nb:\n  c: 1\n  c: 2\n"))
    assert (
        info.value.problem == "duplicate key 'c' (first given on line 3; YAML would keep only the last one)"
    )
    assert info.value.problem_mark is not None and info.value.problem_mark.line == 3
    assert isinstance(info.value, yaml.YAMLError)
