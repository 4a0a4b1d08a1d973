"""Fetcher: async REST pollers that publish envelopes to Kafka."""
