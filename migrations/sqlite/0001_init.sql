-- agentgate schema, SQLite. Times are Unix milliseconds; ids are prefixed text.
CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL CONSTRAINT workspaces_name_key UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Bumped in the same transaction as every change that caches must see.
CREATE TABLE state_generation (
    value INTEGER NOT NULL
);
INSERT INTO state_generation (value) VALUES (0);

CREATE TABLE connections (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name         TEXT NOT NULL,
    provider     TEXT NOT NULL,
    secret       BLOB NOT NULL,
    secret_hint  TEXT NOT NULL,
    mode         TEXT NOT NULL,
    key_kind     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    CONSTRAINT connections_workspace_name_key UNIQUE (workspace_id, name)
);

CREATE TABLE agent_keys (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         BLOB NOT NULL CONSTRAINT agent_keys_hash_key UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX agent_keys_workspace_idx ON agent_keys (workspace_id, created_at);

CREATE TABLE request_log (
    id                INTEGER PRIMARY KEY,
    created_at        INTEGER NOT NULL,
    workspace_id      TEXT NOT NULL,
    request_id        TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    connection        TEXT NOT NULL,
    method            TEXT NOT NULL,
    path              TEXT NOT NULL,
    status            INTEGER NOT NULL,
    latency_us        INTEGER NOT NULL,
    stripe_request_id TEXT,
    idempotency_key   TEXT,
    outcome           TEXT NOT NULL
);
CREATE INDEX request_log_workspace_idx ON request_log (workspace_id, id);
