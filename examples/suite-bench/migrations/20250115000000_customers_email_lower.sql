-- 15/30: customers email lower
CREATE UNIQUE INDEX customers_email_lower ON customers (lower(email));
