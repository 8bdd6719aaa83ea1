-- Each tenant gets a number: the fragment cache binds its blocks to it and keeps one
-- key per tenant number. `default` is 0, which every cache entry written before
-- tenants had numbers carries. Keep in step with ../sqlite/0006_tenant_numbers.sql.
ALTER TABLE tenants ADD COLUMN number BIGINT;
UPDATE tenants SET number = 0 WHERE name = 'default';
UPDATE tenants SET number = (SELECT COUNT(*) FROM tenants t WHERE t.name <> 'default' AND t.name <= tenants.name)
    WHERE name <> 'default';
CREATE UNIQUE INDEX tenants_by_number ON tenants (number);
