-- Several instances on one database behave as one: every change that caches must see
-- (the generation moves) and every batch of stored events is announced with NOTIFY, so
-- other instances drop their caches and wake their event streams at once. Payloads start
-- with the schema the table lives in: instances on other schemas of the same database
-- hear the notice and ignore it.
CREATE FUNCTION agentgate_notify_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agentgate_state', TG_TABLE_SCHEMA || ' ' || NEW.value::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER state_generation_notify
    AFTER UPDATE ON state_generation
    FOR EACH ROW EXECUTE FUNCTION agentgate_notify_state();

-- One notice per endpoint per statement (ingest inserts a batch in one statement), naming
-- the highest cursor stored; a stream reads everything after its own cursor anyway.
CREATE FUNCTION agentgate_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    stored record;
BEGIN
    FOR stored IN SELECT endpoint_id, max(seq) AS seq FROM inserted GROUP BY endpoint_id LOOP
        PERFORM pg_notify('agentgate_events',
            TG_TABLE_SCHEMA || ' ' || stored.endpoint_id || ' ' || stored.seq::text);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION agentgate_notify_events();

-- Rate limits shared by every instance: one GCRA "theoretical arrival time" per bucket (a
-- key's id or a connection's id), in microseconds of the database server's clock. Each
-- instance adds what it took since its last exchange (every 100 ms) and reads back what
-- everyone took.
CREATE TABLE rate_buckets (
    bucket TEXT PRIMARY KEY,
    tat_us BIGINT NOT NULL
);
