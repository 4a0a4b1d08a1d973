"""The heap of a local-mode Spark driver when ``RESTLAKE_SPARK_DRIVER_MEMORY`` is ``auto``.

In local mode the driver's JVM is also the executor, so its heap holds everything a micro-batch
needs at once. Most of that no longer grows with the batch: a Spark task reads at most
``MAX_RECORDS_PER_TASK`` records, the batch's cache spills to disk in column batches of 1,000
rows, and the Postgres sink collects at most ``COLLECT_SLICE_BYTES`` at a time. What is left is
Spark's own share and a little per record. Measured on 2 cores, `restlake run` of 1M records of
1 KB: the former fixed 2 GiB (G1) peaked at 2.6 GiB resident in 159 s, 1 GiB (parallel GC) at
1.8 GiB in 139 s; and 1 GiB, like 768 MiB, holds a batch of 60,000 records of 7 KB.
"""

from __future__ import annotations

import os

MIB = 1024 * 1024
# Spark's reserved 300 MiB, its execution and storage share, the Delta and Kafka clients.
_BASE_MIB = 512
# Two Postgres collect slices in flight (JVM and Python), Arrow and Parquet writer buffers.
_WORKING_MIB = 384
# What stays per record: cached rows not yet spilled, the batch's key and offset bookkeeping.
_PER_RECORD_BYTES = 1024
_FLOOR_MIB = 1024
# Never more than this share of the machine, nor more than this, however large the batch cap.
_MACHINE_SHARE = 4
_CEILING_MIB = 8192


def physical_memory() -> int:
    """Bytes of RAM of this machine (the cgroup limit is not consulted: local mode is a workstation)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def local_heap(records_per_batch: int | None, *, streams: int = 1, machine_bytes: int | None = None) -> str:
    """``spark.driver.memory`` for ``streams`` queries whose micro-batches hold at most
    ``records_per_batch`` records (None: unbounded, so as much as the machine can spare)."""
    machine_mib = (machine_bytes if machine_bytes is not None else physical_memory()) // MIB
    ceiling = max(_FLOOR_MIB, min(_CEILING_MIB, machine_mib // _MACHINE_SHARE))
    if records_per_batch is None:
        return f"{ceiling}m"
    per_batch = records_per_batch * _PER_RECORD_BYTES // MIB
    wanted = _BASE_MIB + max(1, streams) * (_WORKING_MIB + per_batch)
    # Whole 64 MiB steps: the figure in logs and `ps` reads as chosen, not computed.
    rounded = -(-wanted // 64) * 64
    return f"{min(ceiling, max(_FLOOR_MIB, rounded))}m"
