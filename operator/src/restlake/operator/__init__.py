"""Operator: kopf reconciler for IngestionSource resources."""
