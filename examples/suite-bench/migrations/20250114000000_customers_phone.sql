-- 14/30: customers phone
ALTER TABLE customers ADD COLUMN phone text;
