"""Resolve a secret reference (Kubernetes Secret name + key) to its value, as a ``SecretStr``.

In a pod the operator mounts each referenced Secret at ``$RESTLAKE_SECRETS_DIR/<name>/``, one file per
key (the standard Secret volume layout). Locally an environment variable wins, so a developer can run
``RESTLAKE_SECRET_GITHUB_TOKEN_TOKEN=... restlake run -f github-issues.yaml`` without writing files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from restlake.errors import ConfigError
from restlake.settings import StackSettings

SECRETS_DIR_ENV = "RESTLAKE_SECRETS_DIR"
ENV_PREFIX = "RESTLAKE_SECRET_"


def secret_env_var(name: str, key: str) -> str:
    """``RESTLAKE_SECRET_<NAME>_<KEY>``, upper-cased, every non-alphanumeric character turned into ``_``."""
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", f"{name}_{key}".upper())


def secrets_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$RESTLAKE_SECRETS_DIR``, else ``<state dir>/secrets`` (``.restlake/secrets`` by default)."""
    env = os.environ if environ is None else environ
    if env.get(SECRETS_DIR_ENV):
        return Path(env[SECRETS_DIR_ENV])
    return StackSettings().state_dir / "secrets"


def resolve_secret(
    name: str,
    key: str,
    *,
    directory: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> SecretStr:
    """The value of key ``key`` of Secret ``name``: from the environment variable, else the mounted file.

    Raises ``ConfigError`` naming every place looked in; the error never contains the value.
    """
    env = os.environ if environ is None else environ
    var = secret_env_var(name, key)
    if var in env:
        return SecretStr(env[var])
    path = (directory if directory is not None else secrets_dir(env)) / name / key
    try:
        # `echo token > file` and `kubectl create secret --from-file` both tend to leave a newline.
        return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ConfigError(
            f"secret {name}/{key} not found: looked in environment variable {var} and file {path}"
        ) from None
