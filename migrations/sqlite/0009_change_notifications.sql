-- Nothing to change on SQLite: one instance serves an SQLite file, so there is no other
-- instance to notify and no rate limit to share. PostgreSQL's migration of this number
-- adds the NOTIFY triggers and the shared rate-limit table; the numbers stay aligned so
-- both backends list the same migrations.
SELECT 1;
