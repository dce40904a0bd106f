-- 24/30: products active
ALTER TABLE products ADD COLUMN active boolean NOT NULL DEFAULT true;
