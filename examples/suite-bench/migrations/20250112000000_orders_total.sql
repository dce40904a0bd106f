-- 12/30: orders total
ALTER TABLE orders ADD COLUMN total_cents integer NOT NULL DEFAULT 0;
