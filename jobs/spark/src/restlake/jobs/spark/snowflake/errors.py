"""The Snowflake sink's errors: what to change, never a credential."""

from __future__ import annotations

from restlake.errors import ConfigError, PermanentError, TransientError


class SnowflakeAuthError(ConfigError):
    """The credentials could not be read or used: a missing Secret, a bad key, a refused sign-in."""


class SnowflakeLoadError(PermanentError):
    """A load was refused by Snowflake (SQL, permissions, a missing warehouse); retrying will not help."""


class SnowflakeUnavailableError(TransientError):
    """Snowflake could not be reached or dropped the session; the load rolled back and may be retried."""
