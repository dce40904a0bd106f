-- 11/30: shipments
CREATE TABLE shipments (
    id bigserial PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES orders(id),
    address_id bigint NOT NULL REFERENCES addresses(id),
    carrier text NOT NULL,
    tracking text
);
