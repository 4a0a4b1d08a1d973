"""Map psycopg failures to restlake's retry types by exception class and SQLSTATE, never by text."""

from __future__ import annotations

import psycopg

from restlake.errors import PermanentError, RestlakeError, TransientError

# SQLSTATE classes (first two characters) where the same statement can succeed on a retry.
_TRANSIENT_CLASSES = frozenset(
    {
        "08",  # connection exception
        "40",  # transaction rollback: serialization failure, deadlock
        "53",  # insufficient resources: too many connections, out of memory, disk full
        "57",  # operator intervention: admin/crash shutdown, cannot connect now, query canceled
        "58",  # system error: I/O error
    }
)
_TRANSIENT_STATES = frozenset({"55P03"})  # lock_not_available (lock_timeout)


def is_transient(exc: psycopg.Error) -> bool:
    state = exc.sqlstate
    if state is None:
        # No SQLSTATE: the client never got a server answer (refused, reset, timed out, closed).
        return isinstance(exc, psycopg.OperationalError)
    return is_transient_state(state)


def is_transient_state(state: str) -> bool:
    """Whether a statement that failed with SQLSTATE ``state`` may succeed when retried (any client)."""
    return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES


def translate(exc: psycopg.Error, doing: str) -> RestlakeError:
    """A TransientError or PermanentError that says what was tried, without the DSN.

    A client-side connection error's text can echo the host, socket path or user of the DSN, so
    only its class name is kept; a server error keeps its SQLSTATE and primary message.
    """
    kind = type(exc).__name__
    if exc.sqlstate is None:
        message = f"postgres error while {doing}: {kind} (no server response)"
    else:
        primary = exc.diag.message_primary or ""
        message = f"postgres error while {doing}: {kind} SQLSTATE {exc.sqlstate}: {primary}"
    if is_transient(exc):
        return TransientError(message)
    return PermanentError(message)
