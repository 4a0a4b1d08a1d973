"""Test-only fault injection: crash the driver at a chosen point. Inert unless its variable is set.

``RESTLAKE_FAULT_KILL_AFTER_BRONZE_BATCH=<n>`` makes the driver SIGKILL itself right after the
bronze write of micro-batch ``n`` and before its Postgres merge: the crash the exactly-once design
must survive (bronze holds the batch, Postgres and the checkpoint do not). Fault tests set it on
a job subprocess; nothing else should.
"""

from __future__ import annotations

import logging
import os
import signal

from restlake.jobs.spark.settings import FaultSettings

log = logging.getLogger(__name__)

KILL_AFTER_BRONZE_ENV = "RESTLAKE_FAULT_KILL_AFTER_BRONZE_BATCH"


def after_bronze_write(batch_id: int) -> None:
    # Read at every batch, not once: the variable is the switch and costs nothing when unset.
    wanted = FaultSettings().kill_after_bronze_batch
    if wanted is None or wanted.strip() != str(batch_id):
        return
    log.warning(
        "fault injection: SIGKILL after bronze write batch_id=%s (%s)", batch_id, KILL_AFTER_BRONZE_ENV
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
