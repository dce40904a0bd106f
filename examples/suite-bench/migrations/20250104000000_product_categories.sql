-- 04/30: product categories
CREATE TABLE categories (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE
);
ALTER TABLE products ADD COLUMN category_id integer REFERENCES categories(id);
