-- What `opsdash demo` has written, as time windows: a backfill slice or a live session each get
-- a row in the same transaction as their rows, so a second run writes only the windows that are
-- not covered yet (running the demo twice never doubles the history).
CREATE TABLE opsdash.demo_coverage (
    id           bigserial PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('backfill', 'live')),
    covered_from timestamptz NOT NULL,
    covered_to   timestamptz NOT NULL,
    -- inbound requests written for the window
    requests     bigint      NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (covered_from <= covered_to)
);
CREATE INDEX ON opsdash.demo_coverage (covered_to);
