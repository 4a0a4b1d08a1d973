"""The regular expressions of the contracts, and the words an error uses for each.

Each is in the common subset of Python's ``re`` and RE2, so the CRD (whose patterns the API server
checks with RE2) refuses exactly the strings the models refuse.
"""

from __future__ import annotations

from restlake.contracts import guards

# It names a Kafka topic, Kubernetes objects and label values, hence a DNS-1123 label (≤ 63).
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
PG_TABLE = r"^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$"
KAFKA_TOPIC = r"^[a-zA-Z0-9._-]+$"
COLUMN = r"^[a-z_][a-z0-9_]*$"
HTTP_URL = r"^https?://[^\s/?#]+[^\s]*$"
CIDR = r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"
# Kubernetes resource.Quantity, as in the built-in OpenAPI schemas.
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_CRON_FIELD = r"[0-9A-Za-z*?/,\-]+"
CRON = rf"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|{_CRON_FIELD}( +{_CRON_FIELD}){{4}})$"
GX_EXPECTATION = r"^expect_[a-z0-9_]+$"
# metav1.Condition's reason: CamelCase, one word.
CONDITION_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
# A window's first value (incremental.start): an ISO 8601 date or timestamp (with or without a zone)
# or a whole epoch number.
WINDOW_START = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?"
    r"(Z|z|[+-][0-9]{2}:?[0-9]{2})?)?|[0-9]{1,16})$"
)
# `{name}` in request.url: a URL template variable filled from a parent record. The class is spelled
# with brackets, not backslashes, so the same expression serves Python and CEL (RE2).
URL_VARIABLE = r"[{][A-Za-z_][A-Za-z0-9_]*[}]"
BIND_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Snowflake's unquoted identifiers (database, schema, table, warehouse, role): the sync quotes
# nothing, so a name is always the upper-cased one Snowflake resolves it to.
SNOWFLAKE_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_$]*$"
# <orgname>-<account_name>, or a legacy locator with its region (xy12345.eu-west-1.aws).
SNOWFLAKE_ACCOUNT = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
SNOWFLAKE_USER = r"^[A-Za-z0-9_][A-Za-z0-9_.@$-]*$"
# Spark's memory notation (spark.executor.memory).
SPARK_MEMORY = r"^[1-9][0-9]*[kmgtKMGT]?$"

# Human wording for patterns, so an error does not make users read a regular expression.
PATTERN_HINTS = {
    DNS1123_LABEL: "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending "
    "with a letter or digit)",
    DNS1123_SUBDOMAIN: "must be a Kubernetes object name (lowercase letters, digits, '-' and '.')",
    SECRET_KEY: "must be a Secret key (letters, digits, '-', '_' and '.')",
    PG_TABLE: "must be a lowercase schema.table identifier such as raw.api_events",
    KAFKA_TOPIC: "must be a Kafka topic name (letters, digits, '.', '_' and '-')",
    COLUMN: "must be a lowercase column name (letters, digits and '_')",
    HTTP_URL: "must be an http:// or https:// URL",
    CIDR: "must be an IP range in CIDR notation such as 203.0.113.0/24",
    QUANTITY: "must be a Kubernetes quantity such as 500m, 2, 512Mi or 1Gi",
    CONDITION_REASON: "must be one CamelCase word",
    SNOWFLAKE_IDENTIFIER: "must be an unquoted Snowflake identifier (letters, digits, '_' and '$', "
    "not starting with a digit)",
    SNOWFLAKE_ACCOUNT: "must be a Snowflake account identifier such as myorg-myaccount",
    SNOWFLAKE_USER: "must be a Snowflake user name (letters, digits, '_', '.', '@', '$' and '-')",
    CRON: "must be a cron schedule of 5 fields (such as '*/15 * * * *') or @hourly, @daily, ...",
    GX_EXPECTATION: "must be a Great Expectations expectation type in snake case, such as "
    "expect_column_values_to_not_be_null",
    WINDOW_START: "must be an ISO 8601 date or timestamp such as 2024-01-01T00:00:00Z, or a whole epoch "
    "number (seconds, or milliseconds from 12 digits on)",
    BIND_NAME: "must be a URL template variable name (letters, digits and '_', not first a digit)",
    guards.LAKE_PATH: "must be a path relative to the lake root: segments of letters, digits, '.', '_', "
    "'=' and '-' separated by '/', each starting with a letter or digit",
}
