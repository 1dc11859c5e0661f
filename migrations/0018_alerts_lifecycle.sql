-- Alerts that end, and that mean something (issue 13 point 3).

-- Rate rules take a minimum volume: below `min_count` requests in the window the condition is
-- false (0: no minimum). Rules saved from the CLI before this migration get the default.
ALTER TABLE opsdash.alert_rule ADD COLUMN min_count integer NOT NULL DEFAULT 0 CHECK (min_count >= 0);
UPDATE opsdash.alert_rule SET min_count = 20 WHERE metric = 'error_rate' AND source = 'cli';

-- Removing a rule marks it removed: its alerts and their history stay, and the audit event of
-- the removal keeps naming a rule that can still be looked at.
ALTER TABLE opsdash.alert_rule ADD COLUMN removed_at timestamptz;
ALTER TABLE opsdash.alert_rule ADD COLUMN removed_by text;

-- No statement can take alerts (and, through them, their history and samples) away with their
-- rule any more.
ALTER TABLE opsdash.alert DROP CONSTRAINT alert_rule_id_fkey;
ALTER TABLE opsdash.alert ADD CONSTRAINT alert_rule_id_fkey
    FOREIGN KEY (rule_id) REFERENCES opsdash.alert_rule (id) ON DELETE RESTRICT;

-- The one definition of an open alert, used by the header, the KPI card, the Alerts tab and
-- `opsdash alerts list`: every alert not resolved (pending, firing, acknowledged, suppressed).
-- `testing`: its rule is in testing mode (evaluated and shown, never notified); such alerts
-- are counted apart from the real ones.
CREATE VIEW opsdash.open_alert AS
SELECT a.id, a.rule_id, a.severity, a.state, coalesce(r.status = 'testing', false) AS testing
  FROM opsdash.alert a LEFT JOIN opsdash.alert_rule r ON r.id = a.rule_id
 WHERE a.state <> 'resolved';

-- Alert counts per state and severity, for psql and Grafana, from the same definition.
CREATE OR REPLACE VIEW opsdash.alert_stats AS
SELECT o.state, o.severity, count(*) AS alerts, min(a.pending_since) AS oldest, o.testing
  FROM opsdash.open_alert o JOIN opsdash.alert a ON a.id = o.id
 GROUP BY o.state, o.severity, o.testing;
