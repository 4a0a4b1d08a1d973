"""Kubernetes API access shared by the operator and the batch pods' status reporters.

Core, not the operator's: the Backfill Job and the quality CronJob run in the Spark image, where
the operator is not installed, and report on their resources with the same client and the same
condition vocabulary. Needs the ``kubernetes`` distribution, which restlake-operator and
restlake-jobs-spark declare.
"""
