-- One-time tokens mailed to users: address verification (24 h) and password reset
-- (1 h). Only the keyed hash (HMAC-SHA256 under JWT_REFRESH_SECRET) is stored, so a
-- leaked table yields no usable token. A token is spent by setting used_at; spending
-- one also spends the user's other live tokens of the same kind.

CREATE TABLE email_verification_tokens (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL CHECK (length(token_hash) = 32),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT email_verification_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX email_verification_tokens_live_user_idx ON email_verification_tokens (user_id)
    WHERE used_at IS NULL;

CREATE TABLE password_reset_tokens (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL CHECK (length(token_hash) = 32),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT password_reset_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX password_reset_tokens_live_user_idx ON password_reset_tokens (user_id)
    WHERE used_at IS NULL;
