-- The bronze key ledger: which record versions (idempotency keys) each bronze Delta table holds.
-- A micro-batch learns which of its keys are new with index lookups, at a cost that grows with the
-- batch and not with the table's history (an anti-join against bronze reads every key it holds).
-- Written by restlake.postgres.bronze_keys; the protocol is described there.

-- table_id is the Delta table's own id (metaData.id), so a table deleted and created again at the
-- same path starts with no keys. key is md5(idempotency_key) as a uuid: 16 bytes, one index probe.
CREATE TABLE IF NOT EXISTS raw.bronze_keys (
    table_id uuid NOT NULL,
    key uuid NOT NULL,
    query_id text NOT NULL,
    batch_id bigint NOT NULL,
    PRIMARY KEY (table_id, key)
);

-- Batches whose bronze append committed. A key claimed by a batch missing here may not be in the
-- table (its writer died between the claim and the Delta commit).
CREATE TABLE IF NOT EXISTS raw.bronze_batches (
    table_id uuid NOT NULL,
    query_id text NOT NULL,
    batch_id bigint NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_id, query_id, batch_id)
);

-- (table, source) pairs whose rows written before the ledger existed have been copied into it.
CREATE TABLE IF NOT EXISTS raw.bronze_key_sources (
    table_id uuid NOT NULL,
    source text NOT NULL,
    seeded_at timestamptz NOT NULL DEFAULT now(),
    seeded_keys bigint NOT NULL,
    PRIMARY KEY (table_id, source)
);
