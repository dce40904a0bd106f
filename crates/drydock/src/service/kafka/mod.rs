//! Kafka: a real Kafka-protocol broker, reachable from this process and from containers on the
//! environment's network, ready when it answers Metadata listing itself and takes a write.
//!
//! The advertised-listener problem (a broker must advertise an address clients outside its
//! container can reach, but a published port is known only after start) is solved by reserving a
//! free host port first and publishing it one-to-one: the broker listens on that same port inside
//! its container and advertises `host:port` from the start.

mod clients;
mod slice;

use std::{fmt, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use clients::{delete_prefixed, SharedAdmin};
pub use clients::{FastStart, Received};
pub use slice::{KafkaConsumer, KafkaSlice};

use super::Router;
use super::{
    Common, ContainerPlan, Lease, PlanContext, Service, Sharing, SliceId, StartedContainer,
};
use crate::{
    error::{BoxError, Result},
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

/// A Kafka broker to run. Each test's topics and groups carry a prefix of its own.
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
    common: Common,
    flavour: KafkaFlavour,
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
            common: Common::default(),
            flavour,
        }
    }
}

/// What slices are cut from: the broker, and whether a slice's topics are its own to delete.
pub struct KafkaSlicer {
    server: KafkaServer,
    sharing: Sharing,
    /// Deletes released slices' topics: one client for every release, not two per release.
    admin: SharedAdmin,
}

impl Service for Kafka {
    const KIND: &'static str = "kafka";
    type Server = KafkaServer;
    type Slicer = KafkaSlicer;
    type Scope = String;
    type Handle = KafkaSlice;

    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }

    fn default_image(&self) -> &str {
        match self.flavour {
            KafkaFlavour::Apache => "apache/kafka:3.9.1",
            KafkaFlavour::Tansu => "ghcr.io/tansu-io/tansu:0.6.0",
        }
    }

    fn default_ready_timeout(&self) -> Duration {
        // A JVM broker is slow to start.
        Duration::from_secs(90)
    }

    fn start_first(&self) -> bool {
        // A JVM broker takes seconds; tansu is as quick as the others.
        self.flavour == KafkaFlavour::Apache
    }

    fn plan(&self, image: ImageRef, context: &mut PlanContext) -> Result<ContainerPlan> {
        let port = context.reserve_host_port()?;
        let host = context.host().to_string();
        let cluster_id = crate::secret::cluster_id();
        let env: Vec<(&str, String)> = match self.flavour {
            KafkaFlavour::Apache => vec![
                ("KAFKA_NODE_ID", "1".to_string()),
                ("KAFKA_PROCESS_ROLES", "broker,controller".into()),
                (
                    "KAFKA_LISTENERS",
                    format!("PLAINTEXT://:{port},BROKER://:{INTERNAL_PORT},CONTROLLER://:9094"),
                ),
                (
                    "KAFKA_ADVERTISED_LISTENERS",
                    format!(
                        "PLAINTEXT://{host}:{port},BROKER://{}:{INTERNAL_PORT}",
                        context.container_name()
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
            ],
            KafkaFlavour::Tansu => vec![
                ("LISTENER_URL", format!("tcp://0.0.0.0:{port}")),
                ("ADVERTISED_LISTENER_URL", format!("tcp://{host}:{port}")),
                ("STORAGE_ENGINE", "memory://tansu/".into()),
                ("CLUSTER_ID", cluster_id),
            ],
        };
        let mut plan = ContainerPlan::new(image).fixed_port(port, port);
        for (name, value) in env {
            plan = plan.env(name, value);
        }
        Ok(plan)
    }

    fn server(&self, plan: &ContainerPlan, container: &StartedContainer) -> Result<KafkaServer> {
        // The advertised port is published as itself, the same inside and out. Read from the
        // container, not the plan: a container adopted from a keeper that died was started
        // with its predecessor's plan, and another port.
        let port = match container
            .ports()
            .iter()
            .find(|(inside, outside)| inside == outside)
        {
            Some((port, _)) => *port,
            // Not published: the error names the port the plan asked for.
            None => {
                container.host_port(plan.fixed_ports.first().map_or(0, |(_, inside)| *inside))?
            }
        };
        Ok(KafkaServer {
            bootstrap: format!("{}:{port}", container.host()),
            internal: match self.flavour {
                KafkaFlavour::Apache => Some(format!("{}:{INTERNAL_PORT}", container.name())),
                KafkaFlavour::Tansu => None,
            },
            direct: None,
            route: None,
        })
    }

    async fn probe(
        &self,
        server: &KafkaServer,
        _: &StartedContainer,
    ) -> std::result::Result<(), BoxError> {
        clients::probe(server).await.map_err(Into::into)
    }

    async fn prepare(&self, server: &KafkaServer, sharing: Sharing) -> Result<KafkaSlicer> {
        Ok(KafkaSlicer {
            server: server.clone(),
            sharing,
            admin: SharedAdmin::default(),
        })
    }

    /// The broker a keeper that died started: topics are names under each slice's prefix,
    /// and a successor's slice numbers (so prefixes) never repeat its predecessor's.
    async fn adopt(&self, server: &KafkaServer) -> Result<Option<KafkaSlicer>> {
        Ok(Some(KafkaSlicer {
            server: server.clone(),
            sharing: Sharing::Shared,
            admin: SharedAdmin::default(),
        }))
    }

    /// A prefix a test holds from a keeper that died: its topics are deleted when it ends.
    fn reclaim(slicer: &Arc<KafkaSlicer>, prefix: &String) -> Option<Lease<String>> {
        Some(slicer.topics_of(prefix.clone()))
    }

    fn owned_scope(_: &KafkaSlicer) -> String {
        String::new()
    }

    async fn cut(slicer: &Arc<KafkaSlicer>, slice: SliceId) -> Result<Lease<String>> {
        let prefix = slice.prefix();
        Ok(match slicer.sharing {
            Sharing::Owned => Lease::unguarded(prefix),
            // Names, not resources: the test creates its topics; they are deleted on release.
            Sharing::Shared => slicer.topics_of(prefix),
        })
    }

    fn route(server: &KafkaServer, router: &mut Router) -> Result<KafkaServer> {
        // Protocol-aware: the broker's answers name the proxy, so every connection a client
        // opens (not only the bootstrap one) goes through it.
        let bootstrap = router.via_kafka(&server.bootstrap)?;
        Ok(KafkaServer {
            bootstrap,
            direct: Some(server.bootstrap.clone()),
            route: router.last_handed().cloned(),
            ..server.clone()
        })
    }

    fn handle(server: &KafkaServer, prefix: String) -> KafkaSlice {
        KafkaSlice::new(server.clone(), prefix)
    }

    fn vars(kafka: &KafkaSlice) -> Vec<(String, String)> {
        vec![
            (
                "KAFKA_BOOTSTRAP_SERVERS".into(),
                kafka.server().bootstrap_servers().into(),
            ),
            ("KAFKA_TOPIC_PREFIX".into(), kafka.prefix().into()),
        ]
    }

    fn diagnose(kafka: &KafkaSlice) -> Vec<String> {
        vec![
            format!("topic prefix: {:?}", kafka.prefix()),
            format!(
                "read a topic: kcat -b {} -C -o beginning -t {}<topic>",
                kafka.server().bootstrap_servers(),
                kafka.prefix()
            ),
        ]
    }
}

impl KafkaSlicer {
    /// The lease on `prefix`: its topics are deleted when it ends.
    fn topics_of(&self, prefix: String) -> Lease<String> {
        Lease::new(
            prefix.clone(),
            SliceTopics {
                server: self.server.clone(),
                admin: self.admin.clone(),
                prefix,
            },
        )
    }
}

/// A slice's topics, deleted (in the background) when the lease ends.
struct SliceTopics {
    server: KafkaServer,
    admin: SharedAdmin,
    prefix: String,
}

impl Drop for SliceTopics {
    fn drop(&mut self) {
        let (server, admin, prefix) = (
            self.server.clone(),
            self.admin.clone(),
            std::mem::take(&mut self.prefix),
        );
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            super::quiet::after_attach().await;
            if let Err(e) = delete_prefixed(&server, &admin, &prefix).await {
                eprintln!("drydock keeper: deleting the topics of slice {prefix}: {e}");
            }
        });
    }
}

/// A running Kafka broker.
#[derive(Clone, Serialize, Deserialize)]
pub struct KafkaServer {
    bootstrap: String,
    internal: Option<String>,
    /// The broker itself, when `bootstrap` is a fault proxy's.
    #[serde(default)]
    direct: Option<String>,
    /// That fault proxy, in the process that routed through it: handles that must outlive the
    /// slice (a consumer closing late) keep it.
    #[serde(skip)]
    route: Option<crate::fault::FaultProxy>,
}

impl KafkaServer {
    /// A broker drydock did not start, e.g. to check how clients behave against a dead address.
    pub fn external(bootstrap: impl Into<String>) -> Self {
        KafkaServer {
            bootstrap: bootstrap.into(),
            internal: None,
            direct: None,
            route: None,
        }
    }

    /// `host:port` for `bootstrap.servers` from this process.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The broker itself, not through the fault proxy of the environment or slice this came
    /// from (faults do not apply; it outlives the slice).
    pub fn direct(&self) -> KafkaServer {
        let mut direct = self.clone();
        if let Some(bootstrap) = direct.direct.take() {
            direct.bootstrap = bootstrap;
            direct.route = None;
        }
        direct
    }

    /// The fault proxy `bootstrap` belongs to, if this process routed through one.
    pub(crate) fn route(&self) -> Option<&crate::fault::FaultProxy> {
        self.route.as_ref()
    }

    /// `name:port` for containers on the environment's network (apache flavour).
    pub fn internal_bootstrap_servers(&self) -> Option<&str> {
        self.internal.as_deref()
    }

    /// Names of one's own on this broker: a fresh prefix for topic names and group ids.
    pub fn slice(&self) -> KafkaSlice {
        KafkaSlice::new(self.clone(), format!("t{}_", crate::secret::short_id()))
    }
}

impl fmt::Debug for KafkaServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KafkaServer({})", self.bootstrap)
    }
}
