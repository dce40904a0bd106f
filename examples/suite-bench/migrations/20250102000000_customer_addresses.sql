-- 02/30: customer addresses
CREATE TABLE addresses (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    line1 text NOT NULL,
    city text NOT NULL,
    postcode text NOT NULL,
    country char(2) NOT NULL
);
CREATE INDEX addresses_customer ON addresses (customer_id);
