-- Stripe webhook endpoints, their signing secrets (sealed), and the events received.
CREATE TABLE webhook_endpoints (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id),
    connection         TEXT NOT NULL,
    event_types        TEXT NOT NULL DEFAULT '[]',
    stripe_endpoint_id TEXT,
    created_at         BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_workspace_idx ON webhook_endpoints (workspace_id, created_at);

CREATE TABLE webhook_secrets (
    id          TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    secret      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT
);
CREATE INDEX webhook_secrets_endpoint_idx ON webhook_secrets (endpoint_id);

-- seq is the cursor agents read by; (endpoint_id, event_id) stores each event once.
CREATE TABLE events (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id  TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    payload      BYTEA NOT NULL,
    CONSTRAINT events_endpoint_event_key UNIQUE (endpoint_id, event_id)
);
CREATE INDEX events_endpoint_seq_idx ON events (endpoint_id, seq);
CREATE INDEX events_received_idx ON events (received_at);
