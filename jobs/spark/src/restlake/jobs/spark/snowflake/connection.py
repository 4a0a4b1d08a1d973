"""Open a Snowflake connection for a sync: credentials resolved from their Secret references here.

Password or key pair (``spec.sinks.snowflake.auth``). A key pair's PEM is read and decrypted with
``cryptography`` (a dependency of the connector) and handed over as DER PKCS#8, the form every
connector version accepts. No value resolved here is logged, and a refused sign-in is reported
through ``restlake.redaction`` with the resolved values as the secrets to strip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from restlake.contracts.snowflake_sync import SnowflakeSyncConfig
from restlake.contracts.source.sinks import SnowflakeKeyPairAuth, SnowflakePasswordAuth
from restlake.jobs.spark.snowflake.errors import SnowflakeAuthError, SnowflakeUnavailableError
from restlake.redaction import redact

# The connector's application name, visible in Snowflake's query and login history.
APPLICATION = "restlake"


def private_key_der(pem: SecretStr, passphrase: SecretStr | None, *, where: str) -> bytes:
    """The PEM private key as unencrypted DER PKCS#8 bytes; the error names ``where``, not the key."""
    from cryptography.hazmat.primitives import serialization

    password = passphrase.get_secret_value().encode() if passphrase is not None else None
    try:
        key = serialization.load_pem_private_key(pem.get_secret_value().encode(), password=password)
    except (ValueError, TypeError) as exc:
        # The library's message says what is wrong (bad passphrase, not PEM, encrypted without one).
        raise SnowflakeAuthError(
            f"{where}: cannot read the private key ({type(exc).__name__}: {redact(str(exc))}); it must be "
            "a PEM PKCS#8 key, with passphraseSecretRef when it is encrypted"
        ) from None
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def connect_params(
    cfg: SnowflakeSyncConfig, *, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Keyword arguments of ``snowflake.connector.connect`` and the secret values in them (to redact)."""
    params: dict[str, Any] = {
        "account": cfg.account,
        "user": cfg.user,
        "database": cfg.database,
        "schema": cfg.schema_name,
        "warehouse": cfg.warehouse,
        "application": APPLICATION,
        # Explicit BEGIN/COMMIT around MERGE and ledger row; everything else commits as it runs.
        "autocommit": True,
    }
    if cfg.role is not None:
        params["role"] = cfg.role
    secrets: list[str] = []
    auth = cfg.auth
    if isinstance(auth, SnowflakePasswordAuth):
        password = auth.password_secret_ref.resolve(environ=environ)
        params["password"] = password.get_secret_value()
        secrets.append(password.get_secret_value())
    elif isinstance(auth, SnowflakeKeyPairAuth):
        pem = auth.private_key_secret_ref.resolve(environ=environ)
        phrase = (
            auth.passphrase_secret_ref.resolve(environ=environ)
            if auth.passphrase_secret_ref is not None
            else None
        )
        params["authenticator"] = "SNOWFLAKE_JWT"
        params["private_key"] = private_key_der(
            pem, phrase, where="spec.sinks.snowflake.auth.privateKeySecretRef"
        )
        secrets.append(pem.get_secret_value())
        if phrase is not None:
            secrets.append(phrase.get_secret_value())
    return params, secrets


def connect(cfg: SnowflakeSyncConfig, *, environ: Mapping[str, str] | None = None) -> Any:
    """A ``snowflake.connector`` connection (autocommit on) for ``cfg``; errors carry no credential."""
    import snowflake.connector
    from snowflake.connector import errors as sf_errors

    params, secrets = connect_params(cfg, environ=environ)
    try:
        return snowflake.connector.connect(**params)
    except sf_errors.DatabaseError as exc:
        message = redact(str(exc), secrets)
        if isinstance(exc, (sf_errors.OperationalError, sf_errors.InterfaceError)) and not _is_auth(exc):
            raise SnowflakeUnavailableError(
                f"cannot reach Snowflake account {cfg.account}: {message}"
            ) from None
        raise SnowflakeAuthError(
            f"Snowflake account {cfg.account} refused user {cfg.user}: {message}; check "
            "spec.sinks.snowflake.auth and the user's key or password"
        ) from None


def _is_auth(exc: Exception) -> bool:
    # 390100-390199: Snowflake's authentication error numbers (wrong password, JWT invalid, ...).
    errno = getattr(exc, "errno", None)
    return isinstance(errno, int) and 390100 <= errno < 390200
