"""The tag each bronze append leaves in its Delta commit, read back to tell whether a batch landed.

A micro-batch replayed after a crash between its bronze append and the ledger's confirmation must
not append its rows twice. A Delta commit is atomic, so the question is only whether the earlier
attempt's commit exists: each append carries ``userMetadata`` naming its query and batch, and the
replay reads the newest commits of the table's log, a few small files read on the driver, rather
than scanning bronze (measured on a cold driver: 0.1 s against 7-9 s for the scan, which was most
of the way back after a SIGKILL).

The walk stops at the first commit of the same query with an earlier batch id: batches of a query
run one after another, so an append of this batch cannot be older than that commit. It passes
over appends tagged by other queries and over commits that add no rows (compaction, properties);
an untagged commit that may add rows (written before the tag existed, or by another writer) could
be the one sought, so there, as where the log cannot answer at all (a cleaned-up log, a commit
file whose first action is not its commitInfo, an internal API that moved), it says it does not
know, and the caller scans.
"""

from __future__ import annotations

import logging
import re
from enum import Enum

from py4j.protocol import Py4JError
from pyspark.sql import SparkSession

from restlake.jobs.spark.delta_log import newest_commit_infos

log = logging.getLogger(__name__)

_TAG = "restlake bronze append query_id={query_id} batch_id={batch_id}"
_TAG_RE = re.compile(r"^restlake bronze append query_id=(\S+) batch_id=(\d+)$")
# Commits read back at most: a batch's append is normally among the last few (compactions and
# other sources' appends to a shared table come between); beyond this the table is scanned.
MAX_COMMITS_READ = 200
# Operations that add no row (Delta's commitInfo.operation), passed over when untagged.
_ADD_NO_ROWS = frozenset(
    {
        "CREATE TABLE",
        "OPTIMIZE",
        "SET TBLPROPERTIES",
        "UNSET TBLPROPERTIES",
        "VACUUM START",
        "VACUUM END",
        "UPGRADE PROTOCOL",
        "ADD COLUMNS",
        "CHANGE COLUMN",
    }
)


class Landed(Enum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


def tag(query_id: str, batch_id: int) -> str:
    """The ``userMetadata`` of the append of ``batch_id`` of ``query_id``."""
    return _TAG.format(query_id=query_id, batch_id=batch_id)


def batch_landed(
    spark: SparkSession,
    path: str,
    *,
    query_id: str,
    batch_id: int,
    version: int,
    limit: int = MAX_COMMITS_READ,
) -> Landed:
    """Whether a commit of the table at ``path`` (newest ``version``) holds the append of ``batch_id``
    of ``query_id``; UNKNOWN when its log cannot tell within ``limit`` commits."""
    try:
        for info in newest_commit_infos(spark, path, version=version, limit=limit):
            found = _TAG_RE.match(str(info.get("userMetadata") or ""))
            if found is None:
                if info.get("operation") not in _ADD_NO_ROWS:
                    return Landed.UNKNOWN
                if info["version"] == 0:
                    return Landed.NO  # the table's creation: no append of the batch before it
                continue
            if found.group(1) != query_id:
                continue
            seen = int(found.group(2))
            if seen == batch_id:
                return Landed.YES
            if seen < batch_id:
                return Landed.NO
        return Landed.UNKNOWN
    except (Py4JError, ValueError) as exc:
        log.info("reading bronze's commit tags failed (%s); scanning the table instead", type(exc).__name__)
        return Landed.UNKNOWN
