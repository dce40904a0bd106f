-- 28/30: orders status index
CREATE INDEX orders_open ON orders (placed_at) WHERE status IN ('placed', 'paid');
