//! Kafka: a real Kafka-protocol broker, reachable from this process and from containers on the
//! environment's network, ready when it answers Metadata listing itself and takes a write.
//!
//! The advertised-listener problem (a broker must advertise an address clients outside its
//! container can reach, but a published port is known only after start) is solved by reserving a
//! free host port first and publishing it one-to-one: the broker listens on that same port inside
//! its container and advertises `host:port` from the start.

mod clients;
mod slice;

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

pub(crate) use clients::delete_prefixed;
pub use clients::Received;
pub use slice::KafkaSlice;

use super::{PlanContext, Probe, Service};
use crate::{
    docker::{ContainerPlan, StartedContainer},
    image::ImageRef,
};

/// The in-network listener's port (apache flavour).
pub const INTERNAL_PORT: u16 = 9093;

/// Which broker runs, each configured through its own image's documented environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KafkaFlavour {
    /// `apache/kafka`: KRaft, one combined broker and controller.
    Apache,
    /// tansu, an Apache-Kafka-compatible broker written in Rust (`ghcr.io/tansu-io/tansu`).
    Tansu,
}

/// A Kafka broker to run.
///
/// ```
/// use drydock::{Kafka, KafkaFlavour};
///
/// let kafka = Kafka::default();                      // apache/kafka, KRaft, one node
/// let tansu = Kafka::flavour(KafkaFlavour::Tansu);   // tansu, memory storage
/// # let _ = (kafka, tansu);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Kafka {
    flavour: KafkaFlavour,
    image: Option<String>,
    ready_timeout: Duration,
}

impl Default for Kafka {
    fn default() -> Self {
        Kafka::flavour(KafkaFlavour::Apache)
    }
}

impl Kafka {
    /// A broker of this flavour.
    pub fn flavour(flavour: KafkaFlavour) -> Self {
        Kafka {
            flavour,
            image: None,
            ready_timeout: Duration::from_secs(90),
        }
    }

    /// Runs this image (of the same flavour) instead of the default (`DRYDOCK_IMAGE_KAFKA` wins).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// How long the broker may take to be ready (90 s by default: a JVM broker is slow to start).
    pub fn ready_timeout(mut self, bound: Duration) -> Self {
        self.ready_timeout = bound;
        self
    }

    pub(crate) fn ready_bound(&self) -> Duration {
        self.ready_timeout
    }
}

/// What the plan chose: the host port the broker advertises.
pub(crate) struct Access {
    port: u16,
}

impl Service for Kafka {
    const KIND: &'static str = "kafka";
    type Access = Access;
    type Server = KafkaServer;

    fn default_image(&self) -> &'static str {
        match self.flavour {
            KafkaFlavour::Apache => "apache/kafka:3.9.1",
            KafkaFlavour::Tansu => "ghcr.io/tansu-io/tansu:0.6.0",
        }
    }

    fn image_in_code(&self) -> Option<&str> {
        self.image.as_deref()
    }

    fn ready_timeout(&self) -> Duration {
        self.ready_timeout
    }

    fn plan(&self, image: ImageRef, context: &PlanContext) -> (ContainerPlan, Access) {
        let port = context.host_port;
        let cluster_id = crate::secret::cluster_id();
        let env: Vec<(String, String)> = match self.flavour {
            KafkaFlavour::Apache => [
                ("KAFKA_NODE_ID", "1".to_string()),
                ("KAFKA_PROCESS_ROLES", "broker,controller".into()),
                (
                    "KAFKA_LISTENERS",
                    format!("PLAINTEXT://:{port},BROKER://:{INTERNAL_PORT},CONTROLLER://:9094"),
                ),
                (
                    "KAFKA_ADVERTISED_LISTENERS",
                    format!(
                        "PLAINTEXT://{}:{port},BROKER://{}:{INTERNAL_PORT}",
                        context.host, context.container_name
                    ),
                ),
                (
                    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                    "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
                ),
                ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER".into()),
                ("KAFKA_INTER_BROKER_LISTENER_NAME", "BROKER".into()),
                ("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9094".into()),
                ("CLUSTER_ID", cluster_id),
                ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1".into()),
                ("KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS", "1".into()),
                ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1".into()),
                ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1".into()),
                // The first consumer group of a test must not wait 3 s for members that never come.
                ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            KafkaFlavour::Tansu => [
                ("LISTENER_URL", format!("tcp://0.0.0.0:{port}")),
                (
                    "ADVERTISED_LISTENER_URL",
                    format!("tcp://{}:{port}", context.host),
                ),
                ("STORAGE_ENGINE", "memory://tansu/".into()),
                ("CLUSTER_ID", cluster_id),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        };
        let plan = ContainerPlan {
            service: Self::KIND,
            image,
            env,
            cmd: Vec::new(),
            ports: Vec::new(),
            fixed_ports: vec![(port, port)],
            tmpfs: Vec::new(),
        };
        (plan, Access { port })
    }

    fn server(&self, access: Access, container: &StartedContainer) -> KafkaServer {
        KafkaServer {
            bootstrap: format!("{}:{}", container.host, access.port),
            internal: match self.flavour {
                KafkaFlavour::Apache => Some(format!("{}:{INTERNAL_PORT}", container.name)),
                KafkaFlavour::Tansu => None,
            },
        }
    }
}

/// A running Kafka broker.
///
/// ```no_run
/// # async fn demo() -> drydock::Result<()> {
/// let env = drydock::Env::builder().with_kafka(drydock::Kafka::default()).start().await?;
/// let kafka = env.kafka()?.slice();                // topic names and group ids of its own
/// let topic = kafka.create_topic("orders", 3).await?;
/// kafka.produce_json(&topic, "order-1", &serde_json::json!({"item": "rope"})).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct KafkaServer {
    bootstrap: String,
    internal: Option<String>,
}

impl KafkaServer {
    /// A broker drydock did not start, e.g. to check how clients behave against a dead address.
    pub fn external(bootstrap: impl Into<String>) -> Self {
        KafkaServer {
            bootstrap: bootstrap.into(),
            internal: None,
        }
    }

    /// `host:port` for `bootstrap.servers` from this process.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// `name:port` for containers on the environment's network (apache flavour).
    pub fn internal_bootstrap_servers(&self) -> Option<&str> {
        self.internal.as_deref()
    }

    /// A slice with a fresh prefix for topic names and group ids. In an owned environment its
    /// topics go with the broker; a shared environment's slices come from
    /// [`Slice::kafka`](crate::Slice::kafka) and are deleted on release.
    pub fn slice(&self) -> KafkaSlice {
        KafkaSlice::new(self.clone(), format!("t{}_", crate::secret::short_id()))
    }
}

impl fmt::Debug for KafkaServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KafkaServer({})", self.bootstrap)
    }
}

impl Probe for KafkaServer {
    async fn probe(&self) -> std::result::Result<(), String> {
        clients::probe(self).await
    }
}
