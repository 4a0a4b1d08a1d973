"""Batch and streaming jobs."""
