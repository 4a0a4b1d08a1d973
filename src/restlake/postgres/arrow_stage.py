"""Stage a batch held as an Arrow table for ``merge_staged``: no Python object per row.

The stream job collects each micro-batch's merge columns as Arrow (one columnar transfer out of
Spark instead of a pickled Row per record); this writes them into the staging table with one CSV
COPY produced by Arrow's C++ writer. Only the distinct raw versions pass through Python, to be
parsed by the same ``parse_version`` as the row path, so "newer" means the same thing on both.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from restlake.errors import PermanentError
from restlake.postgres.merge import STAGE_COLUMNS, MergeRow, Staged, Stager, parse_version

if TYPE_CHECKING:
    import pyarrow as pa

# The columns the caller's table must hold; version_ts and version_num are derived here.
ARROW_COLUMNS = (
    "source",
    "external_id",
    "idempotency_key",
    "content_hash",
    "version",
    "fetched_at",
    "payload",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)
# Rows per CSV chunk handed to COPY: bounds the extra memory to a few MB whatever the batch size.
_CHUNK_ROWS = 8192

_COPY_CSV = sql.SQL("COPY restlake_stage ({}) FROM STDIN WITH (FORMAT csv)").format(
    sql.SQL(", ").join(sql.Identifier(c) for c in STAGE_COLUMNS)
)


def rows_table(rows: Iterable[MergeRow]) -> pa.Table:
    """``MergeRow`` values as the Arrow table the stream job collects from Spark (tests, benchmarks)."""
    import pyarrow as pa

    listed = list(rows)
    types = {
        "fetched_at": pa.timestamp("us", tz="UTC"),
        "kafka_partition": pa.int32(),
        "kafka_offset": pa.int64(),
    }
    return pa.table(
        {c: pa.array([getattr(r, c) for r in listed], types.get(c, pa.string())) for c in ARROW_COLUMNS}
    )


def arrow_stager(rows: pa.Table, *, source: str, batch_id: int) -> Stager:
    """A ``Stager`` that COPYs ``rows`` (the ``ARROW_COLUMNS``, any order, more allowed)."""

    def stage(conn: psycopg.Connection) -> Staged:
        table = _stage_table(rows, source=source, batch_id=batch_id)
        import pyarrow.csv as pacsv

        options = pacsv.WriteOptions(include_header=False)
        with conn.cursor() as cur, cur.copy(_COPY_CSV) as copy:
            for chunk in table.to_batches(max_chunksize=_CHUNK_ROWS):
                buffer = io.BytesIO()
                pacsv.write_csv(chunk, buffer, options)
                copy.write(buffer.getbuffer())
        import pyarrow.compute as pc

        return Staged(table.num_rows, pc.count_distinct(table["external_id"], mode="only_valid").as_py())

    return stage


def _stage_table(rows: pa.Table, *, source: str, batch_id: int) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = [c for c in ARROW_COLUMNS if c not in rows.column_names]
    if missing:
        raise PermanentError(f"batch {batch_id} of source {source}: merge columns missing: {missing}")
    sources = rows["source"]
    other = pc.filter(rows, pc.invert(pc.fill_null(pc.equal(sources, source), False)))
    if other.num_rows:
        first = other.slice(0, 1).to_pylist()[0]
        raise PermanentError(
            f"batch {batch_id} of source {source} holds a record of source {first['source']!r} "
            f"(external_id {first['external_id']!r}); one batch merges one source"
        )
    versions = rows["version"].cast(pa.string())
    distinct = pc.unique(versions)
    parsed = [parse_version(v) for v in distinct.to_pylist()]
    ts_of = pa.array([p.ts.isoformat() if p.ts is not None else None for p in parsed], pa.string())
    num_of = pa.array([str(p.num) if p.num is not None else None for p in parsed], pa.string())
    where = pc.index_in(versions, value_set=distinct)
    derived = {
        "version_ts": pc.take(ts_of, where),
        "version_num": pc.take(num_of, where),
        "version": versions,
    }
    return pa.table({name: derived[name] if name in derived else rows[name] for name in STAGE_COLUMNS})
