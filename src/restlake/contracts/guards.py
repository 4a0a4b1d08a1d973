"""Rules that keep a spec from carrying credentials in clear or writing outside its own data.

Each rule exists twice: a Python check the pydantic model runs (``restlake validate``, the
operator, ``restlake run``) and a CEL twin or schema bound the CRD carries, so ``kubectl apply``
refuses the same spec. The regular expressions are written in the common subset of Python's ``re``
and RE2 (CEL's ``matches``): no look-around, no backslashes, flags only at the start.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from pydantic.json_schema import JsonDict, JsonValue

# A parameter or header name that, by itself, says its value is a credential. Two groups:
# words that mean a secret wherever they end a name (x-api-key, clientSecret, X-Amz-Signature), and
# names that are only secret as a whole, because `token` or `key` end harmless names too
# (pageToken, nextToken, sort_key are cursors and options, not credentials).
_SECRET_SUFFIX = (
    "api[-_.]?key|apikey|access[-_.]?key|private[-_.]?key|secret[-_.]?key|subscription[-_.]?key"
    "|secret|passw(or)?d|signature|credentials?"
)
_SECRET_WHOLE = (
    "key|sig|pwd|auth|authorization|proxy-authorization|cookie"
    "|(x-)?((amz-security|access|auth|api|bearer|id|refresh|session|private|oauth|client)[-_.]?)?token"
)
SECRET_NAME = rf"(?i)^(.*({_SECRET_SUFFIX})|{_SECRET_WHOLE})$"
# The same names as a query parameter inside a URL (the CEL twin sees only the raw string).
SECRET_QUERY_IN_URL = rf"(?i)[?&]([^&=#]*({_SECRET_SUFFIX})|{_SECRET_WHOLE})([=&#]|$)"
USERINFO_IN_URL = "^[^:/?#]+://[^/?#]*@"

_SECRET_NAME_RE = re.compile(SECRET_NAME)

# Bounds on strings that CEL rules read: the API server estimates a rule's cost from them.
URL_MAX_LENGTH = 2048
NAME_MAX_LENGTH = 256
VALUE_MAX_LENGTH = 4096
MAP_MAX_ENTRIES = 64

CREDENTIALS_ADVICE = "put credentials in spec.request.auth, which reads them from a Secret"


def url_credentials_problem(url: str) -> str | None:
    """Why ``url`` carries a credential (user info or a secret-looking query parameter), else None.

    The message never repeats the URL: it holds the very secret it is about.
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return f"must not contain user:password@ (or a token as user name); {CREDENTIALS_ADVICE}"
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_NAME_RE.match(name):
            return f"query parameter {name!r} looks like a credential; {CREDENTIALS_ADVICE}"
    return None


def is_secret_name(name: str) -> bool:
    """Whether a query parameter or header name says its value is a credential."""
    return _SECRET_NAME_RE.match(name) is not None


def url_rules(field: str) -> list[JsonDict]:
    """CEL rules on the object holding URL ``field``, the twins of ``url_credentials_problem``.

    They sit on the object, not on the string: for a string the API server puts the refused value
    in its error, and here the value is the secret.
    """
    return [
        {
            "rule": f"!has(self.{field}) || !self.{field}.matches('{USERINFO_IN_URL}')",
            "message": f"must not contain user:password@; {CREDENTIALS_ADVICE}",
            "fieldPath": f".{field}",
        },
        {
            "rule": f"!has(self.{field}) || !self.{field}.matches('{SECRET_QUERY_IN_URL}')",
            "message": f"has a query parameter that looks like a credential; {CREDENTIALS_ADVICE}",
            "fieldPath": f".{field}",
        },
    ]


def name_map_rule(what: str) -> JsonDict:
    """CEL rule on a map of query parameters or headers: no key may name a credential."""
    return {
        "rule": f"self.all(k, !k.matches('{SECRET_NAME}'))",
        "message": f"a {what} name looks like a credential; {CREDENTIALS_ADVICE}",
    }


# ---------------------------------------------------------------------------------------------------
# Table locations under the lake root
# ---------------------------------------------------------------------------------------------------

# Segments start with a letter or digit: no `..`, no hidden folders and no `_checkpoints`,
# `_delta_log` and the like, which belong to restlake and Delta.
LAKE_PATH = r"^[A-Za-z0-9][A-Za-z0-9._=-]*(/[A-Za-z0-9][A-Za-z0-9._=-]*)*$"
LAKE_PATH_MAX_LENGTH = 512
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def lake_path_problem(path: str) -> str | None:
    """Why ``path`` would put a table outside the lake root, else None (the charset is a pattern)."""
    if _SCHEME.match(path):
        return (
            "must be a path relative to the lake root, not a URL or another bucket "
            "(the lake root decides scheme and bucket)"
        )
    if path.startswith(("/", "\\", "~")):
        return "must be a path relative to the lake root, not an absolute path"
    if ".." in re.split(r"[/\\]", path):
        return "must not climb out of the lake root with '..'"
    return None


LAKE_PATH_RULES: list[JsonValue] = [
    {
        "rule": "!self.matches('^[A-Za-z][A-Za-z0-9+.-]*:')",
        "message": "must be a path relative to the lake root, not a URL or another bucket",
    },
    {
        "rule": "!self.startsWith('/') && !self.startsWith('~')",
        "message": "must be a path relative to the lake root, not an absolute path",
    },
    {
        "rule": "!self.matches('(^|/)[.][.](/|$)')",
        "message": "must not climb out of the lake root with '..'",
    },
]


# ---------------------------------------------------------------------------------------------------
# Postgres tables a sink must not write
# ---------------------------------------------------------------------------------------------------

# restlake's own bookkeeping (the migrations of sql/ and their own table); a test keeps this list in step.
RESTLAKE_TABLES = (
    "raw.ingest_batches",
    "raw.fetch_state",
    "raw.bronze_keys",
    "raw.bronze_batches",
    "raw.bronze_key_sources",
    "raw.backfill_ranges",
    "raw.schema_migrations",
)
SYSTEM_SCHEMA = "^(pg_[a-z0-9_]*|information_schema)[.]"
_SYSTEM_SCHEMA_RE = re.compile(SYSTEM_SCHEMA)


def postgres_table_problem(table: str) -> str | None:
    """Why a sink must not write ``table`` (a system catalog or restlake's own state), else None."""
    if _SYSTEM_SCHEMA_RE.match(table):
        schema = table.split(".", 1)[0]
        return f"{schema!r} is a PostgreSQL system schema; use a schema of your own such as raw"
    if table in RESTLAKE_TABLES:
        return f"{table} is restlake's own bookkeeping table; use another table such as raw.api_events"
    return None


POSTGRES_TABLE_RULES: list[JsonValue] = [
    {
        "rule": f"!self.matches('{SYSTEM_SCHEMA}')",
        "message": "must not be in a PostgreSQL system schema (pg_*, information_schema)",
    },
    {
        "rule": f"!(self in [{', '.join(repr(t) for t in RESTLAKE_TABLES)}])",
        "message": "must not be one of restlake's own bookkeeping tables",
    },
]


# ---------------------------------------------------------------------------------------------------
# Duration bounds
# ---------------------------------------------------------------------------------------------------

# The CRD's twin of Duration's total: the sum of the parts in milliseconds. CEL's duration() knows
# no days, hence the arithmetic.
_CEL_MILLISECONDS = (
    "self.findAll('[0-9]+[a-z]+').map(p, int(p.findAll('[0-9]+')[0]) * "
    "(p.endsWith('ms') ? 1 : p.endsWith('s') ? 1000 : p.endsWith('m') ? 60000 : "
    "p.endsWith('h') ? 3600000 : 86400000)).sum()"
)


def cel_milliseconds(field: str | None = None) -> str:
    """The CEL expression for a duration string's total in milliseconds: of ``self`` or ``self.<field>``."""
    return _CEL_MILLISECONDS if field is None else _CEL_MILLISECONDS.replace("self.", f"self.{field}.")


def duration_rules(
    minimum: tuple[int, str] | None, maximum: tuple[int, str], *, exclusive_minimum: bool = False
) -> list[JsonValue]:
    """CEL rules bounding a duration string; each bound is (milliseconds, as written in messages)."""
    rules: list[JsonValue] = []
    if minimum is not None:
        low, word = minimum
        comparison, wording = (">", "greater than") if exclusive_minimum else (">=", "at least")
        rules.append(
            {"rule": f"{_CEL_MILLISECONDS} {comparison} {low}", "message": f"must be {wording} {word}"}
        )
    high, word = maximum
    rules.append({"rule": f"{_CEL_MILLISECONDS} <= {high}", "message": f"must be at most {word}"})
    return rules
