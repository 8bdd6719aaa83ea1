-- Leases: a background job that must run on one replica at a time (garbage
-- collection) runs only while its replica holds the job's lease.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
