-- The seed table, exactly as given: one row per (source, external_id).
CREATE SCHEMA IF NOT EXISTS raw;

CREATE TABLE IF NOT EXISTS raw.api_events (
    id bigserial PRIMARY KEY,
    source text NOT NULL,
    external_id text NOT NULL,
    payload jsonb NOT NULL,
    pulled_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, external_id)
);
