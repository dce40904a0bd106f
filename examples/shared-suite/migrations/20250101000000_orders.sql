CREATE TABLE orders (
    id      bigserial PRIMARY KEY,
    owner   text        NOT NULL,
    item    text        NOT NULL,
    placed  timestamptz NOT NULL DEFAULT now()
);
