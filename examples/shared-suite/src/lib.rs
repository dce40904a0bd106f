//! A small order service: orders in PostgreSQL, a cached count in Redis. The system under test of
//! the suite in `tests/`, where 50 tests share one environment and each gets a slice of it.

use redis::AsyncCommands;
use sqlx::PgPool;

/// Places and counts orders.
pub struct Orders {
    db: PgPool,
    cache: redis::aio::ConnectionManager,
}

/// What can go wrong talking to the stores.
#[derive(Debug)]
pub enum OrdersError {
    /// PostgreSQL failed.
    Db(sqlx::Error),
    /// Redis failed.
    Cache(redis::RedisError),
}

impl std::fmt::Display for OrdersError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrdersError::Db(e) => write!(f, "database: {e}"),
            OrdersError::Cache(e) => write!(f, "cache: {e}"),
        }
    }
}

impl std::error::Error for OrdersError {}

impl Orders {
    /// An order service on these stores.
    pub fn new(db: PgPool, cache: redis::aio::ConnectionManager) -> Self {
        Orders { db, cache }
    }

    /// Records an order and bumps the cached count.
    pub async fn place(&mut self, owner: &str, item: &str) -> Result<i64, OrdersError> {
        let id: i64 =
            sqlx::query_scalar("INSERT INTO orders (owner, item) VALUES ($1, $2) RETURNING id")
                .bind(owner)
                .bind(item)
                .fetch_one(&self.db)
                .await
                .map_err(OrdersError::Db)?;
        let _: i64 = self
            .cache
            .incr("orders:count", 1)
            .await
            .map_err(OrdersError::Cache)?;
        let _: () = self
            .cache
            .sadd("orders:owners", owner)
            .await
            .map_err(OrdersError::Cache)?;
        Ok(id)
    }

    /// Orders in the database.
    pub async fn count(&self) -> Result<i64, OrdersError> {
        sqlx::query_scalar("SELECT count(*) FROM orders")
            .fetch_one(&self.db)
            .await
            .map_err(OrdersError::Db)
    }

    /// The cached count.
    pub async fn cached_count(&mut self) -> Result<i64, OrdersError> {
        let count: Option<i64> = self
            .cache
            .get("orders:count")
            .await
            .map_err(OrdersError::Cache)?;
        Ok(count.unwrap_or(0))
    }

    /// Every owner the cache has seen.
    pub async fn owners(&mut self) -> Result<Vec<String>, OrdersError> {
        self.cache
            .smembers("orders:owners")
            .await
            .map_err(OrdersError::Cache)
    }
}
