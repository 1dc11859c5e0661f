-- Multi-line events (issue 14, item 4): a stack trace's continuation lines are joined into the
-- event that starts them, so a flush's accounting becomes
--   lines = events + joined + folded + rejected + blank
-- where `joined` counts those continuation lines.
ALTER TABLE opsdash.ingest_stat ADD COLUMN joined bigint NOT NULL DEFAULT 0;
