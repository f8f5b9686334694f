-- The serving instance that wrote the entry (its --instance name); NULL for the CLI's changes
-- and for entries written before this column existed.
ALTER TABLE request_log ADD COLUMN instance TEXT;
