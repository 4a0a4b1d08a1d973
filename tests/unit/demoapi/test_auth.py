"""Bearer, API key and OAuth2 client-credentials."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from restlake.demoapi import AuthConfig, DatasetConfig, DemoApiConfig, running_demo_api
from restlake.demoapi.auth import Authenticator, OAuthError

from .demoapi_http import http_get

PAGE = "/v1/offset/items?limit=2"


def _post_form(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _config(**auth: Any) -> DemoApiConfig:
    return DemoApiConfig(dataset=DatasetConfig(initial_records=5), auth=AuthConfig(**auth))


def test_bearer() -> None:
    with running_demo_api(_config(bearer_token="s3cret")) as api:
        status, headers, body = http_get(api.url(PAGE))
        assert status == 401 and json.loads(body)["error"] == "unauthorized"
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert http_get(api.url(PAGE), {"Authorization": "Bearer wrong"})[0] == 401
        status, _, body = http_get(api.url(PAGE), {"Authorization": "Bearer s3cret"})
        assert status == 200 and json.loads(body)["total"] == 5
        assert http_get(api.url("/healthz"))[0] == 200
        assert api.state()["unauthorized"] == 2


def test_api_key_header_or_query() -> None:
    with running_demo_api(_config(api_key_name="X-Api-Key", api_key_value="k1")) as api:
        assert http_get(api.url(PAGE))[0] == 401
        assert http_get(api.url(PAGE), {"X-Api-Key": "k2"})[0] == 401
        assert http_get(api.url(PAGE), {"X-Api-Key": "k1"})[0] == 200
        assert http_get(api.url(PAGE + "&X-Api-Key=k1"))[0] == 200


def test_oauth_client_credentials() -> None:
    with running_demo_api(
        _config(oauth_client_id="cid", oauth_client_secret="csecret", token_ttl_seconds=900)
    ) as api:
        token_url = api.url("/oauth/token")
        assert http_get(api.url(PAGE))[0] == 401
        status, token = _post_form(
            token_url, {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret"}
        )
        assert status == 200 and token["token_type"] == "bearer" and token["expires_in"] == 900
        assert http_get(api.url(PAGE), {"Authorization": f"Bearer {token['access_token']}"})[0] == 200
        basic = base64.b64encode(b"cid:csecret").decode()
        status, token2 = _post_form(
            token_url, {"grant_type": "client_credentials"}, {"Authorization": f"Basic {basic}"}
        )
        assert status == 200 and token2["access_token"] != token["access_token"]
        status, error = _post_form(
            token_url, {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "nope"}
        )
        assert (status, error["error"]) == (401, "invalid_client")
        status, error = _post_form(
            token_url, {"grant_type": "password", "client_id": "cid", "client_secret": "x"}
        )
        assert (status, error["error"]) == (400, "unsupported_grant_type")
        assert api.state()["oauth_tokens_issued"] == 2


def test_oauth_disabled_is_404() -> None:
    with running_demo_api(_config()) as api:
        status, _ = _post_form(api.url("/oauth/token"), {"grant_type": "client_credentials"})
        assert status == 404


def test_issued_tokens_expire() -> None:
    now = [0.0]
    auth = Authenticator(
        AuthConfig(oauth_client_id="a", oauth_client_secret="b", token_ttl_seconds=60),
        monotonic=lambda: now[0],
    )
    token = auth.issue({"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"}, None)
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert auth.check(headers, {})
    now[0] = 61.0
    assert not auth.check(headers, {})
    with pytest.raises(OAuthError):
        auth.issue({"grant_type": "client_credentials", "client_id": "a"}, None)
