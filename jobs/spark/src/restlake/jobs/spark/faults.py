"""Test-only fault injection: crash the driver at a chosen point. Inert unless its variable is set.

``RESTLAKE_FAULT_KILL_AFTER_BRONZE_BATCH=<n>`` makes the driver SIGKILL itself right after the
bronze write of micro-batch ``n`` and before its Postgres merge: the crash the exactly-once design
must survive (bronze holds the batch, Postgres and the checkpoint do not). Fault tests set it on
a job subprocess; nothing else should.

``RESTLAKE_FAULT_KILL_BEFORE_BRONZE_CONFIRM_BATCH=<n>``: right after bronze's Delta commit of
micro-batch ``n`` and before the key ledger confirms it, the one window in which only bronze itself
knows that the append happened.

``RESTLAKE_FAULT_KILL_AFTER_BRONZE_CLAIM_BATCH=<n>``: right after micro-batch ``n`` claimed its keys in
the ledger and before its bronze append: the claim holds keys that bronze never got.
"""

from __future__ import annotations

import logging
import os
import signal

from restlake.jobs.spark.settings import FaultSettings

log = logging.getLogger(__name__)

KILL_AFTER_BRONZE_ENV = "RESTLAKE_FAULT_KILL_AFTER_BRONZE_BATCH"


KILL_BEFORE_BRONZE_CONFIRM_ENV = "RESTLAKE_FAULT_KILL_BEFORE_BRONZE_CONFIRM_BATCH"
KILL_AFTER_BRONZE_CLAIM_ENV = "RESTLAKE_FAULT_KILL_AFTER_BRONZE_CLAIM_BATCH"


def after_bronze_write(batch_id: int) -> None:
    # Read at every batch, not once: the variable is the switch and costs nothing when unset.
    _kill_at(FaultSettings().kill_after_bronze_batch, batch_id, "after bronze write", KILL_AFTER_BRONZE_ENV)


def before_bronze_confirm(batch_id: int) -> None:
    _kill_at(
        FaultSettings().kill_before_bronze_confirm_batch,
        batch_id,
        "after the bronze commit, before its confirmation",
        KILL_BEFORE_BRONZE_CONFIRM_ENV,
    )


def after_bronze_claim(batch_id: int) -> None:
    _kill_at(
        FaultSettings().kill_after_bronze_claim_batch,
        batch_id,
        "after the bronze key claim, before the append",
        KILL_AFTER_BRONZE_CLAIM_ENV,
    )


def _kill_at(wanted: str | None, batch_id: int, where: str, variable: str) -> None:
    if wanted is None or wanted.strip() != str(batch_id):
        return
    log.warning("fault injection: SIGKILL %s batch_id=%s (%s)", where, batch_id, variable)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
