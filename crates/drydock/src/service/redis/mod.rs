//! Redis: the official image's contract, no persistence, ready when it answers `PING`. A slice is
//! a logical database of its own, flushed when given back.

pub(crate) mod databases;

use std::{fmt, sync::Arc, time::Duration};

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use databases::DatabaseLeases;

use super::{
    Common, ContainerPlan, Lease, PlanContext, Service, Sharing, SliceId, StartedContainer,
};
use super::{HostPort, Router};
use crate::{
    error::{BoxError, Error, Result},
    image::ImageRef,
};

/// The port Redis listens on inside its container.
pub const PORT: u16 = 6379;
/// Logical databases of a shared environment unless the spec says otherwise: one per
/// concurrently running test.
const SHARED_DATABASES: u32 = 256;

/// A Redis service to run.
///
/// Persistence is off (`--save ""`, `--appendonly no`) and `/data` is a tmpfs.
///
/// ```
/// use drydock::{Redis, ServiceExt};
///
/// let redis = Redis::default().image("redis:7.4-alpine").databases(64);
/// # let _ = redis;
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Redis {
    common: Common,
    databases: Option<u32>,
    /// How long a test of a shared environment waits for a free database (`None`: 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_timeout: Option<Duration>,
}

impl Redis {
    /// The number of logical databases (`--databases`; Redis' default is 16, a shared
    /// environment's 256, one per concurrently running test).
    pub fn databases(mut self, count: u32) -> Self {
        self.databases = Some(count);
        self
    }

    /// How long a test of a shared environment waits for a free logical database when every
    /// one is leased to a running test (60 s): long enough for a test to end and give one
    /// back, short enough that too small a [`databases`](Self::databases) is reported, naming
    /// the slices that hold them, rather than hanging the run.
    pub fn lease_timeout(mut self, bound: Duration) -> Self {
        self.lease_timeout = Some(bound);
        self
    }

    /// How many logical databases run: as set, else Redis' default for an owned environment
    /// and enough for every concurrently running test of a shared one.
    fn database_count(&self, sharing: Sharing) -> Option<u32> {
        match sharing {
            Sharing::Owned => self.databases,
            Sharing::Shared => Some(self.databases.unwrap_or(SHARED_DATABASES)),
        }
    }
}

impl Service for Redis {
    const KIND: &'static str = "redis";
    type Server = RedisServer;
    type Slicer = Option<Arc<DatabaseLeases>>;
    type Scope = u32;
    type Handle = RedisDb;

    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }

    fn default_image(&self) -> &str {
        "redis:7-alpine"
    }

    fn default_ready_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn plan(&self, image: ImageRef, context: &mut PlanContext) -> Result<ContainerPlan> {
        // Arguments starting with '-' are appended to redis-server by the image's entrypoint.
        // A generated password: loopback is shared by every local user.
        let mut cmd: Vec<String> = ["--save", "", "--appendonly", "no", "--requirepass"]
            .into_iter()
            .map(String::from)
            .collect();
        cmd.push(crate::secret::generate());
        if let Some(count) = self.database_count(context.sharing()) {
            // Redis refuses to start with none, and says so only in its log.
            if count == 0 {
                return Err(Error::Spec {
                    service: self.name().to_string(),
                    problem: "databases(0): Redis needs at least one logical database".into(),
                    fix: "give databases(n) with n ≥ 1 (a shared environment needs one per \
                          concurrently running test), or leave it out"
                        .into(),
                });
            }
            cmd.extend(["--databases".to_string(), count.to_string()]);
        }
        Ok(ContainerPlan::new(image).cmd(cmd).port(PORT).tmpfs("/data"))
    }

    fn server(&self, plan: &ContainerPlan, container: &StartedContainer) -> Result<RedisServer> {
        let password = plan
            .cmd
            .iter()
            .skip_while(|arg| *arg != "--requirepass")
            .nth(1)
            .cloned()
            .unwrap_or_default();
        Ok(RedisServer {
            host: container.host().to_string(),
            port: container.host_port(PORT)?,
            container_name: container.name().to_string(),
            password,
            direct: None,
        })
    }

    async fn probe(
        &self,
        server: &RedisServer,
        _: &StartedContainer,
    ) -> std::result::Result<(), BoxError> {
        let mut conn = redis::Client::open(server.url_for_db(0))?
            .get_multiplexed_async_connection()
            .await?;
        let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(format!("PING answered {pong:?}").into())
        }
    }

    async fn prepare(&self, server: &RedisServer, sharing: Sharing) -> Result<Self::Slicer> {
        Ok(match sharing {
            Sharing::Owned => None,
            Sharing::Shared => Some(DatabaseLeases::new(
                server.clone(),
                self.database_count(sharing).unwrap_or(16),
                self.lease_timeout.unwrap_or(databases::ACQUIRE_TIMEOUT),
            )),
        })
    }

    fn owned_scope(_: &Self::Slicer) -> u32 {
        0
    }

    async fn adopt(&self, server: &RedisServer) -> Result<Option<Self::Slicer>> {
        Ok(Some(Some(DatabaseLeases::adopted(
            server.clone(),
            self.database_count(Sharing::Shared).unwrap_or(16),
            self.lease_timeout.unwrap_or(databases::ACQUIRE_TIMEOUT),
        ))))
    }

    fn reclaim(slicer: &Arc<Self::Slicer>, db: &u32) -> Option<Lease<u32>> {
        slicer.as_ref().as_ref()?.reclaim(*db)
    }

    async fn cut(slicer: &Arc<Self::Slicer>, slice: SliceId) -> Result<Lease<u32>> {
        match &**slicer {
            None => Ok(Lease::unguarded(0)),
            Some(leases) => leases.acquire(slice).await,
        }
    }

    fn route(server: &RedisServer, router: &mut Router) -> Result<RedisServer> {
        server.routed(router)
    }

    fn handle(server: &RedisServer, db: u32) -> RedisDb {
        RedisDb {
            server: server.clone(),
            db,
        }
    }

    fn vars(db: &RedisDb) -> Vec<(String, String)> {
        vec![("REDIS_URL".into(), db.url())]
    }

    fn diagnose(db: &RedisDb) -> Vec<String> {
        vec![
            format!("database: {}", db.db()),
            format!(
                "connect: redis-cli -h {} -p {} -n {} --no-auth-warning -a {}",
                db.server.host,
                db.server.port,
                db.db,
                if crate::secret::shown() {
                    db.server.password.as_str()
                } else {
                    "<masked: DRYDOCK_SHOW_SECRETS=1 shows it>"
                }
            ),
        ]
    }
}

/// A running Redis server of an environment.
///
/// Its port is published on loopback only, and it asks for a password generated per
/// environment (`--requirepass`): loopback is shared by every user of the machine. The URLs it
/// hands out carry it (`redis://:<password>@host:port/db`), which every Redis client reads, so a
/// system under test given `REDIS_URL` authenticates with nothing more.
#[derive(Clone, Serialize, Deserialize)]
pub struct RedisServer {
    host: String,
    port: u16,
    container_name: String,
    /// The generated password. Never log it: `Debug` leaves it out.
    #[serde(default)]
    password: String,
    /// The server itself, when `host`/`port` are a fault proxy's.
    #[serde(default)]
    direct: Option<(String, u16)>,
}

impl HostPort for RedisServer {
    fn address_mut(&mut self) -> (&mut String, &mut u16, &mut Option<(String, u16)>) {
        (&mut self.host, &mut self.port, &mut self.direct)
    }
}

impl RedisServer {
    /// The server itself, not through the fault proxy of the environment or slice this came
    /// from (faults do not apply; it outlives the slice).
    pub fn direct(&self) -> RedisServer {
        self.unrouted()
    }

    /// The host clients in this process connect to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The published port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of logical database `db`, with the password: `redis://:<password>@host:port/db`.
    pub fn url_for_db(&self, db: u32) -> String {
        format!(
            "redis://{}{}:{}/{db}",
            self.userinfo(),
            self.host,
            self.port
        )
    }

    /// The generated password (empty for a server started without one).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `:<password>@`, or nothing without a password.
    fn userinfo(&self) -> String {
        if self.password.is_empty() {
            String::new()
        } else {
            format!(":{}@", self.password)
        }
    }

    /// A client for logical database `db`.
    pub fn client_for_db(&self, db: u32) -> Result<redis::Client> {
        redis::Client::open(self.url_for_db(db)).map_err(|e| self.connect_error(e))
    }

    pub(crate) fn connect_error(&self, e: redis::RedisError) -> Error {
        Error::connect(Redis::KIND, format!("{}:{}", self.host, self.port), e)
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisServer({}:{})", self.host, self.port)
    }
}

/// One logical database of a Redis server: 0 in an owned environment, a leased one (empty,
/// flushed when given back) in a slice. The same type either way.
///
/// ```no_run
/// # async fn demo() -> drydock::Result<()> {
/// use redis::AsyncCommands;
///
/// let env = drydock::Env::builder().with_redis(drydock::Redis::default()).start().await?;
/// let mut redis = env.redis()?.connection_manager().await?;
/// let _: () = redis.set("greeting", "hello").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisDb {
    server: RedisServer,
    db: u32,
}

impl RedisDb {
    /// The logical database's number.
    pub fn db(&self) -> u32 {
        self.db
    }

    /// `redis://:<password>@host:port/<db>`, for `REDIS_URL`.
    pub fn url(&self) -> String {
        self.server.url_for_db(self.db)
    }

    /// The URL for containers on the environment's network.
    pub fn internal_url(&self) -> String {
        format!(
            "redis://{}{}:{PORT}/{}",
            self.server.userinfo(),
            self.server.container_name,
            self.db
        )
    }

    /// A client for the database.
    pub fn client(&self) -> Result<redis::Client> {
        self.server.client_for_db(self.db)
    }

    /// A reconnecting connection to the database.
    pub async fn connection_manager(&self) -> Result<ConnectionManager> {
        ConnectionManager::new(self.client()?)
            .await
            .map_err(|e| self.server.connect_error(e))
    }

    /// The server.
    pub fn server(&self) -> &RedisServer {
        &self.server
    }

    /// The host clients in this process connect to.
    pub fn host(&self) -> &str {
        self.server.host()
    }

    /// The published port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }
}

impl fmt::Debug for RedisDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RedisDb({}:{}/{})",
            self.server.host, self.server.port, self.db
        )
    }
}
