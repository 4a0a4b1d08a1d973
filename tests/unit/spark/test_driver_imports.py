"""What a local run's driver process imports: pandas costs it 36 MiB and only the jsonschema
fallback UDF needs it."""

import subprocess
import sys


def test_the_stream_job_and_the_local_runtime_do_not_import_pandas() -> None:
    code = (
        "import sys\n"
        "import restlake.runtime.local, restlake.jobs.spark.batch, restlake.jobs.spark.stream\n"
        "print(sorted(m for m in sys.modules if m == 'pandas' or m.startswith('pandas.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_fallback_checker_still_builds_its_udf() -> None:
    from restlake.jobs.spark.jsonschema_udf import payload_checker

    assert callable(payload_checker({"type": "object"}))
