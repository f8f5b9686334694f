-- The installation's own audit: what belongs to no one workspace's request log. Workspaces
-- created, dashboard operators created, their passwords reset, their sign-ins (accepted and
-- refused), and master-key rotations. Each change is written in the transaction that makes
-- it, so a change whose record cannot be written is not made (src/installation_audit.rs).
-- Never a password, a token or a key: only names.
CREATE TABLE installation_audit (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    instance   TEXT,
    via        TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT,
    outcome    TEXT NOT NULL,
    detail     TEXT,
    client     TEXT
);
