//! One test's share of a broker: topic names and group ids under a prefix of its own.

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::Duration,
};

use rdkafka::{
    admin::AdminClient,
    client::DefaultClientContext,
    consumer::{Consumer, ConsumerContext, StreamConsumer},
    error::KafkaError,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};

use super::{
    clients::{self, FastStart, OffThread, SharedAdmin},
    KafkaServer, Received,
};

/// The consumer drydock hands out: rdkafka's [`StreamConsumer`] (it derefs to one) with
/// [`FastStart`], which starts newly assigned partitions without librdkafka's fixed 100 ms
/// pause, and whose drop returns once the consumer has left its group — a few milliseconds —
/// instead of after rdkafka's fixed 100 ms poll.
///
/// ```no_run
/// # async fn demo(kafka: drydock::KafkaSlice) -> drydock::Result<()> {
/// use drydock::rdkafka::consumer::Consumer;
///
/// let orders = kafka.create_topic("orders", 1).await?;
/// let consumer = kafka.subscribe("billing", &[&orders])?;
/// let message = consumer.recv().await;                 // StreamConsumer's methods
/// println!("{:?}", consumer.subscription());
/// drop(consumer);                                      // has left group "<prefix>billing"
/// # Ok(()) }
/// ```
pub struct KafkaConsumer {
    consumer: StreamConsumer<FastStart>,
    /// The fault proxy this consumer reaches the broker through, kept until the consumer is
    /// dropped (after it, in field order): a consumer that outlives its slice can still leave
    /// its group as it closes, instead of waiting seconds for a broker it can no longer reach.
    _route: Option<crate::fault::FaultProxy>,
}

impl KafkaConsumer {
    pub(crate) fn new(consumer: StreamConsumer<FastStart>, server: &KafkaServer) -> Self {
        KafkaConsumer {
            consumer,
            _route: server.route().cloned(),
        }
    }
}

impl std::ops::Deref for KafkaConsumer {
    type Target = StreamConsumer<FastStart>;

    fn deref(&self) -> &StreamConsumer<FastStart> {
        &self.consumer
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // The fields drop next: rdkafka closes the consumer, and FastStart ends the wait.
        self.consumer.context().closing();
    }
}

impl fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConsumer").finish_non_exhaustive()
    }
}
use crate::error::{Error, Result};

/// Kafka as a test reaches it: the broker, and topic names and consumer groups under a prefix
/// (`""` in an owned environment, the slice's own in a shared one), with preconfigured clients
/// and the helpers tests need.
///
/// ```no_run
/// # async fn demo(kafka: drydock::KafkaSlice) -> drydock::Result<()> {
/// use std::time::Duration;
///
/// let orders = kafka.create_topic("orders", 3).await?;      // "<prefix>orders", 3 partitions
/// kafka.produce_json(&orders, "o-1", &serde_json::json!({"item": "rope"})).await?;
/// let consumer = kafka.subscribe("billing", &[&orders])?;  // group "<prefix>billing"
/// let first = kafka.consume(&consumer, 1, Duration::from_secs(10)).await?;
/// assert_eq!(first[0].key_str(), Some("o-1"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KafkaSlice {
    server: KafkaServer,
    prefix: String,
    /// One producer for every send: a librdkafka client costs a bootstrap and threads (a
    /// producer per send took ≈ 100 ms, a reused one sends in ≈ 1 ms).
    producer: Arc<OnceLock<OffThread<FutureProducer>>>,
    /// One admin client for every topic this slice creates, for the same reason.
    admin: SharedAdmin,
}

impl KafkaSlice {
    pub(crate) fn new(server: KafkaServer, prefix: String) -> Self {
        KafkaSlice {
            server,
            prefix,
            producer: Arc::default(),
            admin: SharedAdmin::default(),
        }
    }

    /// Names of one's own under this prefix: a fresh sub-prefix, for a test that wants several
    /// independent sets of topics.
    pub fn slice(&self) -> KafkaSlice {
        KafkaSlice::new(
            self.server.clone(),
            format!("{}t{}_", self.prefix, crate::secret::short_id()),
        )
    }

    /// The broker.
    pub fn server(&self) -> &KafkaServer {
        &self.server
    }

    /// `host:port` for `bootstrap.servers` from this process.
    pub fn bootstrap_servers(&self) -> &str {
        self.server.bootstrap_servers()
    }

    /// `name:port` for containers on the environment's network (apache flavour).
    pub fn internal_bootstrap_servers(&self) -> Option<&str> {
        self.server.internal_bootstrap_servers()
    }

    /// The prefix of this slice's names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This slice's name for topic `name`.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// This slice's id for consumer group `name`.
    pub fn group(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Creates this slice's topic `name` with `partitions` partitions; returns its full name
    /// once the broker's metadata shows every partition.
    /// Topic names are checked as Kafka checks them, before any request: `[a-zA-Z0-9._-]`, at
    /// most 249 characters (prefix included), not `.` or `..`; and at least one partition.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<String> {
        let topic = self.topic(name);
        check_topic(name, &topic, partitions)?;
        let admin = self.admin.get(&self.server)?;
        clients::create_topic(&self.server, admin, &topic, partitions).await?;
        Ok(topic)
    }

    /// Settings for a client of one's own (admin, or a base to build on): this broker, bounded
    /// timeouts and backoffs, Nagle off. The README's Kafka section lists them with reasons.
    pub fn client_config(&self) -> ClientConfig {
        clients::base_config(&self.server)
    }

    /// Settings for a producer of one's own: [`client_config`](Self::client_config), sends that
    /// fail within 10 s, and `linger.ms` 0 (no batching delay).
    pub fn producer_config(&self) -> ClientConfig {
        clients::producer_config(&self.server)
    }

    /// Settings for a consumer of one's own in this slice's group `group`:
    /// [`client_config`](Self::client_config), the earliest offset for a new group, and
    /// `fetch.wait.max.ms` 5 (tansu sleeps out the whole wait on every fetch). Create it with
    /// [`FastStart`] as its context (`config.create_with_context(FastStart::from_config(&config))`)
    /// to skip librdkafka's fixed 100 ms before a new group's first fetch.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        clients::consumer_config(&self.server, &self.group(group))
    }

    /// A producer whose sends fail within 10 s instead of retrying forever.
    pub fn producer(&self) -> Result<FutureProducer> {
        clients::producer(&self.server)
    }

    /// A consumer in this slice's group `group`, reading from the earliest offset.
    pub fn consumer(&self, group: &str) -> Result<KafkaConsumer> {
        clients::consumer(&self.server, &self.group(group))
            .map(|consumer| KafkaConsumer::new(consumer, &self.server))
    }

    /// [`consumer`](Self::consumer), subscribed to `topics` (full names).
    pub fn subscribe(&self, group: &str, topics: &[&str]) -> Result<KafkaConsumer> {
        let consumer = self.consumer(group)?;
        consumer
            .subscribe(topics)
            .map_err(|e| clients::kafka_error(&self.server, "subscribing", e))?;
        Ok(consumer)
    }

    /// A consumer (in group `group`, for commits) reading exactly `assignment` — manual
    /// assignment, no group rebalancing — once the broker's metadata shows its topics.
    ///
    /// Why the metadata first: librdkafka looks a logical start offset (`Offset::Beginning`,
    /// `End`) up only from the partition's leader, and a consumer assigned before it knows the
    /// leader waits a fixed 500 ms (`rd_kafka_toppar_offset_request`) before it asks again; with
    /// the leader known the first message comes in ≈ 10 ms. Do the same with a consumer of your
    /// own: `consumer.fetch_metadata(Some(topic), timeout)` before `assign`.
    pub async fn assign(
        &self,
        group: &str,
        assignment: &rdkafka::TopicPartitionList,
    ) -> Result<KafkaConsumer> {
        let consumer = Arc::new(self.consumer(group)?);
        let mut topics: Vec<String> = assignment
            .elements()
            .iter()
            .map(|e| e.topic().to_string())
            .collect();
        topics.dedup();
        let looked_up = Arc::clone(&consumer);
        tokio::task::spawn_blocking(move || {
            topics.iter().try_for_each(|topic| {
                looked_up
                    .fetch_metadata(Some(topic), clients::REQUEST_TIMEOUT)
                    .map(drop)
            })
        })
        .await
        .map_err(|e| clients::kafka_error(&self.server, "metadata task", e))?
        .map_err(|e| clients::kafka_error(&self.server, "fetching metadata to assign", e))?;
        let consumer = Arc::into_inner(consumer).ok_or_else(|| {
            clients::kafka_error(
                &self.server,
                "assigning",
                "the metadata task kept the consumer",
            )
        })?;
        consumer
            .assign(assignment)
            .map_err(|e| clients::kafka_error(&self.server, "assigning", e))?;
        Ok(consumer)
    }

    /// An admin client.
    pub fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        clients::admin(&self.server)
    }

    /// Produces `value` as JSON under `key`; returns the partition and offset it landed at.
    pub async fn produce_json<T: serde::Serialize>(
        &self,
        topic: &str,
        key: &str,
        value: &T,
    ) -> Result<(i32, i64)> {
        self.produce(
            topic,
            key,
            &serde_json::to_vec(value)
                .map_err(|e| clients::kafka_error(&self.server, "encoding JSON", e))?,
            &[],
        )
        .await
    }

    /// Produces a record with headers; returns the partition and offset it landed at.
    pub async fn produce(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<(i32, i64)> {
        let producer = match self.producer.get() {
            Some(producer) => producer,
            None => {
                let created = OffThread::new(self.producer()?);
                self.producer.get_or_init(|| created)
            }
        };
        let mut owned = OwnedHeaders::new();
        for (k, v) in headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(owned);
        let delivery = producer
            .send(record, clients::REQUEST_TIMEOUT)
            .await
            .map_err(|(e, _)| {
                clients::kafka_error(&self.server, &format!("producing to {topic}"), e)
            })?;
        Ok((delivery.partition, delivery.offset))
    }

    /// The next `n` messages `consumer` receives, or an error within `timeout` that lists what
    /// did arrive.
    ///
    /// What librdkafka reports while it recovers by itself (a broker unreachable, a topic not
    /// known yet) does not end the wait: a test that takes a broker down and brings it back
    /// gets its message. Those reports are listed in the error should the time run out; a
    /// fatal error ends the wait at once.
    pub async fn consume<C: ConsumerContext + 'static>(
        &self,
        consumer: &StreamConsumer<C>,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Received>> {
        let mut arrived = Vec::with_capacity(n);
        let mut reported = Reported::default();
        let deadline = tokio::time::Instant::now() + timeout;
        while arrived.len() < n {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => arrived.push(Received::from_message(&message)),
                Ok(Err(e)) => reported.note(&self.server, e)?,
                Err(_) => {
                    return Err(Error::NoMessage {
                        wanted: format!("{n} messages"),
                        waited: timeout,
                        arrived: arrived.iter().map(Received::summary).collect(),
                        reported: reported.lines(),
                    })
                }
            }
        }
        Ok(arrived)
    }

    /// The first message `consumer` receives that satisfies `predicate`, or an error within
    /// `timeout` that lists every message that arrived instead. Waits through what librdkafka
    /// recovers from, as [`consume`](Self::consume) does.
    pub async fn wait_for<C: ConsumerContext + 'static>(
        &self,
        consumer: &StreamConsumer<C>,
        timeout: Duration,
        predicate: impl Fn(&Received) -> bool,
    ) -> Result<Received> {
        let mut arrived = Vec::new();
        let mut reported = Reported::default();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => {
                    let received = Received::from_message(&message);
                    if predicate(&received) {
                        return Ok(received);
                    }
                    arrived.push(received.summary());
                }
                Ok(Err(e)) => reported.note(&self.server, e)?,
                Err(_) => {
                    return Err(Error::NoMessage {
                        wanted: "a message matching the predicate".into(),
                        waited: timeout,
                        arrived,
                        reported: reported.lines(),
                    })
                }
            }
        }
    }
}

/// What a consumer reported while a test waited for messages, and how often.
#[derive(Default)]
struct Reported(Vec<(String, usize)>);

impl Reported {
    /// Keeps a report librdkafka recovers from by itself (it goes on fetching, reconnecting,
    /// refreshing metadata); a fatal error, or one that is not a consumer's report, ends the
    /// wait as the error it is.
    fn note(&mut self, server: &KafkaServer, error: KafkaError) -> Result<()> {
        let line = match &error {
            KafkaError::MessageConsumption(code) => format!("{code:?} ({code})"),
            KafkaError::PartitionEOF(partition) => format!("end of partition {partition}"),
            _ => return Err(clients::kafka_error(server, "consuming", error)),
        };
        match self.0.iter_mut().find(|(seen, _)| *seen == line) {
            Some((_, times)) => *times += 1,
            None => self.0.push((line, 1)),
        }
        Ok(())
    }

    fn lines(self) -> Vec<String> {
        self.0
            .into_iter()
            .map(|(line, times)| match times {
                1 => line,
                n => format!("{line} ({n} times)"),
            })
            .collect()
    }
}

impl fmt::Debug for KafkaSlice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KafkaSlice({}, prefix {:?})",
            self.server.bootstrap_servers(),
            self.prefix
        )
    }
}

/// Kafka's own rules for a topic (`org.apache.kafka.common.internals.Topic.validate`), on the
/// full name (`topic`, prefix included) — and on the `name` a test gave for what a prefix
/// would hide (empty, `.`, `..`), so a name refused in an owned environment (prefix `""`) is
/// refused in a slice too.
fn check_topic(name: &str, topic: &str, partitions: i32) -> Result<()> {
    let problem = if name.is_empty() {
        Some("is empty".to_string())
    } else if name == "." || name == ".." {
        Some("cannot be `.` or `..`".to_string())
    } else if topic.len() > 249 {
        let prefix = &topic[..topic.len() - name.len()];
        Some(format!(
            "is {} characters long{}; Kafka allows 249",
            topic.len(),
            if prefix.is_empty() {
                String::new()
            } else {
                format!(" with this slice's prefix {prefix:?}")
            }
        ))
    } else if let Some(bad) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(format!(
            "holds {bad:?}; Kafka allows ASCII letters, digits, `.`, `_` and `-`"
        ))
    } else if partitions < 1 {
        Some(format!(
            "would have {partitions} partitions; at least 1 is needed"
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::Spec {
            service: "kafka".into(),
            problem: format!("topic {name:?} {problem}"),
            fix: "choose another topic name or partition count".into(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_topic;

    #[test]
    fn topic_names_follow_kafkas_rules() {
        assert!(check_topic("orders.v2-x", "s1_orders.v2-x", 3).is_ok());
        for (bad, partitions, says) in [
            ("bad topic!*", 1, "holds ' '"),
            ("..", 1, "cannot be"),
            (&"x".repeat(300), 1, "303 characters"),
            ("orders", 0, "0 partitions"),
            ("", 1, "is empty"),
        ] {
            let message = check_topic(bad, &format!("s1_{bad}"), partitions)
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string());
            assert!(message.contains(says), "{bad:?}: {message}");
            assert!(message.contains("to fix:"), "{message}");
        }
    }
}
