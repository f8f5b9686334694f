-- Dashboard operators (people who sign in), their sessions and the one-time setup links
-- printed by `serve` when no operator exists. Secrets are never stored: passwords as
-- Argon2id PHC strings, session and setup tokens as the hex SHA-256 of the token.

CREATE TABLE operators (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL CONSTRAINT operators_name_key UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- id: SHA-256 (hex) of the cookie's token. The CSRF token is derived from the token
-- itself, so nothing more is stored. workspace_id: the workspace the operator is looking at.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    operator_id  TEXT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    workspace_id TEXT REFERENCES workspaces (id) ON DELETE SET NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_operator_idx ON sessions (operator_id);

CREATE TABLE setup_tokens (
    hash       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
