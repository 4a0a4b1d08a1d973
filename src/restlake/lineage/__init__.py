"""OpenLineage run events of the fetcher and the stream job, sent through a configured transport."""

from restlake.lineage.emitter import LineageEmitter
from restlake.lineage.fetcher import FetcherRun, fetcher_job_name
from restlake.lineage.settings import LineageSettings
from restlake.lineage.stream import BatchCounts, StreamTargets, emit_stream_batch, stream_job_name

__all__ = [
    "BatchCounts",
    "FetcherRun",
    "LineageEmitter",
    "LineageSettings",
    "StreamTargets",
    "emit_stream_batch",
    "fetcher_job_name",
    "stream_job_name",
]
