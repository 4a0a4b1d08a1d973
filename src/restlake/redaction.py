"""The one redaction function: every log line, error, dead-letter event, lineage event, metric label
and status message restlake writes passes through :func:`redact` before it leaves the process.

It removes, in this order:

- configured secret values (and their percent-encoded forms, as they appear in URLs);
- PEM private keys, ``Bearer``/``Basic`` credentials and well-known token shapes (AWS access key
  ids, JWTs, GitHub/Slack/Google keys), wherever they appear;
- the password of ``scheme://user:password@host`` URLs;
- the value of any ``name=value`` or ``"name": "value"`` pair whose *name* looks secret: URL query
  parameters, key=value Postgres DSNs, JSON or YAML in a response-body excerpt.

Names are judged by their words (``X-Amz-Signature`` → ``x amz signature``, ``clientSecret`` →
``client secret``), so ``auth`` and ``apiKey`` are secret while ``author`` and ``keyword`` are not.
Standard library only: the fetcher, the operator, lineage and the CLI all import it.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

REDACTED = "***"

# Words that make a parameter, header or field name secret wherever they occur in it.
_SECRET_WORDS = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "jwt",
        "key",
        "passphrase",
        "passwd",
        "password",
        "pwd",
        "secret",
        "session",
        "sessionid",
        "sig",
        "signature",
        "token",
    }
)
# Substrings that make a name secret even glued to other words (``accesstoken``, ``clientsecret``).
_SECRET_PARTS = ("token", "secret", "passw", "signature", "credential", "apikey", "privatekey", "accesskey")
# Names secret only on their own: an OAuth authorization ``code``; ``country_code`` is not a secret.
_SECRET_NAMES = frozenset({"code", "pass", "sid"})

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a parameter, header or field called ``name`` should have its value hidden."""
    words = [w.lower() for w in _WORD_SPLIT.split(name.strip()) if w]
    if not words:
        return False
    joined = "".join(words)
    if joined in _SECRET_NAMES:
        return True
    return any(w in _SECRET_WORDS for w in words) or any(part in joined for part in _SECRET_PARTS)


# ---------------------------------------------------------------------------------------------------
# Patterns
# ---------------------------------------------------------------------------------------------------

_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)", re.DOTALL
)
# An HTTP credential after its scheme word: ``Authorization: Bearer abc1…``, ``Basic dXNlcjpwdw==``.
# The value must hold a digit or symbol, so prose ("token endpoint", "basic authentication") stays.
_SCHEME_CREDENTIAL = re.compile(
    r"\b(Bearer|Basic|Digest|Token|Bot)(\s+)(?=[A-Za-z]*[0-9._~+/=:-])([A-Za-z0-9._~+/=:-]{8,})",
    re.IGNORECASE,
)
# Shapes issued by well-known providers: recognisable without knowing the value.
_TOKEN_SHAPES = re.compile(
    r"\b(?:"
    r"(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}"  # AWS access key ids
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # JWTs
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub tokens
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|sk_live_[0-9A-Za-z]{16,}|sk-[A-Za-z0-9_-]{32,}"  # Stripe / OpenAI-style secret keys
    r")"
)
# ``scheme://user:password@`` in any URL, DSN or connection string.
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@?#]*:)([^\s@/?#]*)(@)")
_QUOTED_VALUE = r"\"(?:[^\"\\]|\\.)*(?:\"|$)|'(?:[^'\\]|\\.)*(?:'|$)"
# ``name=value`` (query strings, DSNs, env dumps, form bodies) and ``name: value`` / ``"name": "value"``
# (JSON, YAML, headers). The name may be quoted; the value is quoted or runs to a delimiter.
_PAIR = re.compile(
    r"(?<![A-Za-z0-9_.\-])"
    r"(?P<name>\"[A-Za-z0-9_.\- ]{1,80}\"|'[A-Za-z0-9_.\- ]{1,80}'|[A-Za-z0-9_.\-]{1,80})"
    r"(?P<sep>\s*(?:=|:(?!//))\s*)"
    rf"(?P<value>{_QUOTED_VALUE}|[^\s&;,\"'<>}}\]\)]+)"
)


# Values that are never a credential, whatever the name beside them says.
_LITERALS = frozenset({"true", "false", "null", "none", "yes", "no", "on", "off", ""})


def _pair(match: re.Match[str], public: frozenset[str] = frozenset()) -> str:
    name = match["name"].strip("\"'")
    if name.lower() in public:
        return match[0]
    value = match["value"]
    if value.strip("\"'").lower() in _LITERALS:
        # ``credentials: "true"`` (a label selector, a flag) carries no secret, and hiding it
        # turns an instruction a user must follow into a riddle.
        return match[0]
    colon = match["sep"].strip() == ":"
    # ``spec.request.auth.type: …`` is a field path in an error message, not a field and its value.
    if not is_secret_name(name) or (colon and "." in match["name"]):
        return match[0]
    if value[:1] in "\"'":
        quote_char = value[0]
        closed = quote_char if len(value) > 1 and value.endswith(quote_char) else ""
        hidden = f"{quote_char}{REDACTED}{closed}"
    else:
        hidden = REDACTED
    return f"{match['name']}{match['sep']}{hidden}"


def _scheme_credential(match: re.Match[str]) -> str:
    return f"{match[1]}{match[2]}{REDACTED}"


def _variants(secrets: Iterable[str]) -> list[str]:
    # A value with reserved characters appears percent-encoded in URLs and form bodies.
    found: set[str] = set()
    for secret in secrets:
        # Very short values would redact innocent text and are not credentials anyone issues.
        if not secret or len(secret) < 4:
            continue
        found.update({secret, quote(secret, safe=""), quote_plus(secret, safe="")})
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = (), *, public_names: Iterable[str] = ()) -> str:
    """``text`` with every secret restlake knows how to recognise replaced by ``***``.

    ``secrets`` are the configured values (tokens, keys, passwords) in force; the patterns catch the
    rest without being told. ``public_names`` are field names a spec declares harmless although
    they look secret (a pagination parameter called ``pageToken``). Idempotent, safe on any string.
    """
    if not text:
        return text
    # Longest first, so a secret that contains another is replaced whole.
    for value in _variants(secrets):
        if value in text:
            text = text.replace(value, REDACTED)
    text = _PEM.sub(REDACTED, text)
    text = _TOKEN_SHAPES.sub(REDACTED, text)
    text = _SCHEME_CREDENTIAL.sub(_scheme_credential, text)
    text = _USERINFO.sub(lambda m: f"{m[1]}{REDACTED if m[2] else ''}{m[3]}", text)
    public = frozenset(n.lower() for n in public_names)
    return _PAIR.sub(functools.partial(_pair, public=public) if public else _pair, text)


# Attributes every LogRecord has; the rest came from ``extra`` and may hold anything.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Passes every record through :func:`redact`: message, arguments and formatted traceback.

    Installed on restlake's loggers as a belt: the call sites redact what they log, this catches
    what they did not foresee (a library's exception text quoting a URL, a traceback's locals).
    """

    def __init__(self, secrets: Callable[[], Iterable[str]] = tuple) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        values = list(self._secrets())
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string must not lose the line
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = redact(message, values), None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters print ``exc_text`` when it is set; ``exc_info`` would be formatted afresh.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), values)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, values)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, values)
        for key, value in vars(record).items():
            if isinstance(value, str) and key not in _RECORD_FIELDS:
                setattr(record, key, redact(value, values))
        return True


def install_log_redaction(
    secrets: Callable[[], Iterable[str]] = tuple, prefix: str = "restlake"
) -> RedactingFilter:
    """Add a :class:`RedactingFilter` to every logger named ``prefix`` or ``prefix.*`` that exists now.

    A logger's filters only see records logged on that very logger (not its children's), hence one
    per module logger; modules create theirs at import, so call this after importing them.
    """
    log_filter = RedactingFilter(secrets)
    for name in [prefix, *logging.Logger.manager.loggerDict]:
        if name == prefix or name.startswith(prefix + "."):
            logging.getLogger(name).addFilter(log_filter)
    return log_filter


def remove_log_redaction(log_filter: logging.Filter, prefix: str = "restlake") -> None:
    for name in [prefix, *logging.Logger.manager.loggerDict]:
        if name == prefix or name.startswith(prefix + "."):
            logging.getLogger(name).removeFilter(log_filter)


def redact_log_handlers(logger: logging.Logger | None = None) -> None:
    """Add a pattern-only :class:`RedactingFilter` to the handlers of ``logger`` (the root by default).

    A handler's filters see every record it emits, whichever logger made it: the belt for the lines
    of modules imported later and of libraries.
    """
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
