-- The address each logged request came from, as the connection showed it (a reverse
-- proxy's, behind one); NULL for the CLI's changes and for rows written before this column.
ALTER TABLE request_log ADD COLUMN client TEXT;
