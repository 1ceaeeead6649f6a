-- Tenant API keys: machine credentials for one tenant with one role. The key
-- `tgk_<public_id>_<secret>` is shown once; only its public id (to find the row)
-- and the SHA-256 of its secret (256 random bits: no password hashing needed) are
-- kept. A key is live until revoked_at is set or expires_at passes; revoked keys
-- stay listed (with who revoked them) for the audit trail. last_used_at is written
-- in batches by the gateways, at most once a minute per key and gateway.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    public_id    text NOT NULL CHECK (public_id ~ '^[A-Za-z0-9]{12}$'),
    secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    revoked_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT api_keys_public_id_key UNIQUE (public_id)
);
CREATE INDEX api_keys_tenant_created_idx ON api_keys (tenant_id, created_at DESC);
