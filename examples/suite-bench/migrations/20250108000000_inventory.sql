-- 08/30: inventory
CREATE TABLE inventory (
    product_id bigint PRIMARY KEY REFERENCES products(id),
    on_hand integer NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved integer NOT NULL DEFAULT 0
);
