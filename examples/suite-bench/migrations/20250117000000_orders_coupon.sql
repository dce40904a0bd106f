-- 17/30: orders coupon
ALTER TABLE orders ADD COLUMN coupon_code text REFERENCES coupons(code);
