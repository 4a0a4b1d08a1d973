"""dlt's rest_api source → Postgres over the demo API; run by case 5 with bench/.venv-dlt's Python.

Kept free of restlake imports: it runs in dlt's own venv. Usage:
``python dlt_pipeline.py BASE_URL DSN DATASET PIPELINES_DIR`` → prints one JSON line of counts.
"""

from __future__ import annotations

import json
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import dlt
from dlt.sources.rest_api import rest_api_source


def main() -> None:
    base_url, dsn, dataset, pipelines_dir = sys.argv[1:5]
    started = time.monotonic()
    parts = urlsplit(dsn)
    if parts.password is None and parts.username:
        # dlt insists on a password; the bench stack's Postgres trusts loopback and ignores it.
        dsn = urlunsplit(parts._replace(netloc=f"{parts.username}:unused@{parts.hostname}:{parts.port}"))
    source = rest_api_source(
        {
            "client": {"base_url": base_url, "paginator": {"type": "header_link"}},
            # merge on the primary key: one row per record, the same contract as restlake's upsert.
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [
                {"name": "items", "endpoint": {"path": "v1/link/items", "params": {"per_page": 1000}}}
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name=dataset,
        destination=dlt.destinations.postgres(credentials=dsn),
        dataset_name=dataset,
        pipelines_dir=pipelines_dir,
    )
    pipeline.run(source)
    with pipeline.sql_client() as client:
        rows = client.execute_sql(f"SELECT count(*) FROM {dataset}.items")[0][0]
    print(json.dumps({"rows": rows, "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    main()
