from __future__ import annotations

from restlake.fetcher.redaction import Redactor, redact_url


def test_secret_query_values_and_passwords_are_redacted() -> None:
    url = "https://u:pw@api.example/v1/items?page=2&api_key=k123&Token=t9&mine=x"
    assert (
        redact_url(url, {"mine"})
        == "https://u:***@api.example/v1/items?page=2&api_key=***&Token=***&mine=***"
    )
    assert redact_url("https://api.example/v1/items?page=2") == "https://api.example/v1/items?page=2"


def test_redactor_scrubs_current_secret_values_longest_first() -> None:
    secrets = ["abcd", "abcdefgh"]
    redactor = Redactor(lambda: secrets)
    assert redactor.text("x abcdefgh y abcd") == "x *** y ***"
    secrets.append("rotated-token")  # values are read at call time (OAuth2 tokens rotate)
    assert redactor.text("Bearer rotated-token") == "Bearer ***"
    assert Redactor(lambda: ["ab"]).text("ab") == "ab"  # too short to be a credential
