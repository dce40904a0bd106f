-- 21/30: product tags
ALTER TABLE products ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
CREATE INDEX products_tags ON products USING gin (tags);
