-- "Who deleted resource X" (`query::audit::who_deleted`) recognizes a delete in any spelling
-- (`delete` from the row trigger, `user.delete`, `file_deleted`) with the predicate
-- `lower(action) ~ '(^|[^a-z])delet'`. 0006's partial index was on `action = 'delete'`, which
-- that predicate does not imply, so the planner could not use it: on 10M audit rows the query
-- read every partition. A partial index is used only when the query's WHERE implies the index
-- predicate; the same expression, written the same way, does. Keep it identical to IS_DELETE
-- in src/query/audit.rs (tests/retention_audit.rs checks the query uses this index).
DROP INDEX opsdash.audit_event_deleted_resource;
CREATE INDEX audit_event_deleted_resource ON opsdash.audit_event (resource_id, ts DESC)
    WHERE lower(action) ~ '(^|[^a-z])delet';
