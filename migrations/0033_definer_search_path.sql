-- Every SECURITY DEFINER function of the schema searches pg_temp last. A search_path that does not
-- name pg_temp searches it FIRST for tables, so a caller's temporary table could stand in for one
-- the function names unqualified; PostgreSQL's documentation ("Writing SECURITY DEFINER Functions
-- Safely") asks for pg_temp to be listed last. 0026's functions already do; the older ones
-- (0006 audit_row, 0021 ensure_partition(s), add_log_repeats) get it here. Done by a walk over
-- the catalog, so a function redefined by a later migration is covered as long as this runs after.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure
        FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'opsdash' AND p.prosecdef
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, opsdash, pg_temp', f);
    END LOOP;
END
$$;
