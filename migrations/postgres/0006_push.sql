-- Push to agents: destinations (an agent's URL per webhook endpoint, with a sealed
-- Standard Webhooks secret), one delivery per event and destination, and every attempt.

-- last_seq: events up to this cursor have their delivery rows (advanced in the same
-- transaction that creates them, so a restart resumes). failing_since: the first failed
-- attempt since the last success; a destination failing for long enough is disabled.
CREATE TABLE push_destinations (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    endpoint_id   TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    url           TEXT NOT NULL,
    event_types   TEXT NOT NULL DEFAULT '[]',
    allow_private BOOLEAN NOT NULL DEFAULT FALSE,
    secret        BYTEA NOT NULL,
    state         TEXT NOT NULL DEFAULT 'enabled',
    last_seq      BIGINT NOT NULL DEFAULT 0,
    failing_since BIGINT,
    disabled_at   BIGINT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX push_destinations_endpoint_idx ON push_destinations (endpoint_id, created_at);

-- replay is 0 for the delivery made when the event arrived, and a fresh number for each
-- manual replay, so fan-out can insert idempotently and replays still add rows.
-- locked_until is the lease of the instance attempting it; an instance that dies leaves it
-- to expire. No foreign key to events: retention may prune an event before its delivery.
CREATE TABLE push_deliveries (
    id              TEXT PRIMARY KEY,
    destination_id  TEXT NOT NULL REFERENCES push_destinations (id) ON DELETE CASCADE,
    workspace_id    TEXT NOT NULL,
    event_seq       BIGINT NOT NULL,
    event_id        TEXT NOT NULL,
    replay          BIGINT NOT NULL DEFAULT 0,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    CONSTRAINT push_deliveries_once_key UNIQUE (destination_id, event_seq, replay)
);
CREATE INDEX push_deliveries_due_idx ON push_deliveries (state, next_attempt_at);

CREATE TABLE push_attempts (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id    TEXT NOT NULL REFERENCES push_deliveries (id) ON DELETE CASCADE,
    destination_id TEXT NOT NULL,
    attempted_at   BIGINT NOT NULL,
    status         INTEGER,
    latency_ms     BIGINT NOT NULL,
    error          TEXT
);
CREATE INDEX push_attempts_destination_idx ON push_attempts (destination_id, id);
CREATE INDEX push_attempts_delivery_idx ON push_attempts (delivery_id);
