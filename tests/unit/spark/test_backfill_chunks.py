"""The backfill's chunk plan: buckets packed in order, never past chunk_rows but for one big bucket."""

from __future__ import annotations

from restlake.jobs.spark.backfill_chunks import Chunk, plan


def test_buckets_are_packed_in_order_up_to_chunk_rows() -> None:
    counts = {7: (3, 3), 0: (2, 2), 3: (4, 3), 9: (1, 1)}
    assert plan(counts, 5) == [Chunk((0,), 2, 2), Chunk((3,), 4, 3), Chunk((7, 9), 4, 4)]
    assert plan(counts, 9) == [Chunk((0, 3, 7), 9, 8), Chunk((9,), 1, 1)]
    assert plan(counts, 10) == [Chunk((0, 3, 7, 9), 10, 9)]


def test_a_bucket_larger_than_chunk_rows_is_a_chunk_of_its_own() -> None:
    # One record with 12 versions: its versions stay in one transaction.
    assert plan({1: (1, 1), 2: (12, 1), 3: (1, 1)}, 4) == [
        Chunk((1,), 1, 1),
        Chunk((2,), 12, 1),
        Chunk((3,), 1, 1),
    ]


def test_nothing_to_replay_is_no_chunk() -> None:
    assert plan({}, 100) == []
