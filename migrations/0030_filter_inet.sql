-- The filter language's `ip:10.1.0.0/16` (src/filter/sql.rs) compares log_event.ip, which is
-- text as the logs wrote it, with a network. A plain `ip::inet` would fail the whole query on
-- the first malformed value ("unknown", "-", a host name); this reads such a value as NULL
-- (no match) instead. IMMUTABLE because inet's text input depends on nothing but the text.
-- PARALLEL UNSAFE: the exception block starts a subtransaction, which PostgreSQL refuses in a
-- parallel query ("cannot start subtransactions during a parallel operation"; found by
-- benches/history.rs on 1M rows, where a sequential scan went parallel). PostgreSQL 16's
-- pg_input_is_valid would avoid the exception block; 15 is still supported.
CREATE FUNCTION opsdash.try_inet(t text) RETURNS inet
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL UNSAFE AS $$
BEGIN
    RETURN t::inet;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN NULL;
END
$$;
