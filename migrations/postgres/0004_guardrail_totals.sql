-- Money guardrails: each key's total per UTC day (`YYYY-MM-DD`) and currency of the
-- amounts it moved through payment intents and refunds, in minor units. Reserved with a
-- conditional upsert before a request is forwarded, so a restart does not reset it and
-- concurrent requests cannot pass the daily limit together.
CREATE TABLE guardrail_totals (
    key_id       TEXT NOT NULL REFERENCES agent_keys (id) ON DELETE CASCADE,
    day          TEXT NOT NULL,
    currency     TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    total        BIGINT NOT NULL,
    PRIMARY KEY (key_id, day, currency)
);
CREATE INDEX guardrail_totals_workspace_day_idx ON guardrail_totals (workspace_id, day);
