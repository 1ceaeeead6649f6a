-- A tenant's custom domain routes only once the tenant has proven it controls the
-- name: adding a domain creates a claim with a DNS TXT challenge
-- (_tenantgate.<domain> = token), and only a verified domain becomes
-- tenants.domain, the column the proxy resolves. A claim reserves nothing: the
-- first tenant to prove a name gets it (tenants_domain_key). One open claim per
-- tenant; a new one replaces it. Domains set before this migration count as
-- verified.
CREATE TABLE domain_claims (
    tenant_id       uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    domain          text NOT NULL CHECK (domain = lower(domain) AND length(domain) BETWEEN 3 AND 253),
    token           text NOT NULL CHECK (length(token) BETWEEN 32 AND 128),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_checked_at timestamptz,
    last_error      text
);
