"""Stage a batch held as an Arrow table for ``merge_staged``: no Python object per row.

The stream job collects each micro-batch's merge columns as Arrow (one columnar transfer out of
Spark instead of a pickled Row per record); this writes them into the staging table with one
COPY in Postgres's text format, built by Arrow compute kernels. Only the distinct raw versions
pass through Python, to be parsed by the same ``parse_version`` as the row path, so "newer" means
the same thing on both.

Text, not CSV: CSV must quote a JSON payload and double each of its quotes, and Postgres took a
quarter longer to parse it (100,000 rows of ~1 KB: 1.1-1.6 s against 0.9-1.1 s, measured on 2
cores); the merge as a whole was 3-15 % faster. Text needs only backslash, newline, carriage
return and tab escaped, and a column holds one of them rarely enough that it is looked for first.
"""

from __future__ import annotations

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
# Rows per chunk handed to COPY: bounds the extra memory to a few MB whatever the batch size.
CHUNK_ROWS = 8192

_COPY_TEXT = sql.SQL("COPY restlake_stage ({}) FROM STDIN").format(
    sql.SQL(", ").join(sql.Identifier(c) for c in STAGE_COLUMNS)
)
# COPY text format: these characters in a value are written as these escapes, backslash first.
_ESCAPES = (("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_NULL = "\\N"


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
        import pyarrow.compute as pc

        table = _stage_table(rows, source=source, batch_id=batch_id)
        with conn.cursor() as cur, cur.copy(_COPY_TEXT) as copy:
            for chunk in table.to_batches(max_chunksize=CHUNK_ROWS):
                copy.write(copy_text(chunk))

        return Staged(table.num_rows, pc.count_distinct(table["external_id"], mode="only_valid").as_py())

    return stage


def copy_text(chunk: pa.RecordBatch) -> memoryview:
    """``chunk``'s rows in COPY's text format: tab between values, newline after each row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def text(value: str) -> pa.Scalar:
        return pa.scalar(value, pa.large_string())

    fields = [_text_field(column) for column in chunk.columns]
    lines = pc.binary_join_element_wise(*fields, text("\t"), null_handling="replace", null_replacement=_NULL)
    return _values(pc.binary_join_element_wise(lines, text("\n"), text("")))


def _text_field(column: pa.Array) -> pa.Array:
    """``column`` as COPY text values: 64-bit offsets (a chunk of large records may pass 2 GB),
    escaped where a value holds a character that COPY reads as a delimiter or an escape."""
    import pyarrow as pa
    import pyarrow.compute as pc

    is_text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    text = column.cast(pa.large_string())
    if not is_text:
        return text  # numbers and timestamps: nothing to escape
    data = _values(text).tobytes()
    for char, escaped in _ESCAPES:
        if char.encode() in data:
            text = pc.replace_substring(text, char, escaped)
    return text


def _values(strings: pa.LargeStringArray) -> memoryview:
    """The bytes of a large_string array's values, end to end, without a copy."""
    import pyarrow as pa

    _, offsets_buffer, values_buffer = strings.buffers()
    if values_buffer is None or len(strings) == 0:
        return memoryview(b"")
    # The offsets of this (possibly sliced) array's own rows.
    rows = len(strings) + 1
    offsets = pa.Array.from_buffers(pa.int64(), rows, [None, offsets_buffer], offset=strings.offset)
    return memoryview(values_buffer)[offsets[0].as_py() : offsets[-1].as_py()]


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
    ts_of, num_of = parsed_versions(distinct)
    where = pc.index_in(versions, value_set=distinct)
    derived = {
        "version_ts": pc.take(ts_of, where),
        "version_num": pc.take(num_of, where),
        "version": versions,
    }
    return pa.table({name: derived[name] if name in derived else rows[name] for name in STAGE_COLUMNS})


def parsed_versions(versions: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each of ``versions`` read by ``parse_version`` (Python, once a value: call it on distinct
    ones), as COPY text: the timestamp's ISO form and the number's digits, or null."""
    import pyarrow as pa

    parsed = [parse_version(v) for v in versions.to_pylist()]
    ts = pa.array([p.ts.isoformat() if p.ts is not None else None for p in parsed], pa.string())
    num = pa.array([str(p.num) if p.num is not None else None for p in parsed], pa.string())
    return ts, num
