"""Spark Structured Streaming job: Kafka to bronze Delta, quarantine and Postgres."""
