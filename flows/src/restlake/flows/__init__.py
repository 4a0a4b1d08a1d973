"""Prefect 3 flows over restlake's one-shot work: maintenance, the quality checkpoint, backfills."""
