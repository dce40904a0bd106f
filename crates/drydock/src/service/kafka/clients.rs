//! rdkafka clients with bounds: librdkafka retries forever by default, a test must not.
//! And with latency settings: librdkafka's defaults trade milliseconds for throughput, and a test
//! waits on every one of those milliseconds.

use std::{
    ops::Deref,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::{ClientContext, DefaultClientContext},
    consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer},
    error::RDKafkaErrorCode,
    message::{Headers, Message},
    producer::{FutureProducer, FutureRecord},
    types::RDKafkaRespErr,
    ClientConfig, Offset, TopicPartitionList,
};

use super::KafkaServer;
use crate::error::{Error, Result};

/// How long one request (metadata, admin, a produce) may take before it is an error.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const READY_TOPIC: &str = "__drydock_ready";

/// The settings every client of a test shares, with why each differs from librdkafka's default.
///
/// Users' own clients get the same from `KafkaSlice::{client,producer,consumer}_config`.
pub(crate) fn base_config(server: &KafkaServer) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", server.bootstrap_servers());
    for (key, value) in CLIENT_SETTINGS {
        config.set(*key, *value);
    }
    config.set("log_level", "3");
    config
}

/// Settings for every client: short socket and backoff bounds (librdkafka retries for minutes
/// by default), and Nagle off (a test's small requests must not wait for an ACK to coalesce).
///
/// `reconnect.backoff.ms` 20 (not 100): librdkafka opens a new cluster connection at most every
/// `reconnect.backoff.ms / 2`, and a new consumer needs one soon after its first Metadata
/// answer retires the bootstrap connection (its FindCoordinator is lost with it) — that wait
/// was ≈ 50 ms in one new consumer of five. `retry.backoff.ms` 20 (not 100): a retried request,
/// and the fast metadata refresh for a topic or leader not yet known, come sooner.
pub(crate) const CLIENT_SETTINGS: &[(&str, &str)] = &[
    ("socket.timeout.ms", "10000"),
    ("reconnect.backoff.ms", "20"),
    ("reconnect.backoff.max.ms", "1000"),
    ("retry.backoff.ms", "20"),
    ("socket.nagle.disable", "true"),
];

/// Settings for producers: a send fails after 10 s instead of retrying forever, and leaves at
/// once (librdkafka's `linger.ms` default, 5 ms, batches a test's single sends for nothing).
pub(crate) const PRODUCER_SETTINGS: &[(&str, &str)] =
    &[("message.timeout.ms", "10000"), ("linger.ms", "0")];

/// Settings for consumers: earliest offset for a new group (a test produces, then consumes),
/// short group timeouts, and a short pause after a failed fetch (librdkafka's 500 ms would hide
/// a topic that appears a moment later).
///
/// And `fetch.wait.max.ms` 5, not 500: librdkafka's default is a long poll meant to save
/// requests, but tansu (the stand-in image, and the tansu flavour) does not long-poll — it
/// sleeps out the wait (half of it, from 250 ms up) whether or not data is there, so every
/// fetch, a new consumer's first included, cost ≈ 250 ms. At 5 ms a message reaches a running
/// consumer in ≈ 10 ms, for ~200 small fetches a second per idle consumer — nothing for one
/// broker under test. Apache Kafka answers as soon as data arrives either way.
pub(crate) const CONSUMER_SETTINGS: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    ("enable.partition.eof", "false"),
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "500"),
    ("fetch.wait.max.ms", "5"),
    ("fetch.error.backoff.ms", "20"),
];

pub(crate) fn producer_config(server: &KafkaServer) -> ClientConfig {
    let mut config = base_config(server);
    for (key, value) in PRODUCER_SETTINGS {
        config.set(*key, *value);
    }
    config
}

pub(crate) fn consumer_config(server: &KafkaServer, group: &str) -> ClientConfig {
    let mut config = base_config(server);
    config.set("group.id", group);
    for (key, value) in CONSUMER_SETTINGS {
        config.set(*key, *value);
    }
    config
}

/// How long [`FastStart`] waits for a group's committed offsets before leaving the lookup to
/// librdkafka (which then pays its 100 ms pause, nothing worse).
const COMMITTED_LOOKUP: Duration = Duration::from_secs(3);

/// How long a closing consumer's revocation waits for librdkafka to finish the close (leave
/// the group); it takes a few milliseconds. Past the bound, the drop goes on as rdkafka's does.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A consumer context that starts newly assigned partitions at once.
///
/// Why: librdkafka (2.12) starts a partition that has no committed offset through
/// `rd_kafka_offset_reset(…, ERR__NO_OFFSET, …)`, and a reset *with an error* arms the offset
/// query timer with a fixed 100 ms backoff (`rdkafka_offset.c`) — no setting shortens it. Every
/// new consumer group's first message therefore came ≥ 100 ms after its assignment, whatever the
/// broker. This context does, in the rebalance callback, what librdkafka would do a moment later:
/// it asks the coordinator for the group's committed offsets and assigns every partition at its
/// committed offset, or — where there is none — at the logical offset `auto.offset.reset` names
/// (a reset without an error, which librdkafka queries at once). Committed offsets are honoured
/// exactly as before; only the idle 100 ms goes. If the lookup fails, the assignment goes to
/// librdkafka unchanged.
///
/// It also makes closing quick. rdkafka's consumer drop closes the consumer, then polls its queue
/// with a fixed 100 ms timeout until the close is done; the close takes a few milliseconds but
/// posts nothing that ends the poll, so every drop took ≥ 100 ms — most of a test's release.
/// Once [`closing`](Self::closing) was called, the revocation that the close delivers (in that
/// poll) waits there until the consumer has left its group, so the poll returns and the drop with
/// it. [`KafkaConsumer`](crate::KafkaConsumer) does this on drop; call it yourself before
/// dropping a consumer of your own.
///
/// ```no_run
/// # fn demo(kafka: &drydock::KafkaSlice) -> drydock::Result<()> {
/// use drydock::rdkafka::consumer::{Consumer, StreamConsumer};
/// use drydock::FastStart;
///
/// let config = kafka.consumer_config("billing");          // your settings on top, then:
/// let consumer: StreamConsumer<FastStart> =
///     config.create_with_context(FastStart::from_config(&config))?;
/// // … and when done with it:
/// consumer.context().closing();
/// drop(consumer);                                         // a few ms, not ≥ 100
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FastStart {
    reset: Option<Offset>,
    closing: AtomicBool,
}

impl Clone for FastStart {
    /// The same start offsets; a new consumer is not closing.
    fn clone(&self) -> Self {
        FastStart {
            reset: self.reset,
            closing: AtomicBool::new(false),
        }
    }
}

impl FastStart {
    /// The context for a consumer made from `config`: its `auto.offset.reset` says where a
    /// partition without a committed offset starts (librdkafka's default, `latest`, if unset;
    /// `error` leaves such partitions to librdkafka, which reports them).
    pub fn from_config(config: &ClientConfig) -> Self {
        let reset = match config.get("auto.offset.reset").unwrap_or("latest") {
            "earliest" | "smallest" | "beginning" => Some(Offset::Beginning),
            "latest" | "largest" | "end" => Some(Offset::End),
            _ => None,
        };
        FastStart {
            reset,
            closing: AtomicBool::new(false),
        }
    }

    /// Says that the consumer is about to be dropped: its close then returns as soon as the
    /// consumer has left its group (see above). Call it just before the drop; a rebalance that
    /// takes partitions away after it waits for a close that is not coming, up to 2 s.
    pub fn closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// The assignment with each partition's start resolved, or `None` to leave it as it is.
    fn resolve<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        assignment: &TopicPartitionList,
    ) -> Option<TopicPartitionList> {
        let reset = self.reset?;
        let committed = consumer
            .committed_offsets(assignment.clone(), COMMITTED_LOOKUP)
            .ok()?;
        let mut resolved = TopicPartitionList::with_capacity(committed.count());
        for element in committed.elements() {
            if element.error().is_err() {
                return None;
            }
            let start = match element.offset() {
                Offset::Invalid | Offset::Stored => reset,
                committed => committed,
            };
            resolved
                .add_partition_offset(element.topic(), element.partition(), start)
                .ok()?;
        }
        Some(resolved)
    }
}

impl ClientContext for FastStart {}

impl ConsumerContext for FastStart {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        // As rdkafka's default callback does, with the assignment's starts resolved first.
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let resolved = self.resolve(consumer, partitions);
                let assignment = resolved.as_ref().unwrap_or(partitions);
                if cooperative {
                    consumer.incremental_assign(assignment)
                } else {
                    consumer.assign(assignment)
                }
            }
            _ if cooperative => consumer.incremental_unassign(partitions),
            _ => consumer.unassign(),
        };
        if let Err(e) = outcome {
            eprintln!("drydock: kafka rebalance ({err:?}): {e}");
        }
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
            && self.closing.load(Ordering::Relaxed)
        {
            // This revocation is the close's: librdkafka leaves the group on its own thread
            // now. Returning once it has done so ends the drop's poll (see the type's docs).
            let deadline = Instant::now() + CLOSE_WAIT;
            while !consumer.closed() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// A librdkafka client dropped on a thread of its own: rdkafka's admin client and producer
/// join a poll thread that wakes every 100 ms, so dropping one blocks its caller that long —
/// it was most of every `create_topic` (≈ 100 of 104 ms).
pub(crate) struct OffThread<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> OffThread<T> {
    pub(crate) fn new(client: T) -> Self {
        OffThread(Some(client))
    }
}

impl<T: Send + 'static> Deref for OffThread<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("taken only on drop")
    }
}

impl<T: Send + 'static> Drop for OffThread<T> {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            // If no thread can be had, the client drops here, as it would have anyway.
            let _ = std::thread::Builder::new()
                .name("drydock-kafka-drop".into())
                .spawn(move || drop(client));
        }
    }
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

pub(crate) fn consumer(server: &KafkaServer, group: &str) -> Result<StreamConsumer<FastStart>> {
    let config = consumer_config(server, group);
    config
        .create_with_context(FastStart::from_config(&config))
        .map_err(|e| kafka_error(server, "creating a consumer", e))
}

pub(crate) fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

/// One admin client, made on first use and kept by its clones: a librdkafka client costs a
/// bootstrap and threads, and its drop 100 ms (on a thread of its own, see [`OffThread`]).
#[derive(Clone, Default)]
pub(crate) struct SharedAdmin(Arc<OnceLock<OffThread<Arc<AdminClient<DefaultClientContext>>>>>);

impl SharedAdmin {
    pub(crate) fn get(
        &self,
        server: &KafkaServer,
    ) -> Result<&Arc<AdminClient<DefaultClientContext>>> {
        if let Some(admin) = self.0.get() {
            return Ok(admin);
        }
        let created = OffThread::new(Arc::new(admin(server)?));
        Ok(self.0.get_or_init(|| created))
    }
}

/// Names of the broker's topics (librdkafka's metadata call blocks: off the async workers).
async fn topic_names(
    server: &KafkaServer,
    admin: &Arc<AdminClient<DefaultClientContext>>,
) -> Result<Vec<String>> {
    let admin = Arc::clone(admin);
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

/// Creates `topic` and waits until the broker's metadata lists all its partitions, through
/// `admin` (reused: a new librdkafka client costs a bootstrap, and its drop 100 ms).
pub(crate) async fn create_topic(
    server: &KafkaServer,
    admin: &Arc<AdminClient<DefaultClientContext>>,
    topic: &str,
    partitions: i32,
) -> Result<()> {
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
    // Creation is asynchronous in Kafka: wait (bounded) until the partitions are known. Metadata
    // is asked at once, then every 5 ms: a broker that answers CreateTopics has usually already
    // published the topic.
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    loop {
        let (admin, name) = (Arc::clone(admin), topic.to_string());
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
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Deletes every topic whose name starts with `prefix`.
pub(crate) async fn delete_prefixed(
    server: &KafkaServer,
    admin: &SharedAdmin,
    prefix: &str,
) -> Result<usize> {
    let admin = admin.get(server)?;
    let doomed: Vec<String> = topic_names(server, admin)
        .await?
        .into_iter()
        .filter(|name| name.starts_with(prefix))
        .collect();
    if doomed.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = doomed.iter().map(String::as_str).collect();
    admin
        .delete_topics(&names, &admin_options())
        .await
        .map_err(|e| kafka_error(server, "deleting a slice's topics", e))?;
    Ok(doomed.len())
}

/// Ready: Metadata lists the broker, and a topic can be created and written.
pub(crate) async fn probe(server: &KafkaServer) -> std::result::Result<(), String> {
    let admin = OffThread::new(Arc::new(admin(server).map_err(|e| e.to_string())?));
    let port = server
        .bootstrap_servers()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<i32>().ok());
    let lookup = Arc::clone(&*admin);
    let brokers = tokio::task::spawn_blocking(move || {
        lookup
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
    create_topic(server, &admin, READY_TOPIC, 1)
        .await
        .map_err(|e| e.to_string())?;
    let producer: OffThread<FutureProducer> = {
        let mut config = producer_config(server);
        config.set("message.timeout.ms", "3000");
        OffThread::new(config.create().map_err(|e| e.to_string())?)
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
