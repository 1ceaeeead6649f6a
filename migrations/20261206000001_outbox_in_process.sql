-- Single-node mode (no RABBITMQ_URL): the gateway runs the worker's jobs straight
-- from the outbox. A failed attempt waits until next_attempt_at (the same backoff
-- as the broker's retry queues); a job that cannot succeed, or has used up
-- QUEUE_MAX_ATTEMPTS, is dead: dead_at set, its payload kept for
-- `worker dead-letters` to show and replay, never picked up again on its own.
-- With RabbitMQ both columns stay NULL: the broker keeps retries and dead letters.
ALTER TABLE outbox
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN dead_at         timestamptz;

DROP INDEX outbox_unsent_idx;
CREATE INDEX outbox_unsent_idx ON outbox (created_at) WHERE sent_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_dead_idx ON outbox (dead_at) WHERE dead_at IS NOT NULL;
