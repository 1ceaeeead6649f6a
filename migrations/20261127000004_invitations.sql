-- Tenant invitations. The token is mailed; only its keyed hash (HMAC-SHA256, as for
-- the account tokens) is stored. An invitation is pending until it is accepted,
-- revoked or past expires_at; inviting the same address again revokes the older
-- pending one, so at most one live link per address and tenant exists.

CREATE TABLE invitations (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    token_hash  bytea NOT NULL CHECK (length(token_hash) = 32),
    invited_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    CONSTRAINT invitations_settled_once CHECK (accepted_at IS NULL OR revoked_at IS NULL)
);
CREATE INDEX invitations_tenant_created_idx ON invitations (tenant_id, created_at DESC);
CREATE INDEX invitations_pending_email_idx ON invitations (tenant_id, lower(email))
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

-- The audit page of a tenant is read newest first by id (keyset pagination).
CREATE INDEX audit_log_tenant_id_idx ON audit_log (tenant_id, id DESC);
