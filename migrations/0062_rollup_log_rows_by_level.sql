-- Log rows per minute and level in the KPI rollup, for the Logs tab's volume histogram.
--
-- With no filter the histogram counts every log row of its range per bucket and level. Even as
-- an index-only scan of the ts index carrying the level (0060), a day of 330k rows took
-- ~110-124 ms on 10M rows over 30 days (aim 100 ms; `cargo bench --bench history -- --rows
-- 10000000`): the time is in reading and hashing every row. A day is only 1,440 minutes, and
-- the rollup job already reads each minute's log rows to count the error rows and lines of
-- `rollup_kpi_1m`, so it counts them per level in the same pass (query/rollup.rs) and the
-- histogram sums minutes (query/histogram.rs says which minutes it may trust).
--
-- Rows, not lines (repeat_count): the histogram shows what the list holds, one entry per row.

ALTER TABLE opsdash.rollup_kpi_1m
    ADD COLUMN trace_rows bigint NOT NULL DEFAULT 0,
    ADD COLUMN debug_rows bigint NOT NULL DEFAULT 0,
    ADD COLUMN info_rows  bigint NOT NULL DEFAULT 0,
    ADD COLUMN warn_rows  bigint NOT NULL DEFAULT 0,
    ADD COLUMN error_rows bigint NOT NULL DEFAULT 0,
    ADD COLUMN fatal_rows bigint NOT NULL DEFAULT 0;

-- Minutes already rolled get their counts now; otherwise the histogram would read zeros for
-- them until a late row made the job rebuild them. The levels map as model::Level::from_i16
-- does (below trace is trace, above fatal is fatal).
UPDATE opsdash.rollup_kpi_1m k
   SET trace_rows = l.trace_rows, debug_rows = l.debug_rows, info_rows = l.info_rows,
       warn_rows = l.warn_rows, error_rows = l.error_rows, fatal_rows = l.fatal_rows
  FROM (SELECT date_bin('1 minute', ts, timestamptz '1970-01-01 00:00:00+00') AS bucket,
               count(*) FILTER (WHERE level <= 0) AS trace_rows,
               count(*) FILTER (WHERE level = 1) AS debug_rows,
               count(*) FILTER (WHERE level = 2) AS info_rows,
               count(*) FILTER (WHERE level = 3) AS warn_rows,
               count(*) FILTER (WHERE level = 4) AS error_rows,
               count(*) FILTER (WHERE level >= 5) AS fatal_rows
          FROM opsdash.log_event
         WHERE ts >= (SELECT min(bucket) FROM opsdash.rollup_kpi_1m)
         GROUP BY 1) l
 WHERE k.bucket = l.bucket;
