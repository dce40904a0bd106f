//! What one test gets from a shared environment.

use std::{collections::HashMap, fmt, os::unix::net::UnixStream};

use redis::aio::ConnectionManager;
use sqlx::{postgres::PgConnectOptions, PgPool};

use super::protocol::SliceGrant;
use crate::{
    error::{Error, Result},
    KafkaSlice, PostgresServer, RedisServer, StubEndpoint,
};

/// This test's own part of a shared environment: a database cloned from the migrated template,
/// a Redis logical database, Kafka names of its own, a namespace on the stub server. Dropping it gives them back (the database is dropped, the Redis
/// database flushed); so does the death of the test process, however it dies.
///
/// ```no_run
/// use drydock::{Env, Postgres, Redis};
///
/// # async fn demo() -> drydock::Result<()> {
/// let slice = Env::builder()
///     .with_postgres(Postgres::default().migrations("migrations"))
///     .with_redis(Redis::default())
///     .attach()
///     .await?;
/// let pool = slice.postgres()?.pool().await?;     // a fresh, migrated database of its own
/// let redis = slice.redis()?.connection_manager().await?; // an empty logical database
/// let config = slice.vars();                      // DATABASE_URL, REDIS_URL for the system under test
/// # let _ = (pool, redis, config);
/// # Ok(()) }
/// ```
pub struct Slice {
    /// The lease: closing it (on drop, or by the kernel when the process dies) releases the slice.
    _lease: UnixStream,
    instance: String,
    postgres: Option<PostgresSlice>,
    redis: Option<RedisSlice>,
    kafka: Option<KafkaSlice>,
    stub: Option<StubEndpoint>,
}

impl Slice {
    pub(crate) fn new(lease: UnixStream, grant: SliceGrant) -> Self {
        Slice {
            _lease: lease,
            instance: grant.instance,
            postgres: grant
                .postgres
                .map(|(server, database)| PostgresSlice { server, database }),
            redis: grant.redis.map(|(server, db)| RedisSlice { server, db }),
            kafka: grant
                .kafka
                .map(|(server, prefix)| KafkaSlice::new(server, prefix)),
            stub: grant.stub,
        }
    }

    /// This test's database.
    pub fn postgres(&self) -> Result<&PostgresSlice> {
        self.postgres.as_ref().ok_or(Error::ServiceNotInEnv {
            service: "postgres",
        })
    }

    /// This test's Redis database.
    pub fn redis(&self) -> Result<&RedisSlice> {
        self.redis
            .as_ref()
            .ok_or(Error::ServiceNotInEnv { service: "redis" })
    }

    /// This test's topic names and consumer groups; its topics are deleted when it ends.
    pub fn kafka(&self) -> Result<&KafkaSlice> {
        self.kafka
            .as_ref()
            .ok_or(Error::ServiceNotInEnv { service: "kafka" })
    }

    /// This test's namespace on the stub server: stubs mounted through it, and requests sent to
    /// its [`url`](StubEndpoint::url), are this test's alone. It starts with the spec's mappings
    /// and is removed when the slice is released.
    pub fn stub(&self) -> Result<&StubEndpoint> {
        self.stub
            .as_ref()
            .ok_or(Error::ServiceNotInEnv { service: "stub" })
    }

    /// The configuration a system under test reads: `DATABASE_URL`, `REDIS_URL` (this slice's),
    /// `KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC_PREFIX` and `STUB_URL` (this slice's namespace).
    pub fn vars(&self) -> HashMap<String, String> {
        let mut vars = HashMap::new();
        if let Some(postgres) = &self.postgres {
            vars.insert("DATABASE_URL".into(), postgres.url());
        }
        if let Some(redis) = &self.redis {
            vars.insert("REDIS_URL".into(), redis.url());
        }
        if let Some(kafka) = &self.kafka {
            vars.insert(
                "KAFKA_BOOTSTRAP_SERVERS".into(),
                kafka.server().bootstrap_servers().into(),
            );
            vars.insert("KAFKA_TOPIC_PREFIX".into(), kafka.prefix().into());
        }
        if let Some(stub) = &self.stub {
            vars.insert("STUB_URL".into(), stub.url());
        }
        vars
    }

    /// The shared environment's instance id (its `drydock.instance` label).
    pub fn instance_id(&self) -> &str {
        &self.instance
    }
}

impl fmt::Debug for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slice")
            .field("instance", &self.instance)
            .field("postgres", &self.postgres)
            .field("redis", &self.redis)
            .field("kafka", &self.kafka)
            .field("stub", &self.stub)
            .finish()
    }
}

/// A database of one test's own, on the shared server.
#[derive(Clone, Debug)]
pub struct PostgresSlice {
    server: PostgresServer,
    database: String,
}

impl PostgresSlice {
    /// The database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `postgres://…/<database>`, for `DATABASE_URL`.
    pub fn url(&self) -> String {
        self.server.url_for(&self.database)
    }

    /// Connection options for the database.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.server.connect_options_for(&self.database)
    }

    /// A small pool on the database.
    pub async fn pool(&self) -> Result<PgPool> {
        self.server.pool_for(&self.database).await
    }

    /// The shared server (its host, port and credentials).
    pub fn server(&self) -> &PostgresServer {
        &self.server
    }
}

/// A logical Redis database of one test's own.
#[derive(Clone, Debug)]
pub struct RedisSlice {
    server: RedisServer,
    db: u32,
}

impl RedisSlice {
    /// The logical database's number.
    pub fn db(&self) -> u32 {
        self.db
    }

    /// `redis://host:port/<db>`, for `REDIS_URL`.
    pub fn url(&self) -> String {
        self.server.url_for_db(self.db)
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

    /// The shared server.
    pub fn server(&self) -> &RedisServer {
        &self.server
    }
}
