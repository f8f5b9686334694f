-- Key roles, scopes (JSON) and expiry; the request log names the operation and, for
-- refusals, the reason.
ALTER TABLE agent_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'agent';
ALTER TABLE agent_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE agent_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE request_log ADD COLUMN operation TEXT;
ALTER TABLE request_log ADD COLUMN reason TEXT;
