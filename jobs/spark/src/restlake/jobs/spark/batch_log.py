"""Reading back the stream job's ``batch done`` log lines (written by ``batch.BatchProcessor``).

The job times its own steps (validate, quality, each sink and the sinks' own steps) and logs them
with every batch as ``steps=name:seconds …``. The reader sits beside the writer so that the format
has one home; the drain benchmark uses it to say where a batch's time goes.
"""

from __future__ import annotations

import re
import statistics

_BATCH_DONE = re.compile(r"batch done .*? batch_id=(\d+) .*?duration_s=([\d.]+) steps=(.*)$")


def step_medians(log_text: str, *, skip_first: bool = True) -> dict[str, float]:
    """Median seconds per step over the ``batch done`` lines of ``log_text``, plus ``batch`` (the whole).

    ``skip_first`` leaves out batch 0, which carries the JVM's warm-up and one-off work.
    """
    per_step: dict[str, list[float]] = {}
    for line in log_text.splitlines():
        found = _BATCH_DONE.search(line)
        if found is None or (skip_first and int(found[1]) == 0):
            continue
        per_step.setdefault("batch", []).append(float(found[2]))
        for part in found[3].split():
            name, _, seconds = part.partition(":")
            per_step.setdefault(name, []).append(float(seconds))
    return {name: round(statistics.median(values), 2) for name, values in per_step.items()}
