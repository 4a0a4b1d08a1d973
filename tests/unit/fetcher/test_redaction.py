from __future__ import annotations

from restlake.fetcher.deadletter import EXCERPT_BYTES, body_reference
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


def test_urls_hide_secret_looking_parameters_but_not_the_specs_paging_parameters() -> None:
    url = "https://api.example/v1?pageToken=p2&auth=a&X-Amz-Signature=s&q=x"
    assert redact_url(url) == "https://api.example/v1?pageToken=***&auth=***&X-Amz-Signature=***&q=x"
    redactor = Redactor(lambda: ["k-123456"], {"auth"}, public_params={"pageToken", "auth"})
    # A parameter auth puts a credential in stays hidden even when the spec calls it a paging one.
    assert redactor.url(url) == "https://api.example/v1?pageToken=p2&auth=***&X-Amz-Signature=***&q=x"
    assert redactor.text("pageToken=p2 key=k-123456") == "pageToken=p2 key=***"


def test_a_dead_letter_excerpt_is_redacted_before_it_is_cut() -> None:
    # The value starts before the cut and ends after it: cut first, its head would survive.
    filler = "x" * (EXCERPT_BYTES - 40)
    body = f'{{"pad": "{filler}", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}}'.encode()
    sha, size, excerpt = body_reference(body)
    assert size == len(body) and sha is not None and excerpt is not None
    assert "wJal" in body[:EXCERPT_BYTES].decode()  # what a cut-then-redact excerpt would keep
    assert excerpt == f'{{"pad": "{filler}", "SecretAccessKey": "***"}}'[:EXCERPT_BYTES]
    secret = "echoed-canary-1234"
    _, _, echoed = body_reference(f"<html>{secret}</html>".encode(), Redactor(lambda: [secret]).text)
    assert echoed == "<html>***</html>"
