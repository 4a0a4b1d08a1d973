"""Run events of a one-shot job over known datasets: maintenance, backfill, any flow around them.

The stream job sends one START/COMPLETE pair per micro-batch; a one-shot job sends START when it
begins and COMPLETE (with the rows each output got) or FAIL when it ends, under one run id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from restlake.lineage.datasets import output_statistics
from restlake.lineage.emitter import LineageEmitter
from restlake.lineage.events import EventType, new_run_id, run_event


@dataclass
class JobRun:
    """One run of ``job_name``; outputs are keyed by a short name so ``complete`` can count each."""

    emitter: LineageEmitter
    job_name: str
    inputs: Sequence[dict[str, Any]] = ()
    outputs: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    run_id: str = field(default_factory=new_run_id)

    def event(
        self, event_type: EventType, *, rows: Mapping[str, int] | None = None, error: str | None = None
    ) -> dict[str, Any]:
        outputs = []
        for name, dataset in self.outputs.items():
            out = dict(dataset)
            if rows is not None and name in rows:
                out["outputFacets"] = {"outputStatistics": output_statistics(rows[name])}
            outputs.append(out)
        return run_event(
            event_type,
            run_id=self.run_id,
            job_namespace=self.emitter.namespace,
            job_name=self.job_name,
            inputs=list(self.inputs),
            outputs=outputs,
            error=error,
        )

    def start(self) -> bool:
        return self.emitter.emit(self.event("START"))

    def complete(self, rows: Mapping[str, int] | None = None) -> bool:
        return self.emitter.emit(self.event("COMPLETE", rows=rows))

    def fail(self, error: str) -> bool:
        return self.emitter.emit(self.event("FAIL", error=error))
