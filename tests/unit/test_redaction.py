"""The one redaction function: a table of what it must hide and what it must leave alone."""

from __future__ import annotations

import io
import logging

import pytest

from restlake.redaction import (
    RedactingFilter,
    install_log_redaction,
    is_secret_name,
    redact,
    redact_log_handlers,
    remove_log_redaction,
)

CONFIGURED = "c0nfigured-Value/+x"

HIDDEN = [
    # (input, expected)
    (f"token {CONFIGURED} here", "token *** here"),
    ("https://api.example/x?k=c0nfigured-Value%2F%2Bx", "https://api.example/x?k=***"),  # percent-encoded
    ("https://u:pw0rd@api.example/v1", "https://u:***@api.example/v1"),
    (
        "postgresql://restlake:s3cr3t@db:5432/lake?sslmode=require",
        "postgresql://restlake:***@db:5432/lake?sslmode=require",
    ),
    ("https://api.example/x?auth=abc&page=2", "https://api.example/x?auth=***&page=2"),
    ("https://api.example/x?AUTH=abc", "https://api.example/x?AUTH=***"),
    (
        "https://b.s3.example/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKID%2F2026&X-Amz-Signature=ab12",
        "https://b.s3.example/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=***&X-Amz-Signature=***",
    ),
    ("https://api.example/x?X-Amz-Security-Token=FwoG", "https://api.example/x?X-Amz-Security-Token=***"),
    ("?access_token=a&refresh_token=b&id_token=c", "?access_token=***&refresh_token=***&id_token=***"),
    ("?client_secret=a&clientSecret=b&appsecret=c", "?client_secret=***&clientSecret=***&appsecret=***"),
    ("?apiKey=a&api-key=b&x_api_key=c&key=d", "?apiKey=***&api-key=***&x_api_key=***&key=***"),
    ("?password=a&passwd=b&pwd=c&db_password=d", "?password=***&passwd=***&pwd=***&db_password=***"),
    ("?sig=a&signature=b&code=c&session_id=d", "?sig=***&signature=***&code=***&session_id=***"),
    (
        "host=db port=5432 user=restlake password=s3cr3t dbname=lake",
        "host=db port=5432 user=restlake password=*** dbname=lake",
    ),
    ("host=db password='two words' dbname=lake", "host=db password='***' dbname=lake"),
    ("PASSWORD = s3cr3t", "PASSWORD = ***"),
    (
        '{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG", "Expiration": "2030"}',
        '{"SecretAccessKey": "***", "Expiration": "2030"}',
    ),
    ('{"Token":"IQoJb3JpZ2luX2VjEJr"}', '{"Token":"***"}'),
    ('{"client_secret": "abc', '{"client_secret": "***'),  # an excerpt cut inside the value
    ("{'password': 'x y'}", "{'password': '***'}"),
    ("db_password: hunter22", "db_password: ***"),
    ("AccessKeyId=ASIAABCDEFGHIJKLMNOP", "AccessKeyId=***"),
    ("key id AKIAIOSFODNN7EXAMPLE in prose", "key id *** in prose"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sflKxwRJSMeKKF2QT4fwpM ok", "jwt *** ok"),
    ("Authorization: Bearer abc.def-123", "Authorization: *** ***"),
    ("sent Bearer 8f1b2c3d4e5f", "sent Bearer ***"),
    ("sent Basic dXNlcjpwYXNzd29yZA==", "sent Basic ***"),
    ("ghp_0123456789abcdefghijABCDEFGHIJ012345 leaked", "*** leaked"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "***"),
]

KEPT = [
    "https://api.example/v1/items?page=2&limit=100&since=2026-01-01T00:00:00Z",
    "https://api.example/x?author=bob&keyword=cats&country_code=fr&monkey=1",
    "spec.request.auth.type: unsupported auth type 'digest'",
    "retrying page after HTTP 503 from http://127.0.0.1:8080/items (attempt 1/5, waiting 0.50s)",
    '{"id": 7, "name": "widget", "updated_at": "2026-01-01"}',
    "fetch pass complete: 3 pages, 0 not modified, 120 records",
    "auth://host/path",
    "token endpoint http://127.0.0.1:8080/token refused client 'restlake' (HTTP 401)",
    "Basic authentication failed; Bearer tokens expire",
    "ab",  # configured values this short are not redacted (they are no credential)
    # A flag beside a secret-looking name is no secret: the operator tells users to set this label.
    'not labelled restlake.io/source-credentials: "true"',
    "kubectl label secret s restlake.io/source-credentials=true",
    "auth_enabled=false token=null",
]


@pytest.mark.parametrize(("text", "expected"), HIDDEN)
def test_redact_hides(text: str, expected: str) -> None:
    assert redact(text, [CONFIGURED, "ab"]) == expected
    assert redact(expected, [CONFIGURED]) == expected  # idempotent


@pytest.mark.parametrize("text", KEPT)
def test_redact_leaves_innocent_text_alone(text: str) -> None:
    assert redact(text, [CONFIGURED, "ab"]) == text


def test_public_names_keep_a_pagination_parameter_that_looks_secret() -> None:
    url = "https://api.example/x?pageToken=p2&api_key=k"
    assert redact(url) == "https://api.example/x?pageToken=***&api_key=***"
    assert redact(url, public_names=["pagetoken"]) == "https://api.example/x?pageToken=p2&api_key=***"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("X-API-Key", True),
        ("Authorization", True),
        ("nextPageToken", True),
        ("X-Amz-Signature", True),
        ("clientSecret", True),
        ("code", True),
        ("sid", True),
        ("author", False),
        ("keyword", False),
        ("country_code", False),
        ("client_id", False),
        ("page", False),
        ("", False),
    ],
)
def test_secret_names_are_judged_by_their_words(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_the_log_filter_redacts_message_arguments_extras_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("restlake.test_redaction_filter")
    log_filter = install_log_redaction(lambda: [CONFIGURED], prefix="restlake.test_redaction_filter")
    caplog.set_level(logging.INFO)
    try:
        try:
            raise ValueError(f"fetching https://api.example/x?api_key=plain-{CONFIGURED}")
        except ValueError:
            logger.exception("crashed on %s", CONFIGURED, extra={"url": f"https://u:{CONFIGURED}@h/"})
    finally:
        remove_log_redaction(log_filter, prefix="restlake.test_redaction_filter")
    logger.info("after removal %s", CONFIGURED)
    (record, after) = caplog.records
    assert record.getMessage() == "crashed on ***"
    assert record.url == "https://u:***@h/"  # type: ignore[attr-defined]
    assert "ValueError: fetching https://api.example/x?api_key=***" in caplog.text
    assert caplog.text.count(CONFIGURED) == 1 and after.getMessage().endswith(CONFIGURED)


def test_the_log_filter_keeps_a_line_whose_arguments_do_not_fit_its_format() -> None:
    record = logging.LogRecord("restlake.x", logging.INFO, __file__, 1, "%d items", ("token=abc",), None)
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "%d items ('token=***',)"


def test_handler_redaction_covers_every_logger_that_reaches_the_handler() -> None:

    stream = io.StringIO()
    owner = logging.getLogger("restlake.test_redaction_handler")
    owner.propagate = False
    handler = logging.StreamHandler(stream)
    owner.addHandler(handler)
    try:
        redact_log_handlers(owner)
        redact_log_handlers(owner)  # idempotent: one filter per handler
        logging.getLogger("restlake.test_redaction_handler.child").warning("dsn host=db password=pw1234")
    finally:
        owner.removeHandler(handler)
    assert len(handler.filters) == 1
    assert stream.getvalue() == "dsn host=db password=***\n"
