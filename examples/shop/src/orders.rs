//! Orders, products and the outbox in PostgreSQL — the shop's source of truth.
//!
//! Every state change of an order is one transaction that also writes the event reporting it to
//! the outbox, so an event exists if and only if the change was committed (see
//! [`crate::events`] for the loop that publishes them). Stock is reserved with a conditional
//! `UPDATE … WHERE stock >= quantity`, so concurrent orders cannot oversell.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};

/// A product of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The stock-keeping unit, the product's key.
    pub sku: String,
    /// Shown to customers.
    pub name: String,
    /// The unit price.
    pub price_cents: i64,
    /// Units available.
    pub stock: i32,
}

/// One line of an order as asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// What.
    pub sku: String,
    /// How many.
    pub quantity: i32,
}

/// An order as asked for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewOrder {
    /// Who orders.
    pub customer_id: String,
    /// ISO 4217.
    pub currency: String,
    /// What, at least one line.
    pub items: Vec<OrderLine>,
}

/// A line of a stored order, with the price it was sold at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// What.
    pub sku: String,
    /// How many.
    pub quantity: i32,
    /// The price when ordered.
    pub unit_price_cents: i64,
}

/// A stored order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The shop's id.
    pub id: i64,
    /// Who ordered.
    pub customer_id: String,
    /// ISO 4217.
    pub currency: String,
    /// The sum of the lines.
    pub total_cents: i64,
    /// `pending`, `paid`, `declined`, `failed`, `refunded`.
    pub status: String,
    /// Sent with every attempt to charge this order.
    pub idempotency_key: String,
    /// The provider's charge, once paid.
    pub charge_id: Option<String>,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// The lines.
    pub items: Vec<OrderItem>,
}

/// A freshly placed (pending) order.
#[derive(Clone, Debug)]
pub struct Placed {
    /// The order.
    pub order: Order,
    /// Each product's stock after the reservation, for the cache.
    pub stock: Vec<(String, i64)>,
}

/// Why an order could not be placed or changed.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The order itself is wrong.
    #[error("invalid order: {0}")]
    Invalid(String),
    /// A product that does not exist.
    #[error("unknown product {0:?}")]
    UnknownProduct(String),
    /// Not enough stock.
    #[error("not enough stock of {sku:?}: {available} left, {wanted} wanted")]
    OutOfStock {
        /// The product.
        sku: String,
        /// What is left.
        available: i32,
        /// What was asked for.
        wanted: i32,
    },
    /// PostgreSQL failed or could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A payment result from the provider's topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentResult {
    /// The provider's event id; a redelivered event has the same.
    pub event_id: String,
    /// The shop's order id, as sent in the charge.
    pub order_id: String,
    /// The provider's charge.
    pub charge_id: String,
    /// `succeeded`, `failed` or `refunded`.
    pub status: String,
}

/// An event waiting in the outbox.
#[derive(Clone, Debug)]
pub struct OutboxEvent {
    /// Its position.
    pub id: i64,
    /// The full topic name.
    pub topic: String,
    /// The message key (the order id: an order's events stay in order on one partition).
    pub key: String,
    /// The JSON body.
    pub payload: serde_json::Value,
}

/// The repository.
#[derive(Clone, Debug)]
pub struct Orders {
    pool: PgPool,
    topic: String,
}

type Tx = Transaction<'static, Postgres>;

impl Orders {
    /// Orders in `pool`, their events going to `topic`.
    pub fn new(pool: PgPool, topic: impl Into<String>) -> Self {
        Orders {
            pool,
            topic: topic.into(),
        }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A product.
    pub async fn product(&self, sku: &str) -> Result<Option<Product>, OrderError> {
        let row: Option<(String, String, i64, i32)> =
            sqlx::query_as("SELECT sku, name, price_cents, stock FROM products WHERE sku = $1")
                .bind(sku)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(sku, name, price_cents, stock)| Product {
            sku,
            name,
            price_cents,
            stock,
        }))
    }

    /// Adds or replaces a product.
    pub async fn upsert_product(&self, product: &Product) -> Result<(), OrderError> {
        if product.price_cents <= 0 || product.stock < 0 {
            return Err(OrderError::Invalid(format!(
                "a product needs a positive price and no negative stock: {product:?}"
            )));
        }
        sqlx::query(
            "INSERT INTO products (sku, name, price_cents, stock) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sku) DO UPDATE
             SET name = EXCLUDED.name, price_cents = EXCLUDED.price_cents, stock = EXCLUDED.stock",
        )
        .bind(&product.sku)
        .bind(&product.name)
        .bind(product.price_cents)
        .bind(product.stock)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Reserves the stock and stores the order as `pending`, with its `order.placed` event.
    pub async fn place(&self, new: &NewOrder) -> Result<Placed, OrderError> {
        validate(new)?;
        let mut tx = self.pool.begin().await?;
        let mut items = Vec::with_capacity(new.items.len());
        let mut stock = Vec::with_capacity(new.items.len());
        // Always reserve in the same (sorted) order, so two orders of the same products cannot
        // deadlock on each other's row locks.
        let mut lines = new.items.clone();
        lines.sort_by(|a, b| a.sku.cmp(&b.sku));
        for line in &lines {
            let reserved: Option<(i64, i32)> = sqlx::query_as(
                "UPDATE products SET stock = stock - $2 WHERE sku = $1 AND stock >= $2
                 RETURNING price_cents, stock",
            )
            .bind(&line.sku)
            .bind(line.quantity)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((price, left)) = reserved else {
                let available: Option<i32> =
                    sqlx::query_scalar("SELECT stock FROM products WHERE sku = $1")
                        .bind(&line.sku)
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(match available {
                    None => OrderError::UnknownProduct(line.sku.clone()),
                    Some(available) => OrderError::OutOfStock {
                        sku: line.sku.clone(),
                        available,
                        wanted: line.quantity,
                    },
                });
            };
            items.push(OrderItem {
                sku: line.sku.clone(),
                quantity: line.quantity,
                unit_price_cents: price,
            });
            stock.push((line.sku.clone(), i64::from(left)));
        }
        let total: i64 = items
            .iter()
            .map(|i| i.unit_price_cents * i64::from(i.quantity))
            .sum();
        let key = uuid::Uuid::new_v4().to_string();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO orders (customer_id, currency, total_cents, status, idempotency_key)
             VALUES ($1, $2, $3, 'pending', $4) RETURNING id",
        )
        .bind(&new.customer_id)
        .bind(&new.currency)
        .bind(total)
        .bind(&key)
        .fetch_one(&mut *tx)
        .await?;
        for item in &items {
            sqlx::query(
                "INSERT INTO order_items (order_id, sku, quantity, unit_price_cents)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(&item.sku)
            .bind(item.quantity)
            .bind(item.unit_price_cents)
            .execute(&mut *tx)
            .await?;
        }
        let order = Order {
            id,
            customer_id: new.customer_id.clone(),
            currency: new.currency.clone(),
            total_cents: total,
            status: "pending".into(),
            idempotency_key: key,
            charge_id: None,
            failure: None,
            items,
        };
        self.enqueue(
            &mut tx,
            id,
            json!({
                "type": "order.placed",
                "order_id": id,
                "customer_id": order.customer_id,
                "currency": order.currency,
                "total_cents": total,
                "items": order.items,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(Placed { order, stock })
    }

    /// A pending order was charged: `paid`, with its `order.paid` event. Whether it changed
    /// (an order that is no longer pending stays as it is).
    pub async fn mark_paid(&self, id: i64, charge_id: &str) -> Result<bool, OrderError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE orders SET status = 'paid', charge_id = $2 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(charge_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if changed {
            let (total, currency): (i64, String) =
                sqlx::query_as("SELECT total_cents, currency FROM orders WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            self.enqueue(
                &mut tx,
                id,
                json!({"type": "order.paid", "order_id": id, "charge_id": charge_id,
                       "amount_cents": total, "currency": currency}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// A pending order will not be paid (`declined` or `failed`): its stock goes back, with an
    /// `order.<status>` event. The stock levels after, for the cache (empty if nothing changed).
    pub async fn mark_unpaid(
        &self,
        id: i64,
        status: &str,
        reason: &str,
    ) -> Result<Vec<(String, i64)>, OrderError> {
        self.release(id, "pending", status, reason).await
    }

    /// Applies a result from the provider's topic, once per event id. Returns the stock levels
    /// it changed (for the cache).
    pub async fn apply_payment_result(
        &self,
        result: &PaymentResult,
    ) -> Result<Vec<(String, i64)>, OrderError> {
        let Ok(id) = result.order_id.parse::<i64>() else {
            tracing::warn!(
                ?result,
                "payment result for an order id the shop never made"
            );
            return Ok(Vec::new());
        };
        let first = sqlx::query(
            "INSERT INTO applied_payment_results (event_id, order_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(&result.event_id)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if !first {
            return Ok(Vec::new());
        }
        match result.status.as_str() {
            "succeeded" => {
                self.mark_paid(id, &result.charge_id).await?;
                Ok(Vec::new())
            }
            "failed" => {
                self.release(
                    id,
                    "pending",
                    "failed",
                    "the provider reported the charge failed",
                )
                .await
            }
            "refunded" => {
                self.release(id, "paid", "refunded", "refunded by the provider")
                    .await
            }
            other => {
                tracing::warn!(status = other, "unknown payment result status; ignored");
                Ok(Vec::new())
            }
        }
    }

    /// Moves an order from `from` to `to`, putting its stock back, with an event.
    async fn release(
        &self,
        id: i64,
        from: &str,
        to: &str,
        reason: &str,
    ) -> Result<Vec<(String, i64)>, OrderError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE orders SET status = $3, failure = $4 WHERE id = $1 AND status = $2",
        )
        .bind(id)
        .bind(from)
        .bind(to)
        .bind(reason)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !changed {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let stock: Vec<(String, i32)> = sqlx::query_as(
            "UPDATE products p SET stock = p.stock + i.quantity
             FROM order_items i WHERE i.order_id = $1 AND i.sku = p.sku
             RETURNING p.sku, p.stock",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        self.enqueue(
            &mut tx,
            id,
            json!({"type": format!("order.{to}"), "order_id": id, "reason": reason}),
        )
        .await?;
        tx.commit().await?;
        Ok(stock
            .into_iter()
            .map(|(sku, level)| (sku, i64::from(level)))
            .collect())
    }

    /// An order with its lines.
    pub async fn order(&self, id: i64) -> Result<Option<Order>, OrderError> {
        let row: Option<OrderRow> = sqlx::query_as::<_, OrderTuple>(
            "SELECT id, customer_id, currency, total_cents, status, idempotency_key, charge_id, failure
             FROM orders WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(OrderRow::from);
        let Some(row) = row else { return Ok(None) };
        let items: Vec<(String, i32, i64)> = sqlx::query_as(
            "SELECT sku, quantity, unit_price_cents FROM order_items WHERE order_id = $1 ORDER BY sku",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let items = items
            .into_iter()
            .map(|(sku, quantity, unit_price_cents)| OrderItem {
                sku,
                quantity,
                unit_price_cents,
            })
            .collect();
        Ok(Some(row.with_items(items)))
    }

    /// A customer's orders, oldest first, without their lines.
    pub async fn customer_orders(&self, customer_id: &str) -> Result<Vec<Order>, OrderError> {
        let rows: Vec<OrderTuple> = sqlx::query_as(
            "SELECT id, customer_id, currency, total_cents, status, idempotency_key, charge_id, failure
             FROM orders WHERE customer_id = $1 ORDER BY id",
        )
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| OrderRow::from(r).with_items(Vec::new()))
            .collect())
    }

    /// Up to `limit` unpublished events, oldest first.
    pub async fn unpublished(&self, limit: i64) -> Result<Vec<OutboxEvent>, OrderError> {
        let rows: Vec<(i64, String, String, serde_json::Value)> = sqlx::query_as(
            "SELECT id, topic, key, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, topic, key, payload)| OutboxEvent {
                id,
                topic,
                key,
                payload,
            })
            .collect())
    }

    /// Marks an event published.
    pub async fn mark_published(&self, id: i64) -> Result<(), OrderError> {
        sqlx::query("UPDATE outbox SET published_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn enqueue(
        &self,
        tx: &mut Tx,
        order_id: i64,
        payload: serde_json::Value,
    ) -> Result<(), OrderError> {
        sqlx::query("INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)")
            .bind(&self.topic)
            .bind(order_id.to_string())
            .bind(payload)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

struct OrderRow {
    id: i64,
    customer_id: String,
    currency: String,
    total_cents: i64,
    status: String,
    idempotency_key: String,
    charge_id: Option<String>,
    failure: Option<String>,
}

type OrderTuple = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
);

impl From<OrderTuple> for OrderRow {
    fn from(
        (id, customer_id, currency, total_cents, status, idempotency_key, charge_id, failure): OrderTuple,
    ) -> Self {
        OrderRow {
            id,
            customer_id,
            currency,
            total_cents,
            status,
            idempotency_key,
            charge_id,
            failure,
        }
    }
}

impl OrderRow {
    fn with_items(self, items: Vec<OrderItem>) -> Order {
        Order {
            id: self.id,
            customer_id: self.customer_id,
            currency: self.currency,
            total_cents: self.total_cents,
            status: self.status,
            idempotency_key: self.idempotency_key,
            charge_id: self.charge_id,
            failure: self.failure,
            items,
        }
    }
}

fn validate(new: &NewOrder) -> Result<(), OrderError> {
    if new.customer_id.trim().is_empty() {
        return Err(OrderError::Invalid("customer_id is empty".into()));
    }
    if new.currency.len() != 3 || !new.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(OrderError::Invalid(format!(
            "currency {:?} is not an ISO 4217 code",
            new.currency
        )));
    }
    if new.items.is_empty() {
        return Err(OrderError::Invalid(
            "an order needs at least one item".into(),
        ));
    }
    let mut skus: Vec<_> = new.items.iter().map(|i| &i.sku).collect();
    skus.sort();
    skus.dedup();
    if skus.len() != new.items.len() {
        return Err(OrderError::Invalid("a product appears on two lines".into()));
    }
    if let Some(line) = new.items.iter().find(|i| i.quantity <= 0) {
        return Err(OrderError::Invalid(format!(
            "quantity of {:?} must be positive",
            line.sku
        )));
    }
    Ok(())
}
