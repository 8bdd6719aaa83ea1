-- Tenants: each access key belongs to one, and so does each bucket (the tenant of
-- the key that created it). A key sees and reaches only its tenant's buckets.
-- Everything from before tenants belongs to `default`. Keep in step with
-- ../sqlite/0005_tenants.sql.
CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
INSERT INTO tenants (name, created_at) VALUES ('default', CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT));

ALTER TABLE access_keys ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE buckets ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
CREATE INDEX access_keys_by_tenant ON access_keys (tenant, access_key_id);
CREATE INDEX buckets_by_tenant ON buckets (tenant, name);
