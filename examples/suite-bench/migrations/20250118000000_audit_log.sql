-- 18/30: audit log
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    entity text NOT NULL,
    entity_id bigint NOT NULL,
    action text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    details jsonb NOT NULL DEFAULT '{}'
);
