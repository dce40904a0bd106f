-- 26/30: refunds
CREATE TABLE refunds (
    id bigserial PRIMARY KEY,
    payment_id bigint NOT NULL REFERENCES payments(id),
    amount_cents integer NOT NULL CHECK (amount_cents > 0),
    reason text
);
