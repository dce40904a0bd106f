//! rdkafka clients with bounds: librdkafka retries forever by default, a test must not.

use std::time::Duration;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::StreamConsumer,
    error::RDKafkaErrorCode,
    message::{Headers, Message},
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};

use super::KafkaServer;
use crate::error::{Error, Result};

/// How long one request (metadata, admin, a produce) may take before it is an error.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const READY_TOPIC: &str = "__drydock_ready";

/// The settings every client of a test shares: short socket and backoff bounds.
pub(crate) fn base_config(server: &KafkaServer) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", server.bootstrap_servers())
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.max.ms", "1000")
        .set("log_level", "3");
    config
}

pub(crate) fn producer_config(server: &KafkaServer) -> ClientConfig {
    let mut config = base_config(server);
    // A send fails after 10 s instead of retrying forever.
    config.set("message.timeout.ms", "10000");
    config
}

pub(crate) fn consumer_config(server: &KafkaServer, group: &str) -> ClientConfig {
    let mut config = base_config(server);
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500");
    config
}

pub(crate) fn kafka_error(
    server: &KafkaServer,
    context: &str,
    source: impl Into<crate::error::BoxError>,
) -> Error {
    Error::Kafka {
        bootstrap: server.bootstrap_servers().to_string(),
        context: context.to_string(),
        source: source.into(),
    }
}

pub(crate) fn admin(server: &KafkaServer) -> Result<AdminClient<DefaultClientContext>> {
    base_config(server)
        .create()
        .map_err(|e| kafka_error(server, "creating an admin client", e))
}

pub(crate) fn producer(server: &KafkaServer) -> Result<FutureProducer> {
    producer_config(server)
        .create()
        .map_err(|e| kafka_error(server, "creating a producer", e))
}

pub(crate) fn consumer(server: &KafkaServer, group: &str) -> Result<StreamConsumer> {
    consumer_config(server, group)
        .create()
        .map_err(|e| kafka_error(server, "creating a consumer", e))
}

pub(crate) fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

/// Names of the broker's topics (librdkafka's metadata call blocks: off the async workers).
pub(crate) async fn topic_names(server: &KafkaServer) -> Result<Vec<String>> {
    let admin = admin(server)?;
    let names = tokio::task::spawn_blocking(move || {
        admin
            .inner()
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map(|m| m.topics().iter().map(|t| t.name().to_string()).collect())
    })
    .await
    .map_err(|e| kafka_error(server, "metadata task", e))?
    .map_err(|e| kafka_error(server, "fetching metadata", e))?;
    Ok(names)
}

/// Creates `topic` and waits until the broker's metadata lists all its partitions.
pub(crate) async fn create_topic(server: &KafkaServer, topic: &str, partitions: i32) -> Result<()> {
    // One client for the request and the polls: a new librdkafka client costs a bootstrap.
    let admin = std::sync::Arc::new(admin(server)?);
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&new], &admin_options())
        .await
        .map_err(|e| kafka_error(server, &format!("creating topic {topic}"), e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(kafka_error(server, &format!("creating topic {name}"), code))
            }
        }
    }
    // Creation is asynchronous in Kafka: wait (bounded) until the partitions are known.
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    loop {
        let (admin, name) = (std::sync::Arc::clone(&admin), topic.to_string());
        let known = tokio::task::spawn_blocking(move || {
            admin
                .inner()
                .fetch_metadata(Some(&name), Duration::from_secs(2))
                .map(|m| {
                    m.topics().first().is_some_and(|t| {
                        t.error().is_none() && t.partitions().len() as i32 >= partitions
                    })
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if known {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("topic {topic} to show {partitions} partitions in metadata"),
                bound: REQUEST_TIMEOUT,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deletes every topic whose name starts with `prefix`.
pub(crate) async fn delete_prefixed(server: &KafkaServer, prefix: &str) -> Result<usize> {
    let doomed: Vec<String> = topic_names(server)
        .await?
        .into_iter()
        .filter(|name| name.starts_with(prefix))
        .collect();
    if doomed.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = doomed.iter().map(String::as_str).collect();
    admin(server)?
        .delete_topics(&names, &admin_options())
        .await
        .map_err(|e| kafka_error(server, "deleting a slice's topics", e))?;
    Ok(doomed.len())
}

/// Ready: Metadata lists the broker, and a topic can be created and written.
pub(crate) async fn probe(server: &KafkaServer) -> std::result::Result<(), String> {
    let admin = admin(server).map_err(|e| e.to_string())?;
    let port = server
        .bootstrap_servers()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<i32>().ok());
    let brokers = tokio::task::spawn_blocking(move || {
        admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(2))
            .map(|m| m.brokers().iter().map(|b| b.port()).collect::<Vec<_>>())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("metadata: {e}"))?;
    if !brokers.iter().any(|p| Some(*p) == port) {
        return Err(format!(
            "metadata lists brokers on ports {brokers:?}, not this one"
        ));
    }
    create_topic(server, READY_TOPIC, 1)
        .await
        .map_err(|e| e.to_string())?;
    let producer: FutureProducer = {
        let mut config = producer_config(server);
        config.set("message.timeout.ms", "3000");
        config.create().map_err(|e| e.to_string())?
    };
    producer
        .send(
            FutureRecord::<str, str>::to(READY_TOPIC).payload("ready"),
            Duration::from_secs(3),
        )
        .await
        .map_err(|(e, _)| format!("a write to {READY_TOPIC}: {e}"))?;
    Ok(())
}

/// A message as a test reads it: owned, with key, payload and headers as text where they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key, if any.
    pub key: Option<Vec<u8>>,
    /// Payload, if any.
    pub payload: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Received {
    pub(crate) fn from_message<M: Message>(message: &M) -> Self {
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Received {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// The key as UTF-8 text.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The payload parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(self.payload.as_deref().unwrap_or_default())
    }

    /// A header's value as UTF-8 text.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// One line for failure messages.
    pub(crate) fn summary(&self) -> String {
        let text = |b: &Option<Vec<u8>>| {
            b.as_deref()
                .map(|b| {
                    String::from_utf8_lossy(b)
                        .chars()
                        .take(80)
                        .collect::<String>()
                })
                .unwrap_or_else(|| "∅".into())
        };
        format!(
            "{}[{}]@{} key={} payload={}",
            self.topic,
            self.partition,
            self.offset,
            text(&self.key),
            text(&self.payload)
        )
    }
}
