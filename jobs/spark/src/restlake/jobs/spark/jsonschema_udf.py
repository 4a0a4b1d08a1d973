"""The jsonschema check as a pandas UDF, for the payloads the compiled check cannot judge.

Its own module so that importing the stream job does not import pandas: the driver imports this
only for a batch that needs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

# A schema violation message is for people; cap it so one huge payload cannot bloat quarantine.
MAX_REASON_CHARS = 500


def payload_checker(json_schema: dict[str, Any]) -> Callable[[Column], Column]:
    """A pandas UDF: payload JSON text → None when it satisfies ``json_schema``, else why not.

    The closure imports what it needs and captures only the schema text, so it is pickled by
    value and runs on executors that have jsonschema but not necessarily restlake.
    """
    schema_text = json.dumps(json_schema)

    @F.pandas_udf(T.StringType())  # type: ignore[call-overload]
    def check(payloads: pd.Series) -> pd.Series:
        import json as json_

        from jsonschema.exceptions import best_match
        from jsonschema.validators import validator_for

        schema = json_.loads(schema_text)
        validator = validator_for(schema)(schema)

        def one(text: str | None) -> str | None:
            if text is None:
                return None
            try:
                document = json_.loads(text)
            except ValueError:
                return "schema_violation: $: payload is not JSON"
            error = best_match(validator.iter_errors(document))
            if error is None:
                return None
            return f"schema_violation: {error.json_path}: {error.message}"[:MAX_REASON_CHARS]

        return payloads.map(one)

    return check
