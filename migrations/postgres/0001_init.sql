-- agentgate schema, PostgreSQL. Times are Unix milliseconds; ids are prefixed text.
CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL CONSTRAINT workspaces_name_key UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Bumped in the same transaction as every change that caches must see.
CREATE TABLE state_generation (
    value BIGINT NOT NULL
);
INSERT INTO state_generation (value) VALUES (0);

CREATE TABLE connections (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name         TEXT NOT NULL,
    provider     TEXT NOT NULL,
    secret       BYTEA NOT NULL,
    secret_hint  TEXT NOT NULL,
    mode         TEXT NOT NULL,
    key_kind     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    CONSTRAINT connections_workspace_name_key UNIQUE (workspace_id, name)
);

CREATE TABLE agent_keys (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         BYTEA NOT NULL CONSTRAINT agent_keys_hash_key UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX agent_keys_workspace_idx ON agent_keys (workspace_id, created_at);

CREATE TABLE request_log (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at        BIGINT NOT NULL,
    workspace_id      TEXT NOT NULL,
    request_id        TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    connection        TEXT NOT NULL,
    method            TEXT NOT NULL,
    path              TEXT NOT NULL,
    status            INTEGER NOT NULL,
    latency_us        BIGINT NOT NULL,
    stripe_request_id TEXT,
    idempotency_key   TEXT,
    outcome           TEXT NOT NULL
);
CREATE INDEX request_log_workspace_idx ON request_log (workspace_id, id);
