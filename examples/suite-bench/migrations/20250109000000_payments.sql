-- 09/30: payments
CREATE TABLE payments (
    id bigserial PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES orders(id),
    amount_cents integer NOT NULL,
    provider_ref text,
    created_at timestamptz NOT NULL DEFAULT now()
);
