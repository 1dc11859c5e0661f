-- Full-text search finds words inside paths and dotted/underscored names. PostgreSQL's parser
-- keeps `/api/users/42/orders`, `db.pool.size` or `user_id=7` as single tokens, so `orders`,
-- `pool` or `user_id`'s parts were not found through the index (only by `*word*`, a scan).
-- Messages are indexed after `/ . _ =` become spaces; the Logs filter (src/filter/sql.rs) puts
-- the searched text through the same function, and ILIKE on the candidates still matches
-- exactly what was typed.
--
-- Plain SQL and IMMUTABLE so the planner inlines it: the index expression and the query's
-- expression are then the same and the index is used.
CREATE FUNCTION opsdash.search_text(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT translate(t, '/._=', '    ') $$;

CREATE INDEX log_event_search ON opsdash.log_event
    USING gin (to_tsvector('simple', opsdash.search_text(message))) WITH (fastupdate = on);

-- The index it replaces (0001 left it unnamed): every insert paid for both.
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
           AND pg_get_indexdef(i.indexrelid) LIKE '%to_tsvector(%'
           AND pg_get_indexdef(i.indexrelid) NOT LIKE '%search_text%'
    LOOP
        EXECUTE format('DROP INDEX opsdash.%I', idx);
    END LOOP;
END
$$;
