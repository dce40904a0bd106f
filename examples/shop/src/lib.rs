//! A small shop: an HTTP API that takes orders, stores them in PostgreSQL, caches stock in
//! Redis, publishes order events to Kafka through an outbox, applies payment results from
//! Kafka, and charges customers through a payment provider's HTTP API (`payment-api.yaml`).
//!
//! It is drydock's example of a service with four real dependencies and one external API; its
//! tests (`tests/`) run it against all of them, with faults.

pub mod api;
pub mod breaker;
pub mod config;
pub mod events;
pub mod orders;
pub mod payment;
pub mod stock;

use std::{net::SocketAddr, sync::Arc};

use rdkafka::producer::FutureProducer;
use sqlx::postgres::PgPoolOptions;
use tokio::{net::TcpListener, sync::Notify, task::JoinHandle};

pub use config::Config;

/// Why the shop could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// PostgreSQL.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis's URL.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Kafka clients.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The payment client.
    #[error("payment client: {0}")]
    Payment(#[from] reqwest::Error),
    /// The listening socket.
    #[error("listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// A running shop: its HTTP server, outbox publisher and payment-result consumer, stopped when
/// dropped.
pub struct Shop {
    addr: SocketAddr,
    state: api::AppState,
    tasks: Vec<JoinHandle<()>>,
}

impl Shop {
    /// Connects to the dependencies and starts serving on `config.listen`. PostgreSQL must be
    /// reachable (its schema in place); Redis may be down (the cache connects lazily); Kafka
    /// clients connect in the background.
    pub async fn start(config: Config) -> Result<Shop, StartError> {
        let pool = PgPoolOptions::new()
            .max_connections(config.database.max_connections)
            .acquire_timeout(config.database.acquire_timeout)
            .connect(&config.database.url)
            .await?;
        let orders = orders::Orders::new(pool, config.kafka.orders_topic.clone());
        let stock = stock::StockCache::new(&config.redis)?;
        // Wrapped at once: a client dropped on the runtime's thread could block it (see
        // `CloseOffThread`), also when a task is aborted before it first ran.
        let producer: FutureProducer = config.kafka.producer.create()?;
        let producer = events::CloseOffThread::new(producer);
        let consumer =
            events::CloseOffThread::new(events::payment_results_consumer(&config.kafka)?);
        let payments = Arc::new(payment::PaymentClient::new(config.payment.clone())?);
        let outbox = Arc::new(Notify::new());
        let state = api::AppState {
            orders: orders.clone(),
            stock: stock.clone(),
            payments,
            outbox: outbox.clone(),
        };
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let router = api::router(state.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "the HTTP server stopped");
            }
        });
        let publisher = tokio::spawn(events::publisher(
            orders.clone(),
            producer,
            config.kafka.clone(),
            outbox.clone(),
        ));
        let consumer = tokio::spawn(events::consumer(orders, stock, consumer, outbox));
        Ok(Shop {
            addr,
            state,
            tasks: vec![server, publisher, consumer],
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The order repository it uses.
    pub fn orders(&self) -> &orders::Orders {
        &self.state.orders
    }

    /// Its payment client (for the breaker's state).
    pub fn payments(&self) -> &payment::PaymentClient {
        &self.state.payments
    }

    /// Waits until the server or a background task ends (they run until aborted).
    pub async fn wait(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        let _ = futures::future::select_all(tasks).await;
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
