//! Redis: the official image's contract, no persistence, ready when it answers `PING`.

pub(crate) mod databases;

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use redis::aio::ConnectionManager;

use super::{PlanContext, Probe, Service};
use crate::{
    docker::{ContainerPlan, StartedContainer},
    error::{Error, Result},
    image::ImageRef,
};

/// The port Redis listens on inside its container.
pub const PORT: u16 = 6379;

/// A Redis service to run.
///
/// Persistence is off (`--save ""`, `--appendonly no`) and `/data` is a tmpfs.
///
/// ```
/// use drydock::Redis;
///
/// let redis = Redis::default().image("redis:7.4-alpine").databases(64);
/// # let _ = redis;
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Redis {
    image: Option<String>,
    databases: Option<u32>,
    ready_timeout: Duration,
}

impl Default for Redis {
    fn default() -> Self {
        Redis {
            image: None,
            databases: None,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

impl Redis {
    /// Runs this image instead of the default `redis:7-alpine` (`DRYDOCK_IMAGE_REDIS` still wins).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// The number of logical databases (`--databases`; Redis' default is 16, a shared
    /// environment's 256, one per concurrently running test).
    pub fn databases(mut self, count: u32) -> Self {
        self.databases = Some(count);
        self
    }

    pub(crate) fn ready_bound(&self) -> Duration {
        self.ready_timeout
    }

    pub(crate) fn database_count(&self) -> Option<u32> {
        self.databases
    }

    /// How long the server may take to answer `PING` (30 s by default).
    pub fn ready_timeout(mut self, bound: Duration) -> Self {
        self.ready_timeout = bound;
        self
    }
}

impl Service for Redis {
    const KIND: &'static str = "redis";
    type Access = ();
    type Server = RedisServer;

    fn default_image(&self) -> &'static str {
        "redis:7-alpine"
    }

    fn image_in_code(&self) -> Option<&str> {
        self.image.as_deref()
    }

    fn ready_timeout(&self) -> Duration {
        self.ready_timeout
    }

    fn plan(&self, image: ImageRef, _: &PlanContext) -> (ContainerPlan, ()) {
        // Arguments starting with '-' are appended to redis-server by the image's entrypoint.
        let mut cmd: Vec<String> = ["--save", "", "--appendonly", "no"]
            .into_iter()
            .map(String::from)
            .collect();
        if let Some(count) = self.databases {
            cmd.extend(["--databases".to_string(), count.to_string()]);
        }
        let plan = ContainerPlan {
            service: Self::KIND,
            image,
            env: Vec::new(),
            cmd,
            ports: vec![PORT],
            fixed_ports: Vec::new(),
            tmpfs: vec![("/data", "rw")],
        };
        (plan, ())
    }

    fn server(&self, _: (), container: &StartedContainer) -> RedisServer {
        RedisServer {
            host: container.host.clone(),
            port: container.host_port(PORT),
            container_name: container.name.clone(),
        }
    }
}

/// A running Redis server of an environment.
///
/// Its port is published on loopback only, which is what keeps it private: the official image
/// runs without a password, and so does this one, so that clients written for it work unchanged.
///
/// ```no_run
/// # async fn demo() -> drydock::Result<()> {
/// use redis::AsyncCommands;
///
/// let env = drydock::Env::builder().with_redis(drydock::Redis::default()).start().await?;
/// let mut redis = env.redis()?.connection_manager().await?;
/// let _: () = redis.set("greeting", "hello").await.map_err(|e| drydock::Error::Connect {
///     service: "redis", endpoint: "set".into(), cause: e.to_string(),
/// })?;
/// # Ok(()) }
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct RedisServer {
    host: String,
    port: u16,
    container_name: String,
}

impl RedisServer {
    /// The host clients in this process connect to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The published port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://host:port/0`, for `REDIS_URL`.
    pub fn url(&self) -> String {
        self.url_for_db(0)
    }

    /// The URL of logical database `db`.
    pub fn url_for_db(&self, db: u32) -> String {
        format!("redis://{}:{}/{db}", self.host, self.port)
    }

    /// The URL for containers on the environment's network.
    pub fn internal_url(&self) -> String {
        format!("redis://{}:{PORT}/0", self.container_name)
    }

    /// A client for database 0.
    pub fn client(&self) -> Result<redis::Client> {
        self.client_for_db(0)
    }

    /// A client for logical database `db`.
    pub fn client_for_db(&self, db: u32) -> Result<redis::Client> {
        redis::Client::open(self.url_for_db(db)).map_err(|e| self.connect_error(e))
    }

    /// A reconnecting connection to database 0.
    pub async fn connection_manager(&self) -> Result<ConnectionManager> {
        ConnectionManager::new(self.client()?)
            .await
            .map_err(|e| self.connect_error(e))
    }

    pub(crate) fn connect_error(&self, e: redis::RedisError) -> Error {
        Error::Connect {
            service: Redis::KIND,
            endpoint: format!("{}:{}", self.host, self.port),
            cause: e.to_string(),
        }
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisServer({}:{})", self.host, self.port)
    }
}

impl Probe for RedisServer {
    async fn probe(&self) -> std::result::Result<(), String> {
        let client = self.client().map_err(|e| e.to_string())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(format!("PING answered {pong:?}"))
        }
    }
}
