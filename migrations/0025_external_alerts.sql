-- External alerts: alerts a Prometheus (or anything speaking Alertmanager's API v2) sends to
-- `opsdash serve`. They live in opsdash.alert beside opsdash's own, so the Alerts tab, the
-- open-alert counts, acknowledging, resolving, silencing and the outbox treat them alike.
--
-- Each sender (source) has one rule row of source 'external': the alert table needs a rule,
-- and the rule carries what opsdash's throttling reads (channels, max_per_hour,
-- repeat_interval_s, group_by) and lets an operator disable or put a sender in testing mode
-- like any rule. The evaluation job never measures such a rule.
ALTER TABLE opsdash.alert_rule DROP CONSTRAINT alert_rule_source_check;
ALTER TABLE opsdash.alert_rule ADD CONSTRAINT alert_rule_source_check
    CHECK (source IN ('config', 'cli', 'external'));

-- NULL for opsdash's own alerts; the sender's name (token name, or 'prometheus') otherwise.
ALTER TABLE opsdash.alert ADD COLUMN source text;
ALTER TABLE opsdash.alert ADD COLUMN annotations jsonb NOT NULL DEFAULT '{}';
ALTER TABLE opsdash.alert ADD COLUMN generator_url text;
-- Alertmanager's fingerprint of the label set (FNV-1a 64 over sorted names and values), as
-- amtool and Alertmanager's own UI show it.
ALTER TABLE opsdash.alert ADD COLUMN fingerprint text;
-- startsAt as the sender stated it: the same firing episode keeps it across re-sends.
ALTER TABLE opsdash.alert ADD COLUMN starts_at timestamptz;
-- endsAt of the latest re-send: an open external alert not re-sent by then has ended.
ALTER TABLE opsdash.alert ADD COLUMN ends_at timestamptz;
ALTER TABLE opsdash.alert ADD COLUMN last_received_at timestamptz;
-- How many times the sender sent this alert (each re-send counted once).
ALTER TABLE opsdash.alert ADD COLUMN received_count bigint NOT NULL DEFAULT 0;

-- The expiry sweep reads open external alerts by endsAt.
CREATE INDEX alert_external_open_ends ON opsdash.alert (ends_at)
    WHERE source IS NOT NULL AND state <> 'resolved';
-- GET /api/v2/alerts and the re-send after an operator's resolve look alerts up by fingerprint.
CREATE INDEX alert_external_fingerprint ON opsdash.alert (fingerprint) WHERE source IS NOT NULL;

COMMENT ON COLUMN opsdash.alert.source IS
  'NULL: raised by an opsdash rule; otherwise the sender of an external (Alertmanager API) alert.';
