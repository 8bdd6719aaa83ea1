-- The admin API: its bearer tokens (SHA-256 of the secret part only), locations and
-- policies added at run time (next to those of the configuration file), the state
-- of every location, and background jobs. Keep in step with ../postgres/0003_admin.sql.

CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL,
    created_at BIGINT NOT NULL
);

-- Definition as JSON (no secret); the location's secret sealed under the master key.
CREATE TABLE catalog_locations (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    secret_sealed BLOB NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE catalog_policies (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- active | draining | drained | removed; a location without a row is active.
CREATE TABLE location_states (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Background jobs. A job runs on the replica holding its lease (holder, until
-- lease_expires); any replica takes over a job whose lease ran out.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,               -- drain | gc
    target TEXT NOT NULL,             -- the location for drain, '' otherwise
    state TEXT NOT NULL,              -- queued | running | cancelling | cancelled | succeeded | failed
    total BIGINT NOT NULL,
    done BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    message TEXT NOT NULL,
    holder TEXT NOT NULL,
    lease_expires BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_by_state ON jobs (state, created_at);

CREATE INDEX fragments_by_location ON fragments (location, seal_id);
