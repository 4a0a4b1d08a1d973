"""Credentials for Snowflake: resolved from Secret references, key pairs handed over as DER, never in
an error. (Sign-in itself is not checked: no account is reachable and the emulator accepts anything.)"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from restlake.jobs.spark.snowflake.connection import connect_params
from restlake.jobs.spark.snowflake.errors import SnowflakeAuthError

from ....snowflake_emulator import PASSWORD_ENV, config

KEY_REF = {"name": "snowflake", "key": "rsa-key.p8"}
PHRASE_REF = {"name": "snowflake", "key": "passphrase"}
PASSPHRASE = "phrase-never-shown"


def pem(passphrase: str | None) -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    text = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return text.decode(), der


def test_password_auth_resolves_the_secret_and_lists_it_for_redaction() -> None:
    params, secrets = connect_params(config("orders", "/b"), environ=PASSWORD_ENV)
    assert params["password"] == PASSWORD_ENV["RESTLAKE_SECRET_SNOWFLAKE_PASSWORD"]
    assert params["account"] == "myorg-emulator" and params["schema"] == "RAW"
    assert secrets == [PASSWORD_ENV["RESTLAKE_SECRET_SNOWFLAKE_PASSWORD"]]
    assert "role" not in params


def test_an_encrypted_key_pair_becomes_der_with_the_jwt_authenticator() -> None:
    text, der = pem(PASSPHRASE)
    cfg = config(
        "orders",
        "/b",
        role="LOADER",
        auth={"type": "keyPair", "privateKeySecretRef": KEY_REF, "passphraseSecretRef": PHRASE_REF},
    )
    env = {"RESTLAKE_SECRET_SNOWFLAKE_RSA_KEY_P8": text, "RESTLAKE_SECRET_SNOWFLAKE_PASSPHRASE": PASSPHRASE}
    params, secrets = connect_params(cfg, environ=env)
    assert params["authenticator"] == "SNOWFLAKE_JWT"
    assert params["private_key"] == der
    assert params["role"] == "LOADER"
    assert "password" not in params
    assert secrets == [text, PASSPHRASE]


def test_a_wrong_passphrase_is_refused_without_the_key_or_phrase() -> None:
    text, _ = pem(PASSPHRASE)
    cfg = config(
        "orders",
        "/b",
        auth={"type": "keyPair", "privateKeySecretRef": KEY_REF, "passphraseSecretRef": PHRASE_REF},
    )
    env = {"RESTLAKE_SECRET_SNOWFLAKE_RSA_KEY_P8": text, "RESTLAKE_SECRET_SNOWFLAKE_PASSPHRASE": "wrong"}
    with pytest.raises(
        SnowflakeAuthError, match="privateKeySecretRef: cannot read the private key"
    ) as caught:
        connect_params(cfg, environ=env)
    assert "wrong" not in str(caught.value) and "PRIVATE KEY" not in str(caught.value)


def test_a_missing_secret_names_where_it_was_looked_for(tmp_path: object) -> None:
    with pytest.raises(Exception, match="RESTLAKE_SECRET_SNOWFLAKE_PASSWORD"):
        connect_params(config("orders", "/b"), environ={"RESTLAKE_SECRETS_DIR": str(tmp_path)})
