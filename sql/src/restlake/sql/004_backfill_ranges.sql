-- The range each backfill run read, as it resolved it when it first started: an open end ("latest":
-- a topic's end offsets, a bronze table's newest version) is pinned here, so that the run resumed
-- under the same run id (a retried Backfill Job pod, `restlake backfill --run-id`) cuts the same
-- rows into the same chunks while the topic or the table keeps growing.
-- Written by restlake.postgres.backfill_ranges.
CREATE TABLE IF NOT EXISTS raw.backfill_ranges (
    source text NOT NULL,
    query_id text NOT NULL,
    pinned jsonb NOT NULL,
    pinned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, query_id)
);
