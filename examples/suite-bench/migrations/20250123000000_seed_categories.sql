-- 23/30: seed categories
INSERT INTO categories (name) VALUES ('rope'), ('tents'), ('stoves'), ('lamps');
