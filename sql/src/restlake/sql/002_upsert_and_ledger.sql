-- What upsert and exactly-once need: the version and content of the row, where it came from,
-- the batch ledger written in the same transaction as each merge, and the fetcher's state.

-- version is the raw value at the spec's versionPath; version_ts / version_num are that value
-- parsed by restlake.postgres.merge (timestamp, else number, else neither) so that "newer" is a
-- typed comparison in SQL. Rows from before this migration have all of them NULL.
ALTER TABLE raw.api_events
    ADD COLUMN IF NOT EXISTS content_hash text,
    ADD COLUMN IF NOT EXISTS version text,
    ADD COLUMN IF NOT EXISTS version_ts timestamptz,
    ADD COLUMN IF NOT EXISTS version_num numeric,
    ADD COLUMN IF NOT EXISTS fetched_at timestamptz,
    ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS idempotency_key text,
    ADD COLUMN IF NOT EXISTS kafka_topic text,
    ADD COLUMN IF NOT EXISTS kafka_partition integer,
    ADD COLUMN IF NOT EXISTS kafka_offset bigint,
    ADD COLUMN IF NOT EXISTS ingest_query_id text,
    ADD COLUMN IF NOT EXISTS ingest_batch_id bigint;

-- One row per merged micro-batch; its presence makes a replayed batch a no-op.
CREATE TABLE IF NOT EXISTS raw.ingest_batches (
    source text NOT NULL,
    query_id text NOT NULL,
    batch_id bigint NOT NULL,
    target_table text NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    rows_in integer NOT NULL,
    rows_merged integer NOT NULL,
    PRIMARY KEY (source, query_id, batch_id)
);

-- Fetcher state (ETag, Last-Modified, cursors, watermarks), advanced only after Kafka confirmed.
CREATE TABLE IF NOT EXISTS raw.fetch_state (
    source text NOT NULL,
    key text NOT NULL,
    value jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, key)
);
