"""The one exception root of restlake; retry policy is carried by the type, never by the message."""

from __future__ import annotations


class RestlakeError(Exception):
    """Base of every error restlake raises on purpose."""


class TransientError(RestlakeError):
    """Worth retrying: the same call may succeed later (timeouts, 5xx, a restarting broker).

    ``retry_after`` is the delay the remote side asked for, in seconds, when it said one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(RestlakeError):
    """Retrying cannot help until a person changes something (a bad spec, a 401, a missing table)."""


class ConfigError(PermanentError):
    """A setting is missing or invalid; the message names the setting and where it was looked for."""


class SpecError(PermanentError):
    """An IngestionSource spec is invalid; ``problems`` holds one ``(field_path, message)`` per fault."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {path}: {msg}" for path, msg in problems)
        super().__init__(f"invalid IngestionSource {source}:\n{lines}")


class StackError(RestlakeError):
    """The local stack (Kafka, Postgres, Spark jars) could not be started, found or stopped."""


class BackfillRangeError(ConfigError):
    """A backfill's range cannot be replayed as given; ``option`` is the CLI option to change.

    Raised before anything is merged: mixed Kafka and bronze options, a missing bronze table, a
    version past the latest or before the oldest the table still keeps, a time before it existed.
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
