-- Whether requests through a connection are checked against the operation catalog.
ALTER TABLE connections ADD COLUMN validation BOOLEAN NOT NULL DEFAULT TRUE;
