-- log_event's search indexes are built per day once the day is over (issue 19). Writing a row
-- into the word GIN (search_tokens), the attrs GIN (jsonb_path_ops) and the trace and user
-- btrees cost most of its insert: `cargo bench --bench ingest` ran at 0.17-0.22x a COPY into an
-- unindexed copy of the table. Those four indexes now live on each day's partition, made by
-- the worker's `log_seal` job (src/worker/seal.rs) once the day has ended and stopped receiving
-- rows, in one transaction (`opsdash.log_seal`). Until then the day's rows are found through
-- `opsdash.log_block`: per writing transaction, a Bloom filter of its rows' words, trace ids,
-- user ids and attribute values (src/model/log_block.rs), which a search tests to pick the
-- transactions whose rows it reads through the (tx, id) index (src/query/log_block.rs).
--
-- Invariant: every row of a partition without its search indexes belongs to a transaction
-- with a log_block row. The writer and the demo add theirs with their COPY; anything else
-- that inserts rows without tokens (psql, a tool) gets a block with no filter (always read)
-- from the tokens trigger; an archive restore and log compaction build the day's indexes in
-- their own transaction (their rows keep their old transaction ids). A row whose searchable
-- fields are rewritten (anonymization) makes its block's filter void.

CREATE TABLE opsdash.log_block (
    tx       xid8        NOT NULL,
    -- The block's rows: the transaction's rows with ids in [first_id, last_id].
    first_id bigint      NOT NULL,
    last_id  bigint      NOT NULL,
    min_ts   timestamptz NOT NULL,
    max_ts timestamptz NOT NULL,
    rows   integer     NOT NULL,
    -- NULL: the rows' keys are unknown; every search reads them.
    bloom  bytea,
    at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tx, first_id)
);
-- Filters are random bits: compressing them only costs time.
ALTER TABLE opsdash.log_block ALTER COLUMN bloom SET STORAGE EXTERNAL;
COMMENT ON TABLE opsdash.log_block IS
  'Per writing transaction, a Bloom filter of its log rows'' search keys, for the days whose search indexes are not built yet (issue 19).';

-- Records the blocks of the rows the calling transaction has just written (a COPY numbers its
-- rows in order: the k-th row written has the k-th of the ids it took), never another
-- transaction's: a filter describes the caller's own rows. `counts[i]` rows make block i, in the
-- order written; the rows were stamped in [lo, hi] (to find their partitions). Owner's rights,
-- so the ingest role, which cannot read log_event, can number its rows; it learns only their
-- ids. Noting a block again (same first id) widens it and drops its filter.
CREATE FUNCTION opsdash.log_block_note(lo timestamptz, hi timestamptz, counts int4[],
                                       los timestamptz[], his timestamptz[], filters bytea[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, opsdash, pg_temp AS $$
DECLARE
    total int8 := (SELECT coalesce(sum(c), 0) FROM unnest(counts) c);
    ids   int8[];
    at    int4 := 0;
BEGIN
    ids := ARRAY(SELECT id FROM (SELECT id FROM opsdash.log_event
                                   WHERE tx = pg_current_xact_id() AND ts >= lo AND ts <= hi
                                   ORDER BY id DESC LIMIT total) t
                  ORDER BY id);
    IF coalesce(array_length(ids, 1), 0) < total THEN
        RAISE EXCEPTION 'log_block_note: % rows written, % described', coalesce(array_length(ids, 1), 0), total;
    END IF;
    FOR i IN 1 .. coalesce(array_length(counts, 1), 0) LOOP
        PERFORM opsdash.log_block_put(ids[at + 1], ids[at + counts[i]], los[i], his[i], counts[i],
                                      filters[i]);
        at := at + counts[i];
    END LOOP;
END
$$;

-- One block of the calling transaction (the trigger below notes whole transactions this way).
CREATE FUNCTION opsdash.log_block_put(first_id int8, last_id int8, lo timestamptz,
                                      hi timestamptz, n int4, filter bytea)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, opsdash, pg_temp AS $$
    INSERT INTO opsdash.log_block AS b (tx, first_id, last_id, min_ts, max_ts, rows, bloom)
    VALUES (pg_current_xact_id(), first_id, last_id, lo, hi, n, filter)
    ON CONFLICT (tx, first_id) DO UPDATE
       SET last_id = greatest(b.last_id, excluded.last_id),
           min_ts = least(b.min_ts, excluded.min_ts),
           max_ts = greatest(b.max_ts, excluded.max_ts),
           rows = b.rows + excluded.rows,
           bloom = NULL
$$;

-- Whether a block may hold the searched keys: `keys` in groups (`groups[i]` is key i's group,
-- equal groups adjacent); the block passes when every group has a key whose PROBES bits are
-- all set (src/model/log_block.rs builds the filters and computes the keys). The filter is
-- copied once into a local (a TOASTed argument would be fetched again by every get_bit).
CREATE FUNCTION opsdash.log_block_match(filter bytea, keys int8[], groups int4[]) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    b       bytea;
    m       int8;
    h1      int8;
    h2      int8;
    cur     int4;
    met     boolean := true;
    hit     boolean;
BEGIN
    IF filter IS NULL THEN
        RETURN true;
    END IF;
    b := filter || '\x'::bytea;
    m := length(b)::int8 * 8;
    FOR i IN 1 .. coalesce(array_length(keys, 1), 0) LOOP
        IF cur IS DISTINCT FROM groups[i] THEN
            IF NOT met THEN
                RETURN false;
            END IF;
            cur := groups[i];
            met := false;
        END IF;
        CONTINUE WHEN met OR m = 0;
        h1 := keys[i] & 4294967295;
        h2 := ((keys[i] >> 32) & 4294967295) | 1;
        hit := true;
        FOR j IN 0 .. 5 LOOP
            IF get_bit(b, (h1 + j * h2) & (m - 1)) = 0 THEN
                hit := false;
                EXIT;
            END IF;
        END LOOP;
        met := hit;
    END LOOP;
    RETURN met;
END
$$;

-- The four deferred indexes of one table (a log_event partition, or the table a compaction is
-- about to swap in), named after it. One list: the seal, a restore and a compaction build the
-- same ones.
CREATE FUNCTION opsdash.log_search_indexes(t text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, opsdash, pg_temp AS $$
BEGIN
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON opsdash.%I USING gin (search_tokens)',
                   t || '_tokens', t);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON opsdash.%I USING gin (attrs jsonb_path_ops)',
                   t || '_attrs', t);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON opsdash.%I (trace_id) WHERE trace_id IS NOT NULL',
                   t || '_trace', t);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON opsdash.%I (user_id, ts) WHERE user_id IS NOT NULL',
                   t || '_user', t);
END
$$;
REVOKE EXECUTE ON FUNCTION opsdash.log_search_indexes(text) FROM PUBLIC;

-- Seals one log_event partition: its search indexes, built in the caller's transaction (the
-- partition takes no rows meanwhile: the job seals only days that have stopped receiving
-- them, under a lock_timeout). Sealed means `<partition>_tokens` exists.
CREATE FUNCTION opsdash.log_seal(part text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, opsdash, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE i.inhparent = 'opsdash.log_event'::regclass
                     AND n.nspname = 'opsdash' AND c.relname = part) THEN
        RAISE EXCEPTION 'opsdash.% is not a log_event partition', part
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM opsdash.log_search_indexes(part);
END
$$;

-- Rows written without tokens (psql, a tool: the writer and the demo send theirs) get them
-- here as before, and their transaction a block without a filter (always read): all its ids,
-- over the whole days of its rows. The days it already covers are remembered for the transaction
-- (a local setting), so a bulk INSERT notes its block once per new day, not once per row.
CREATE OR REPLACE FUNCTION opsdash.log_event_fill_tokens() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    memo text;
    me   text;
    lo   timestamptz;
    hi   timestamptz;
BEGIN
    NEW.search_tokens := opsdash.search_tokens(NEW.message);
    IF TG_OP = 'INSERT' THEN
        memo := current_setting('opsdash.log_block_days', true);
        me := pg_current_xact_id()::text;
        IF memo IS NOT NULL AND split_part(memo, ' ', 1) = me THEN
            lo := to_timestamp(split_part(memo, ' ', 2)::float8);
            hi := to_timestamp(split_part(memo, ' ', 3)::float8);
            IF NEW.ts >= lo AND NEW.ts < hi THEN
                RETURN NEW;
            END IF;
        END IF;
        lo := least(lo, date_trunc('day', NEW.ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC');
        hi := greatest(hi, (date_trunc('day', NEW.ts AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC');
        PERFORM opsdash.log_block_put(0, 9223372036854775807, lo, hi, 0, NULL);
        PERFORM set_config('opsdash.log_block_days', me || ' ' || extract(epoch FROM lo)::text
                           || ' ' || extract(epoch FROM hi)::text, true);
    END IF;
    RETURN NEW;
END
$$;

-- A rewritten row (anonymization) may no longer have the keys its block's filter holds.
CREATE FUNCTION opsdash.log_block_void() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, opsdash, pg_temp AS $$
BEGIN
    UPDATE opsdash.log_block SET bloom = NULL
     WHERE tx = NEW.tx AND NEW.id BETWEEN first_id AND last_id AND bloom IS NOT NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER log_event_block_void AFTER UPDATE OF message, trace_id, user_id, attrs
    ON opsdash.log_event FOR EACH ROW
    WHEN (NEW.message IS DISTINCT FROM OLD.message OR NEW.trace_id IS DISTINCT FROM OLD.trace_id
          OR NEW.user_id IS DISTINCT FROM OLD.user_id OR NEW.attrs IS DISTINCT FROM OLD.attrs)
    EXECUTE FUNCTION opsdash.log_block_void();

-- The parent's indexes this replaces (0001 left the trace and user ones unnamed).
DROP INDEX opsdash.log_event_tokens;
DROP INDEX opsdash.log_event_attrs;
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
           AND pg_get_indexdef(i.indexrelid) ~ 'USING btree \((trace_id|user_id, ts)\) WHERE'
    LOOP
        EXECUTE format('DROP INDEX opsdash.%I', idx);
    END LOOP;
END
$$;

-- Every partition that holds rows now is sealed at once (its rows have no blocks); empty ones
-- (the days made ahead) wait for the job like any new day. The DEFAULT partition is always
-- sealed: its rows are days without a partition, written by anyone.
DO $$
DECLARE
    part text;
    has_rows boolean;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'opsdash.log_event'::regclass
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM opsdash.%I)', part) INTO has_rows;
        IF has_rows OR part = 'log_event_default' THEN
            PERFORM opsdash.log_search_indexes(part);
        END IF;
    END LOOP;
END
$$;

-- Compaction swaps in a new table with the day's error rows (LIKE copies the parent's indexes
-- only): it gets the search indexes too, so the day stays sealed. Otherwise as in 0026.
CREATE OR REPLACE FUNCTION opsdash.retention_compact_log(part text, min_level smallint) RETURNS bigint[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, opsdash, pg_temp AS $$
DECLARE
    parent text := opsdash.retention_partition_parent(part);
    lo     timestamptz := to_date(right(part, 8), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC';
    hi     timestamptz := lo + interval '1 day';
    kept_t text := part || '_k';
    n_all  bigint;
    n_kept bigint;
BEGIN
    IF parent <> 'log_event' THEN
        RAISE EXCEPTION 'opsdash.% is not a log_event partition', part
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM opsdash.retention_check_attached(part, parent);
    EXECUTE format('LOCK TABLE opsdash.%I IN SHARE MODE', part);
    EXECUTE format('SELECT count(*) FROM opsdash.%I', part) INTO n_all;
    -- Indexes exist before the swap (ATTACH adopts them instead of building them under the
    -- parent's lock), and the bounds as a CHECK let ATTACH skip its validation scan.
    EXECUTE format('CREATE TABLE opsdash.%I (LIKE opsdash.log_event INCLUDING DEFAULTS '
                   'INCLUDING CONSTRAINTS INCLUDING INDEXES)', kept_t);
    EXECUTE format('INSERT INTO opsdash.%I SELECT * FROM opsdash.%I WHERE level >= $1', kept_t, part)
        USING min_level;
    GET DIAGNOSTICS n_kept = ROW_COUNT;
    EXECUTE format('ALTER TABLE opsdash.%I ADD CONSTRAINT %I CHECK (ts >= %L AND ts < %L)',
                   kept_t, kept_t || '_bounds', lo, hi);
    EXECUTE format('ALTER TABLE opsdash.log_event DETACH PARTITION opsdash.%I', part);
    EXECUTE format('DROP TABLE opsdash.%I', part);
    EXECUTE format('ALTER TABLE opsdash.%I RENAME TO %I', kept_t, part);
    PERFORM opsdash.log_search_indexes(part);
    EXECUTE format('ALTER TABLE opsdash.log_event ATTACH PARTITION opsdash.%I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    RETURN ARRAY[n_kept, n_all - n_kept];
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'opsdash_reader') THEN
        GRANT SELECT ON opsdash.log_block TO opsdash_reader;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'opsdash_worker') THEN
        GRANT DELETE ON opsdash.log_block TO opsdash_worker;
    END IF;
END
$$;
