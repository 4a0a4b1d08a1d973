"""A local driver's heap: sized from the batch cap and the machine unless the variable sets it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from restlake.jobs.spark.driver_memory import local_heap
from restlake.jobs.spark.settings import SparkSettings
from restlake.jobs.spark.sinks import COLLECT_SLICE_BYTES, collect_slices

GIB = 1024**3


def mib(size: str) -> int:
    assert size.endswith("m"), size
    return int(size[:-1])


def test_the_default_cap_gets_a_gibibyte_on_a_workstation() -> None:
    assert local_heap(100_000, machine_bytes=16 * GIB) == "1024m"


def test_the_heap_grows_with_the_cap_and_the_streams_sharing_it() -> None:
    one = mib(local_heap(100_000, machine_bytes=64 * GIB))
    bigger_cap = mib(local_heap(1_000_000, machine_bytes=64 * GIB))
    three_streams = mib(local_heap(100_000, streams=3, machine_bytes=64 * GIB))
    assert one < bigger_cap
    assert one < three_streams
    assert bigger_cap % 64 == 0 and three_streams % 64 == 0


def test_the_machine_bounds_it() -> None:
    # A quarter of the machine, and never below the floor a batch needs even on a small one.
    assert local_heap(10_000_000, machine_bytes=8 * GIB) == "2048m"
    assert local_heap(100_000, machine_bytes=2 * GIB) == "1024m"
    assert local_heap(10_000_000, machine_bytes=256 * GIB) == "8192m"


def test_an_unbounded_batch_gets_what_the_machine_can_spare() -> None:
    assert local_heap(None, machine_bytes=12 * GIB) == "3072m"


def test_the_variable_wins_over_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTLAKE_SPARK_DRIVER_MEMORY", "3G")
    assert SparkSettings().local_driver_memory(100_000) == "3g"
    monkeypatch.setenv("RESTLAKE_SPARK_DRIVER_MEMORY", "auto")
    assert SparkSettings().local_driver_memory(100_000, streams=2) == local_heap(100_000, streams=2)


@pytest.mark.parametrize("value", ["2 GB", "lots", "0g", "-1g", "1.5g"])
def test_a_size_the_jvm_would_refuse_is_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RESTLAKE_SPARK_DRIVER_MEMORY", value)
    with pytest.raises(ValidationError, match="RESTLAKE_SPARK_DRIVER_MEMORY"):
        SparkSettings()


def test_a_batch_of_small_records_is_collected_at_once() -> None:
    assert collect_slices(payload_bytes=40_000 * 1024, rows=40_000) == 1
    assert collect_slices(payload_bytes=0, rows=0) == 1


def test_a_batch_of_large_records_is_collected_in_slices_of_bounded_size() -> None:
    rows, size = 100_000, 7 * 1024
    slices = collect_slices(payload_bytes=rows * size, rows=rows)
    assert slices > 1
    assert rows * size / slices <= COLLECT_SLICE_BYTES
