-- 29/30: seed coupons
INSERT INTO coupons (code, percent_off) VALUES ('WELCOME10', 10), ('SPRING20', 20);
