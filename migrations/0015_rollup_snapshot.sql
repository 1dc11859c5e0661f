-- The rollup job remembers the whole snapshot of its last run, not only its xmin: the next run
-- rolls exactly the rows that snapshot could not see (transactions at or after its xmax, and the
-- ones it listed as in progress). With only the xmin, a long-open transaction anywhere in the
-- cluster held every newer committed row out of the rollups while readers took those minutes as
-- finished. NULL (rows from before this migration) reads as a snapshot at tx_done.
ALTER TABLE opsdash.rollup_state ADD COLUMN snapshot pg_snapshot;
