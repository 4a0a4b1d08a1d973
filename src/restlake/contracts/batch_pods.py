"""What the operator hands the Backfill Job and quality CronJob pods, and what they hand back.

The operator renders these pods (``restlake.operator.render``); the batch commands inside them
(``restlake backfill run``, ``restlake quality run``) read the environment below to know which
object to report on (``restlake.runtime.pod_reporters``) and leave their JSON summary in the
termination message, which the operator reads back from the pod's status.
"""

from __future__ import annotations

ENV_BACKFILL_NAME = "RESTLAKE_BACKFILL_NAME"
ENV_BACKFILL_NAMESPACE = "RESTLAKE_BACKFILL_NAMESPACE"
ENV_SOURCE_NAME = "RESTLAKE_SOURCE_NAME"
ENV_SOURCE_NAMESPACE = "RESTLAKE_SOURCE_NAMESPACE"

# Kubernetes' default terminationMessagePath, set explicitly on the pods all the same.
TERMINATION_LOG = "/dev/termination-log"
