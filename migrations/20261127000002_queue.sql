-- Queues: the transactional outbox, stored notifications, and the worker's record of
-- what it has already done (so a redelivered message does not send a second email).

-- One row per message the gateway wants published, written in the same transaction
-- as the change that caused it. The relay publishes unsent rows with publisher
-- confirms and only then sets sent_at. The payload (which may carry a one-time token)
-- is cleared once sent, so the table does not keep usable tokens around.
CREATE TABLE outbox (
    id         uuid PRIMARY KEY,
    queue      text NOT NULL CHECK (queue IN ('email', 'notification')),
    kind       text NOT NULL,
    payload    jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    attempts   integer NOT NULL DEFAULT 0,
    last_error text,
    CHECK (sent_at IS NOT NULL OR payload IS NOT NULL)
);
CREATE INDEX outbox_unsent_idx ON outbox (created_at) WHERE sent_at IS NULL;

-- Wakes the relay (LISTEN tg_outbox) as soon as a transaction that wrote rows
-- commits; polling remains the fallback.
CREATE OR REPLACE FUNCTION tg_outbox_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('tg_outbox', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION tg_outbox_notify();

-- Auth events shown to a user, newest first; the id is the queue message id, which
-- makes storing a redelivered event a no-op.
CREATE TABLE notifications (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id  uuid,
    event      text NOT NULL,
    data       jsonb NOT NULL DEFAULT '{}'::jsonb,
    at         timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz
);
CREATE INDEX notifications_user_at_idx ON notifications (user_id, at DESC, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;

-- Messages whose side effect (an email) is done, keyed by message id.
CREATE TABLE processed_messages (
    message_id   uuid PRIMARY KEY,
    queue        text NOT NULL,
    kind         text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
