-- log_event's indexes cost about nine times the row at ingest (issue 19): a GIN over
-- to_tsvector(search_text(message)) evaluated by the server per row, and seven btrees. This
-- migration keeps every search fast with indexes that cost little to write:
--
-- * Word search: `search_tokens int4[]`, the message's words (runs of ASCII letters and digits,
--   lower-cased) as 32-bit hashes, computed by the ingest writer in Rust
--   (src/model/search_tokens.rs) and GIN-indexed. 4-byte keys, no parsing on the server. The
--   Logs filter looks the searched words up the same way, then ILIKE checks each candidate.
--   Rows written by anything else (psql, the demo, a restore of an older archive) get their
--   tokens from the same function in SQL, by trigger.
-- * trace_id and user_id keep their partial btrees: BRIN bloom filters (tried, a summary per
--   16 pages) cost nothing at ingest but a trace id lookup read every page range still
--   unsummarized after a load (240 ms on 1M rows against 2 ms).
-- * (level, ts) and (service, ts) become one partial (service, level, ts) for warnings and
--   worse: a selective service + level search; other level or service filters are found
--   walking the ts index newest first.
-- * ts and (tx, id) stay btrees (pages newest first; the live tail's cursor), as does the
--   partial fingerprint index (error rows only).
--
-- Every index is made on the partitioned parent, so each existing partition gets its own and
-- every new partition (ensure_partitions, retention's re-attach) inherits them.

-- The same tokens as src/model/search_tokens.rs: ASCII-only lower-casing (translate, not
-- lower(), whose result depends on the database's locale) and ASCII letters and digits only.
CREATE FUNCTION opsdash.search_tokens(t text) RETURNS int4[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(DISTINCT ('x' || left(encode(sha256(convert_to(w, 'UTF8')), 'hex'), 8))::bit(32)::int4), '{}')
    FROM regexp_split_to_table(translate(t, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'),
                               '[^0-9a-z]+') w
   WHERE w <> ''
$$;

ALTER TABLE opsdash.log_event ADD COLUMN search_tokens int4[];

-- Fills the tokens of rows written without them, and keeps them right when a message is
-- rewritten (anonymization). The ingest writer sends them: the WHEN clause then skips the
-- function call entirely (no measurable cost at COPY).
CREATE FUNCTION opsdash.log_event_fill_tokens() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_tokens := opsdash.search_tokens(NEW.message);
    RETURN NEW;
END
$$;
CREATE TRIGGER log_event_tokens_on_insert BEFORE INSERT ON opsdash.log_event
    FOR EACH ROW WHEN (NEW.search_tokens IS NULL) EXECUTE FUNCTION opsdash.log_event_fill_tokens();
CREATE TRIGGER log_event_tokens_on_update BEFORE UPDATE OF message ON opsdash.log_event
    FOR EACH ROW WHEN (NEW.message IS DISTINCT FROM OLD.message)
    EXECUTE FUNCTION opsdash.log_event_fill_tokens();

-- Rows stored before this migration.
UPDATE opsdash.log_event SET search_tokens = opsdash.search_tokens(message)
 WHERE search_tokens IS NULL;

CREATE INDEX log_event_tokens ON opsdash.log_event USING gin (search_tokens);
CREATE INDEX log_event_service_level_ts ON opsdash.log_event (service, level, ts) WHERE level >= 3;

-- The indexes these replace (0001 left them unnamed; 0010 named the full-text one).
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
           AND (pg_get_indexdef(i.indexrelid) LIKE '%to_tsvector(%'
                OR pg_get_indexdef(i.indexrelid) ~ 'USING btree \((level, ts|service, ts)\)')
    LOOP
        EXECUTE format('DROP INDEX opsdash.%I', idx);
    END LOOP;
END
$$;
