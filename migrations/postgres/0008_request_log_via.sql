-- How each logged request arrived: `http` (the data plane and the management API) or
-- `mcp` (a tool call over MCP, run through the same data-plane phases).
ALTER TABLE request_log ADD COLUMN via TEXT NOT NULL DEFAULT 'http';
