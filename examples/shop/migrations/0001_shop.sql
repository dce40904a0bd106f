-- The catalogue: prices and the stock the shop sells from. PostgreSQL is the source of truth for
-- stock; Redis only caches it.
CREATE TABLE products (
    sku          text PRIMARY KEY,
    name         text NOT NULL,
    price_cents  bigint NOT NULL CHECK (price_cents > 0),
    stock        integer NOT NULL CHECK (stock >= 0)
);

CREATE TABLE orders (
    id               bigserial PRIMARY KEY,
    customer_id      text NOT NULL,
    currency         text NOT NULL,
    total_cents      bigint NOT NULL,
    -- pending → paid | declined | failed; paid → refunded
    status           text NOT NULL,
    -- Sent as `Idempotency-Key` on every attempt to charge this order: one order, one charge.
    idempotency_key  text NOT NULL UNIQUE,
    charge_id        text,
    failure          text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer ON orders (customer_id);

CREATE TABLE order_items (
    order_id          bigint NOT NULL REFERENCES orders (id),
    sku               text NOT NULL REFERENCES products (sku),
    quantity          integer NOT NULL CHECK (quantity > 0),
    unit_price_cents  bigint NOT NULL,
    PRIMARY KEY (order_id, sku)
);

-- The transactional outbox: an event is written in the same transaction as the change it
-- reports, and a publisher loop moves it to Kafka. A Kafka outage delays events; it loses none.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    topic         text NOT NULL,
    key           text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Payment results already applied, by the provider's event id: a redelivered result is a no-op.
CREATE TABLE applied_payment_results (
    event_id  text PRIMARY KEY,
    order_id  bigint NOT NULL
);

INSERT INTO products (sku, name, price_cents, stock) VALUES
    ('rope-10m', 'Climbing rope, 10 m', 8900, 100),
    ('carabiner', 'Screw-gate carabiner', 1250, 500),
    ('chalk', 'Chalk bag', 1999, 50),
    ('helmet', 'Helmet', 5495, 20),
    ('last-one', 'Display model', 4000, 1);
