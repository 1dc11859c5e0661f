-- Exact de-duplication and a summary that proves nothing was lost (issue 12, points 1, 8, 10).
--
-- A folded row keeps its first time in `ts` and the time of its latest repeat in `last_seen`
-- (NULL for a row that was never folded: its only time is `ts`).
ALTER TABLE opsdash.log_event ADD COLUMN last_seen timestamptz;

-- Per flush, the event accounting of `opsdash ingest`:
--   lines = events + folded + rejected + blank
-- where an event is a line stored as rows of its own (a request-like line is one event with a
-- log row and a request row, counted per table in log_rows/request_rows; `rows` stays their sum),
-- `old_rows` the rows already outside their table's retention period when they were stored.
ALTER TABLE opsdash.ingest_stat
    ADD COLUMN lines        bigint NOT NULL DEFAULT 0,
    ADD COLUMN events       bigint NOT NULL DEFAULT 0,
    ADD COLUMN blank        bigint NOT NULL DEFAULT 0,
    ADD COLUMN log_rows     bigint NOT NULL DEFAULT 0,
    ADD COLUMN request_rows bigint NOT NULL DEFAULT 0,
    ADD COLUMN old_rows     bigint NOT NULL DEFAULT 0;
