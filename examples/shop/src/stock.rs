//! The stock cache in Redis, in front of PostgreSQL's `products.stock`.
//!
//! Product pages read stock far more often than orders change it, so reads come from Redis
//! when they can. The cache is never the source of truth: orders reserve stock in PostgreSQL,
//! then write the new level here. Every cache call is bounded by a short timeout and its
//! failure is logged and swallowed, so a slow or dead Redis degrades the shop to reading
//! PostgreSQL — it never fails a request. A level that could not be written while Redis was
//! away is remembered as stale and deleted before the cache is trusted for that product again,
//! so the cache comes back correct, not just back.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, AsyncCommands};

use crate::config::RedisConfig;

/// The cache.
#[derive(Clone)]
pub struct StockCache {
    redis: ConnectionManager,
    timeout: Duration,
    ttl_seconds: u64,
    /// Products whose cached level may be stale (a write failed); not read from Redis until
    /// their key is deleted.
    stale: Arc<Mutex<HashSet<String>>>,
}

fn key(sku: &str) -> String {
    format!("stock:{sku}")
}

impl StockCache {
    /// A cache on `config.url`. The connection is made lazily: the shop starts (and serves from
    /// PostgreSQL) while Redis is still down.
    pub fn new(config: &RedisConfig) -> redis::RedisResult<Self> {
        let client = redis::Client::open(config.url.as_str())?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        Ok(StockCache {
            redis: ConnectionManager::new_lazy_with_config(client, manager)?,
            timeout: config.timeout,
            ttl_seconds: config.ttl.as_secs().max(1),
            stale: Arc::default(),
        })
    }

    /// The cached stock of `sku`, if Redis has it and answers in time.
    pub async fn get(&self, sku: &str) -> Option<i64> {
        if self.is_stale(sku) {
            if self.delete(sku).await {
                self.stale_set().remove(sku);
            }
            return None;
        }
        let mut redis = self.redis.clone();
        let answer =
            tokio::time::timeout(self.timeout, redis.get::<_, Option<i64>>(key(sku))).await;
        match answer {
            Ok(Ok(level)) => level,
            Ok(Err(e)) => {
                tracing::warn!(sku, error = %e, "stock cache read failed; reading PostgreSQL");
                None
            }
            Err(_) => {
                tracing::warn!(sku, "stock cache read timed out; reading PostgreSQL");
                None
            }
        }
    }

    /// Stores `sku`'s stock level. Returns whether it was stored.
    pub async fn set(&self, sku: &str, level: i64) -> bool {
        let mut redis = self.redis.clone();
        let write = redis.set_ex::<_, _, ()>(key(sku), level, self.ttl_seconds);
        let stored = match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(sku, error = %e, "stock cache write failed");
                false
            }
            Err(_) => {
                tracing::warn!(sku, "stock cache write timed out");
                false
            }
        };
        if stored {
            self.stale_set().remove(sku);
        } else {
            self.stale_set().insert(sku.to_owned());
        }
        stored
    }

    fn is_stale(&self, sku: &str) -> bool {
        self.stale_set().contains(sku)
    }

    fn stale_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // Each update is one insert or remove: a poisoned lock still holds a whole set.
        self.stale
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Deletes `sku`'s key; whether Redis confirmed it.
    async fn delete(&self, sku: &str) -> bool {
        let mut redis = self.redis.clone();
        matches!(
            tokio::time::timeout(self.timeout, redis.del::<_, ()>(key(sku))).await,
            Ok(Ok(()))
        )
    }
}
