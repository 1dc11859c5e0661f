-- The Logs tab's volume histogram (query/histogram.rs) counts lines per time bucket and level
-- over a range. The ts btree held only ts, so every counted line cost a visit to its heap
-- page: the 24 h histogram read ~330k rows' pages on 10M rows over 30 days (453 ms, aim
-- 100 ms; `cargo bench --bench history -- --rows 10000000`). Carrying the level in the ts
-- index (INCLUDE: not a key, so pages newest first and the tail use it exactly as before)
-- makes the unfiltered histogram an index-only scan of the range. Same number of indexes as
-- before: the plain ts index is replaced, not joined (ingest cost, issue 19).
--
-- Made on the partitioned parent, so every partition gets its own and new partitions
-- (ensure_partitions, retention's re-attach) inherit it.

CREATE INDEX log_event_ts_level ON opsdash.log_event (ts) INCLUDE (level);

-- The index this replaces (0001 left it unnamed).
DO $$
DECLARE
    idx text;
BEGIN
    FOR idx IN
        SELECT c.relname FROM pg_index i
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_class t ON t.oid = i.indrelid
          JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = 'opsdash' AND t.relname = 'log_event'
           AND pg_get_indexdef(i.indexrelid) ~ 'USING btree \(ts\)$'
    LOOP
        EXECUTE format('DROP INDEX opsdash.%I', idx);
    END LOOP;
END
$$;
