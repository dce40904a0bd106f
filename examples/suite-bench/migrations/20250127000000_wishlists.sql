-- 27/30: wishlists
CREATE TABLE wishlist_items (
    customer_id bigint NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    product_id bigint NOT NULL REFERENCES products(id),
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, product_id)
);
