-- 22/30: reviews
CREATE TABLE reviews (
    id bigserial PRIMARY KEY,
    product_id bigint NOT NULL REFERENCES products(id),
    customer_id bigint NOT NULL REFERENCES customers(id),
    stars smallint NOT NULL CHECK (stars BETWEEN 1 AND 5),
    body text,
    UNIQUE (product_id, customer_id)
);
