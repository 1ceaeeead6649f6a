-- The multi-tenant data model: users belong to many tenants with a role in each.
-- There is deliberately no `role` column on `users`.

CREATE OR REPLACE FUNCTION tg_set_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TABLE users (
    id                uuid PRIMARY KEY,
    email             text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash     text NOT NULL,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    language          text NOT NULL DEFAULT 'en',
    email_verified_at timestamptz,
    -- Bumped by logout-all and password resets: access tokens carry the version they
    -- were issued under and are refused once it moves on.
    token_version     integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE TRIGGER users_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION tg_set_updated_at();

CREATE TABLE tenants (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    slug       text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'),
    domain     text CHECK (domain IS NULL OR domain = lower(domain)),
    is_active  boolean NOT NULL DEFAULT true,
    settings   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_slug_key UNIQUE (slug)
);
CREATE UNIQUE INDEX tenants_domain_key ON tenants (domain) WHERE domain IS NOT NULL;
CREATE TRIGGER tenants_updated_at BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION tg_set_updated_at();

CREATE TABLE user_tenant_roles (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, tenant_id)
);
CREATE INDEX user_tenant_roles_tenant_idx ON user_tenant_roles (tenant_id);
CREATE TRIGGER user_tenant_roles_updated_at BEFORE UPDATE ON user_tenant_roles
    FOR EACH ROW EXECUTE FUNCTION tg_set_updated_at();

-- One row per refresh token. A login starts a family; every refresh adds a row to
-- it and marks its predecessor replaced. Presenting a replaced or revoked token
-- revokes the whole family (reuse detection).
CREATE TABLE refresh_sessions (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL CHECK (length(token_hash) = 32),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    replaced_by uuid REFERENCES refresh_sessions (id) ON DELETE SET NULL,
    revoked_at  timestamptz,
    user_agent  text,
    CONSTRAINT refresh_sessions_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_sessions_family_idx ON refresh_sessions (family_id);
CREATE INDEX refresh_sessions_live_user_idx ON refresh_sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid REFERENCES tenants (id) ON DELETE SET NULL,
    actor_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    action     text NOT NULL,
    target     text,
    metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id text,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_at_idx ON audit_log (tenant_id, at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id);
