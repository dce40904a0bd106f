//! Kafka: order events out (from the outbox), payment results in.
//!
//! Events are not sent from request handlers. A handler commits its change together with an
//! outbox row ([`crate::orders`]); the [`publisher`] loop sends outbox rows in order and marks
//! them published only once Kafka acknowledged them. A Kafka outage therefore delays events and
//! loses none, and an order never waits for Kafka. Delivery is at least once: a crash between
//! the acknowledgement and the mark sends that event again, so consumers key on `order_id` and
//! `type`.
//!
//! The [`consumer`] applies the provider's asynchronous payment results (late confirmations,
//! failures, refunds). Results are deduplicated by event id in PostgreSQL, so a redelivery is
//! harmless, and a result is retried until PostgreSQL takes it: none is skipped.

use std::{sync::Arc, time::Duration};

use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
    Message,
};
use tokio::sync::Notify;

use crate::{
    config::KafkaConfig,
    orders::{OrderError, Orders, PaymentResult},
    stock::StockCache,
};

/// How many outbox rows one pass reads.
const BATCH: i64 = 100;

/// Holds a Kafka client and, when dropped, drops it on a thread of its own.
///
/// Why: dropping an rdkafka consumer closes it, which blocks until the group is left — forever
/// if the broker is gone by then (as when the shop is stopped after its dependencies) — and a
/// producer's drop blocks while it flushes. A task's client is dropped when the task is
/// aborted, on the runtime's thread; blocking there would stall every other task, or hang the
/// runtime's shutdown. A detached thread does not keep the process from exiting.
pub struct CloseOffThread<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> CloseOffThread<T> {
    /// Wraps `client`.
    pub fn new(client: T) -> Self {
        CloseOffThread(Some(client))
    }
}

impl<T: Send + 'static> std::ops::Deref for CloseOffThread<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Some until dropped.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only in drop"))
    }
}

impl<T: Send + 'static> Drop for CloseOffThread<T> {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            let spawned = std::thread::Builder::new()
                .name("kafka-close".into())
                .spawn(move || drop(client));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no thread to close a Kafka client on; leaking it");
            }
        }
    }
}

/// Sends the outbox to Kafka until the task is aborted. `wake` makes it look at once (a handler
/// just committed an event); otherwise it looks every `config.outbox_poll`.
pub async fn publisher(
    orders: Orders,
    producer: CloseOffThread<FutureProducer>,
    config: KafkaConfig,
    wake: Arc<Notify>,
) {
    loop {
        match publish_pending(&orders, &producer, config.publish_timeout).await {
            Ok(0) => {}
            Ok(sent) => tracing::debug!(sent, "outbox events published"),
            Err(e) => tracing::warn!(error = %e, "outbox publishing paused; retrying"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(config.outbox_poll) => {}
        }
    }
}

/// Why a pass over the outbox stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Reading or marking the outbox failed.
    #[error(transparent)]
    Database(#[from] OrderError),
    /// Kafka did not take an event.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Publishes every unpublished event, oldest first; how many. Stops at the first event Kafka
/// does not take, so events of an order are never sent out of order.
pub async fn publish_pending(
    orders: &Orders,
    producer: &FutureProducer,
    queue_timeout: Duration,
) -> Result<usize, PublishError> {
    let mut sent = 0;
    loop {
        let batch = orders.unpublished(BATCH).await?;
        if batch.is_empty() {
            return Ok(sent);
        }
        for event in batch {
            let payload = event.payload.to_string();
            let kind = event.payload["type"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned();
            let record = FutureRecord::to(&event.topic)
                .key(&event.key)
                .payload(&payload)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "event-type",
                    value: Some(kind.as_str()),
                }));
            producer
                .send(record, Timeout::After(queue_timeout))
                .await
                .map_err(|(e, _)| e)?;
            orders.mark_published(event.id).await?;
            sent += 1;
        }
    }
}

/// Applies payment results from `config.payment_results_topic` until the task is aborted.
pub async fn consumer(
    orders: Orders,
    stock: StockCache,
    consumer: CloseOffThread<StreamConsumer>,
    wake: Arc<Notify>,
) {
    loop {
        let message = match consumer.recv().await {
            Ok(message) => message.detach(),
            Err(e) => {
                tracing::warn!(error = %e, "payment results: receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let result: PaymentResult = match message.payload().map(serde_json::from_slice).transpose()
        {
            Ok(Some(result)) => result,
            Ok(None) | Err(_) => {
                // A message that is not a payment result never will be: skip it, loudly.
                tracing::error!(
                    offset = message.offset(),
                    "payment results: unreadable message skipped"
                );
                continue;
            }
        };
        // Retried until PostgreSQL takes it: skipping would lose a refund.
        let mut pause = Duration::from_millis(50);
        let changed = loop {
            match orders.apply_payment_result(&result).await {
                Ok(changed) => break changed,
                Err(e) => {
                    tracing::warn!(error = %e, ?result, "payment result not applied yet; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        };
        for (sku, level) in changed {
            stock.set(&sku, level).await;
        }
        wake.notify_one();
    }
}

/// Subscribes a consumer made from `config` to the payment results.
pub fn payment_results_consumer(
    config: &KafkaConfig,
) -> Result<StreamConsumer, rdkafka::error::KafkaError> {
    let consumer: StreamConsumer = config.consumer.create()?;
    consumer.subscribe(&[&config.payment_results_topic])?;
    Ok(consumer)
}
