//! A small shop on the 30-migration schema of `migrations/`: the system under test of the suite
//! benchmark (`scripts/bench-suite`). Every test of `tests/` places an order through it, caches
//! stock in Redis, publishes the order to Kafka and asks a stubbed currency service for a rate.

use redis::AsyncCommands;
use sqlx::PgPool;

/// What a placed order came to, as the database's triggers computed it.
#[derive(Debug, PartialEq, Eq)]
pub struct Placed {
    /// The order's id.
    pub id: i64,
    /// `orders.total_cents`, kept by the `order_items_total` trigger.
    pub total_cents: i32,
    /// Rows `orders_audit` wrote for it.
    pub audit_rows: i64,
}

/// Places an order of `quantity` ropes for a new customer `email`, with an address, stock, a
/// payment and a shipment: a dozen statements across the schema, in one transaction.
pub async fn place_order(db: &PgPool, email: &str, quantity: i32) -> Result<Placed, sqlx::Error> {
    let mut tx = db.begin().await?;
    let customer: i64 =
        sqlx::query_scalar("INSERT INTO customers (email, name) VALUES ($1, $2) RETURNING id")
            .bind(email)
            .bind("Ada")
            .fetch_one(&mut *tx)
            .await?;
    let address: i64 = sqlx::query_scalar(
        "INSERT INTO addresses (customer_id, line1, city, postcode, country) \
         VALUES ($1, '1 Quay', 'Bristol', 'BS1', 'GB') RETURNING id",
    )
    .bind(customer)
    .fetch_one(&mut *tx)
    .await?;
    let product: i64 = sqlx::query_scalar(
        "INSERT INTO products (sku, title, price_cents, category_id, tags) \
         SELECT 'ROPE-10', '10 m rope', 1250, id, '{climbing}' FROM categories WHERE name = 'rope' \
         RETURNING id",
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO inventory (product_id, on_hand) VALUES ($1, 100)")
        .bind(product)
        .execute(&mut *tx)
        .await?;
    let order: i64 = sqlx::query_scalar(
        "INSERT INTO orders (customer_id, coupon_code) VALUES ($1, 'WELCOME10') RETURNING id",
    )
    .bind(customer)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) \
         VALUES ($1, $2, $3, 1250)",
    )
    .bind(order)
    .bind(product)
    .bind(quantity)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE inventory SET reserved = reserved + $2 WHERE product_id = $1")
        .bind(product)
        .bind(quantity)
        .execute(&mut *tx)
        .await?;
    let payment: i64 = sqlx::query_scalar(
        "INSERT INTO payments (order_id, amount_cents, provider_ref) \
         SELECT id, total_cents, 'ch_' || id FROM orders WHERE id = $1 RETURNING id",
    )
    .bind(order)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE orders SET status = 'paid' WHERE id = $1")
        .bind(order)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO shipments (order_id, address_id, carrier) VALUES ($1, $2, 'dhl')")
        .bind(order)
        .bind(address)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO outbox (topic, key, payload) VALUES ('orders', $1, jsonb_build_object('payment', $2::bigint))",
    )
    .bind(order.to_string())
    .bind(payment)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    let (id, total_cents): (i64, i32) =
        sqlx::query_as("SELECT id, total_cents FROM order_summaries WHERE id = $1")
            .bind(order)
            .fetch_one(db)
            .await?;
    let audit_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE entity = 'order' AND entity_id = $1",
    )
    .bind(order)
    .fetch_one(db)
    .await?;
    Ok(Placed {
        id,
        total_cents,
        audit_rows,
    })
}

/// Orders in the database: a test on a database of its own sees only its own.
pub async fn order_count(db: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(db)
        .await
}

/// Caches a product's stock and counts a view; returns the keys the database then holds (a test
/// on a Redis database of its own sees only its own two).
pub async fn cache_stock(
    redis: &mut redis::aio::ConnectionManager,
    sku: &str,
    on_hand: i64,
) -> Result<i64, redis::RedisError> {
    let _: () = redis.set_ex(format!("stock:{sku}"), on_hand, 60).await?;
    let _: i64 = redis.incr(format!("views:{sku}"), 1).await?;
    let cached: i64 = redis.get(format!("stock:{sku}")).await?;
    assert_eq!(cached, on_hand);
    redis::cmd("DBSIZE").query_async(redis).await
}
