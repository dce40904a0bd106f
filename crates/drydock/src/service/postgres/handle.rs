//! How tests reach PostgreSQL: the server, and one database of it (the handle).

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};

use super::{Postgres, PORT};
use crate::{
    error::{Error, Result},
    service::{HostPort, Service},
};

/// A running PostgreSQL server: where it is and its generated login. For several databases on
/// one server; a test usually holds a [`PostgresDb`].
#[derive(Clone, Serialize, Deserialize)]
pub struct PostgresServer {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) container_name: String,
    pub(super) user: String,
    pub(super) password: String,
    /// The server itself, when `host`/`port` are a fault proxy's.
    #[serde(default)]
    pub(super) direct: Option<(String, u16)>,
}

impl HostPort for PostgresServer {
    fn address_mut(&mut self) -> (&mut String, &mut u16, &mut Option<(String, u16)>) {
        (&mut self.host, &mut self.port, &mut self.direct)
    }
}

impl PostgresServer {
    /// The server itself, not through the fault proxy of the environment or slice this came
    /// from (faults do not apply; it outlives the slice).
    pub fn direct(&self) -> PostgresServer {
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

    /// The generated user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The generated password. Never log it: errors and `Debug` output leave it out.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `postgres://user:password@host:port/<database>`.
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{database}",
            self.user, self.password, self.host, self.port
        )
    }

    /// The URL of `database` for containers on the environment's network (by name, port 5432).
    pub fn internal_url_for(&self, database: &str) -> String {
        format!(
            "postgres://{}:{}@{}:{PORT}/{database}",
            self.user, self.password, self.container_name
        )
    }

    /// Connection options for `database`.
    pub fn connect_options_for(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(&self.password)
            .database(database)
    }

    /// A small pool on `database`.
    pub async fn pool_for(&self, database: &str) -> Result<PgPool> {
        PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(self.connect_options_for(database))
            .await
            .map_err(|e| self.connect_error(database, e))
    }

    pub(crate) fn connect_error(&self, database: &str, e: sqlx::Error) -> Error {
        Error::connect(
            Postgres::KIND,
            format!("{}:{}/{database}", self.host, self.port),
            e,
        )
    }
}

impl fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresServer")
            .field("endpoint", &format!("{}:{}", self.host, self.port))
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One database on a PostgreSQL server: the environment's own (`drydock`) when it is owned, a
/// clone of the migrated template when it is a slice's. The same type either way.
///
/// ```no_run
/// # async fn demo() -> drydock::Result<()> {
/// let env = drydock::Env::builder().with_postgres(drydock::Postgres::default()).start().await?;
/// let pool = env.postgres()?.pool().await?;
/// let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
/// assert_eq!(one, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresDb {
    pub(super) server: PostgresServer,
    pub(super) database: String,
}

impl PostgresDb {
    /// The database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `postgres://user:password@host:port/<database>`, for `DATABASE_URL`.
    pub fn url(&self) -> String {
        self.server.url_for(&self.database)
    }

    /// The URL for containers on the environment's network.
    pub fn internal_url(&self) -> String {
        self.server.internal_url_for(&self.database)
    }

    /// Connection options for the database.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.server.connect_options_for(&self.database)
    }

    /// A small pool on the database.
    pub async fn pool(&self) -> Result<PgPool> {
        self.server.pool_for(&self.database).await
    }

    /// The server (its host, port and credentials).
    pub fn server(&self) -> &PostgresServer {
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

    /// The generated user name.
    pub fn user(&self) -> &str {
        self.server.user()
    }

    /// The generated password.
    pub fn password(&self) -> &str {
        self.server.password()
    }
}

impl fmt::Debug for PostgresDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PostgresDb({}:{}/{})",
            self.server.host, self.server.port, self.database
        )
    }
}
