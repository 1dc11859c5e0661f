-- Alerting additions to the base schema.

-- A config rule is rewritten only when its config entry changes (hash of the definition), so an
-- operator's enable/disable of a config rule survives restarts until the config itself changes.
ALTER TABLE opsdash.alert_rule ADD COLUMN config_hash text;

-- The hourly cap counts messages per rule and channel.
ALTER TABLE opsdash.notification ADD COLUMN rule_id bigint REFERENCES opsdash.alert_rule (id) ON DELETE SET NULL;
CREATE INDEX ON opsdash.notification (rule_id, channel, created_at);
-- Grouping appends alerts to a message still waiting for its group to fill.
CREATE INDEX ON opsdash.notification (channel, group_key) WHERE status = 'pending' AND attempts = 0;

-- Messages of an alert, for the detail pane: alert ids carried by the message.
CREATE INDEX ON opsdash.notification USING gin ((payload -> 'alert_ids'));

CREATE INDEX ON opsdash.alert_rule (next_eval_at) WHERE status <> 'disabled';
CREATE INDEX ON opsdash.silence (starts_at, ends_at) WHERE expired_at IS NULL;

-- Alert counts per state and severity, for psql and Grafana.
CREATE VIEW opsdash.alert_stats AS
SELECT state, severity, count(*) AS alerts, min(pending_since) AS oldest
  FROM opsdash.alert
 WHERE state <> 'resolved'
 GROUP BY state, severity;

-- Silence state as operators see it.
CREATE VIEW opsdash.silence_state AS
SELECT s.*,
       CASE WHEN s.expired_at IS NOT NULL OR s.ends_at <= now() THEN 'expired'
            WHEN s.starts_at > now() THEN 'pending'
            ELSE 'active' END AS state
  FROM opsdash.silence s;

-- The measured value of each open alert at every evaluation, for the sparkline around the
-- firing time in the detail pane. Kept for a day (the evaluation job prunes older samples).
CREATE TABLE opsdash.alert_sample (
    alert_id bigint      NOT NULL REFERENCES opsdash.alert (id) ON DELETE CASCADE,
    ts       timestamptz NOT NULL DEFAULT now(),
    value    double precision NOT NULL
);
CREATE INDEX ON opsdash.alert_sample (alert_id, ts);
CREATE INDEX ON opsdash.alert_sample (ts);
