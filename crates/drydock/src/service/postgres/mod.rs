//! PostgreSQL: the official image's contract, tuned for tests, ready when a login runs `SELECT 1`.

pub(crate) mod schema;
pub(crate) mod template;

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    Connection, PgConnection, PgPool,
};

use super::{PlanContext, Probe, Service};
use crate::{
    docker::{ContainerPlan, StartedContainer},
    error::{Error, Result},
    image::ImageRef,
};

/// The port PostgreSQL listens on inside its container.
pub const PORT: u16 = 5432;
const DATA_DIR: &str = "/var/lib/postgresql/data";

/// A PostgreSQL service to run: image, settings, schema. Credentials are generated when it starts.
///
/// Durability is off (`fsync`, `synchronous_commit`, `full_page_writes`) and the data directory
/// is a tmpfs: a test database that survives a power cut is worth nothing, one that starts fast is.
///
/// ```
/// use drydock::Postgres;
///
/// let postgres = Postgres::default()
///     .image("postgres:16-alpine")
///     .setting("max_connections", "300")
///     .migrations("migrations")          // a sqlx migrations directory
///     .fixture("fixtures/countries.sql") // SQL run after the migrations
///     .ready_timeout(std::time::Duration::from_secs(90));
/// # let _ = postgres;
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Postgres {
    image: Option<String>,
    settings: Vec<(String, String)>,
    ready_timeout: Duration,
    migrations: Option<PathBuf>,
    fixtures: Vec<PathBuf>,
    clone_pool: usize,
}

impl Default for Postgres {
    fn default() -> Self {
        Postgres {
            image: None,
            settings: [
                ("fsync", "off"),
                ("synchronous_commit", "off"),
                ("full_page_writes", "off"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ready_timeout: Duration::from_secs(60),
            migrations: None,
            fixtures: Vec::new(),
            clone_pool: 8,
        }
    }
}

impl Postgres {
    /// Runs this image instead of the default `postgres:17-alpine` (`DRYDOCK_IMAGE_POSTGRES`
    /// still wins, so CI can substitute).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// Passes `-c name=value` to the server; a later value for the same name wins.
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.settings.retain(|(k, _)| *k != name);
        self.settings.push((name, value.into()));
        self
    }

    /// How long the server may take to accept a login (60 s by default).
    pub fn ready_timeout(mut self, bound: Duration) -> Self {
        self.ready_timeout = bound;
        self
    }

    /// A `sqlx` migrations directory (relative paths are taken from the current directory, which
    /// is the package's directory under `cargo test` and `cargo nextest`). An owned environment
    /// applies it to its database; a shared one applies it once, to the template its slices are
    /// cloned from.
    pub fn migrations(mut self, dir: impl Into<PathBuf>) -> Self {
        self.migrations = Some(dir.into());
        self
    }

    /// A SQL file run after the migrations (fixtures run in the order they were added).
    pub fn fixture(mut self, file: impl Into<PathBuf>) -> Self {
        self.fixtures.push(file.into());
        self
    }

    /// How many cloned databases a shared environment keeps ready ahead of demand (8 by default).
    pub fn clone_pool(mut self, size: usize) -> Self {
        self.clone_pool = size.max(1);
        self
    }

    pub(crate) fn schema_files(&self) -> (Option<&Path>, &[PathBuf]) {
        (self.migrations.as_deref(), &self.fixtures)
    }

    /// The same server, with no schema of its own (a shared environment migrates its template).
    pub(crate) fn without_schema(mut self) -> Self {
        self.migrations = None;
        self.fixtures.clear();
        self
    }

    pub(crate) fn ready_bound(&self) -> Duration {
        self.ready_timeout
    }

    pub(crate) fn clone_pool_size(&self) -> usize {
        self.clone_pool
    }

    /// Makes the schema paths absolute, so the spec means the same in another process.
    pub(crate) fn resolve_paths(&mut self) -> Result<()> {
        if let Some(dir) = &self.migrations {
            self.migrations = Some(schema::absolute(dir, "migrations directory")?);
        }
        for file in &mut self.fixtures {
            *file = schema::absolute(file, "fixture")?;
        }
        Ok(())
    }
}

/// Generated login of one server.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Credentials {
    user: String,
    password: String,
    database: String,
}

impl Service for Postgres {
    const KIND: &'static str = "postgres";
    type Access = Credentials;
    type Server = PostgresServer;

    fn default_image(&self) -> &'static str {
        "postgres:17-alpine"
    }

    fn image_in_code(&self) -> Option<&str> {
        self.image.as_deref()
    }

    fn ready_timeout(&self) -> Duration {
        self.ready_timeout
    }

    fn plan(&self, image: ImageRef, _: &PlanContext) -> (ContainerPlan, Credentials) {
        let credentials = Credentials {
            user: "drydock".into(),
            password: crate::secret::generate(),
            database: "drydock".into(),
        };
        let mut cmd = vec!["postgres".to_string()];
        for (name, value) in &self.settings {
            cmd.push("-c".into());
            cmd.push(format!("{name}={value}"));
        }
        let plan = ContainerPlan {
            service: Self::KIND,
            image,
            env: vec![
                ("POSTGRES_USER".into(), credentials.user.clone()),
                ("POSTGRES_PASSWORD".into(), credentials.password.clone()),
                ("POSTGRES_DB".into(), credentials.database.clone()),
                ("PGDATA".into(), DATA_DIR.into()),
            ],
            cmd,
            ports: vec![PORT],
            fixed_ports: Vec::new(),
            tmpfs: vec![(DATA_DIR, "rw")],
        };
        (plan, credentials)
    }

    fn server(&self, access: Credentials, container: &StartedContainer) -> PostgresServer {
        PostgresServer {
            host: container.host.clone(),
            port: container.host_port(PORT),
            container_name: container.name.clone(),
            credentials: access,
        }
    }
}

/// A running PostgreSQL server of an environment.
///
/// ```no_run
/// # async fn demo() -> drydock::Result<()> {
/// let env = drydock::Env::builder().with_postgres(drydock::Postgres::default()).start().await?;
/// let pool = env.postgres()?.pool().await?;
/// let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.map_err(|e| {
///     drydock::Error::Connect { service: "postgres", endpoint: "pool".into(), cause: e.to_string() }
/// })?;
/// assert_eq!(one, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct PostgresServer {
    host: String,
    port: u16,
    container_name: String,
    credentials: Credentials,
}

impl PostgresServer {
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
        &self.credentials.user
    }

    /// The generated password. Never log it: errors and `Debug` output leave it out.
    pub fn password(&self) -> &str {
        &self.credentials.password
    }

    /// The database created at start.
    pub fn database(&self) -> &str {
        &self.credentials.database
    }

    /// `postgres://user:password@host:port/database`, for `DATABASE_URL`.
    pub fn url(&self) -> String {
        self.url_for(self.database())
    }

    /// The URL of another database on the same server.
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            self.user(),
            self.password(),
            self.host,
            self.port,
            database
        )
    }

    /// The URL for containers on the environment's network (by container name, port 5432).
    pub fn internal_url(&self) -> String {
        format!(
            "postgres://{}:{}@{}:{PORT}/{}",
            self.user(),
            self.password(),
            self.container_name,
            self.database()
        )
    }

    /// Connection options for the created database.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.connect_options_for(self.database())
    }

    /// Connection options for another database on the same server.
    pub fn connect_options_for(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(self.user())
            .password(self.password())
            .database(database)
    }

    /// A small pool on the created database.
    pub async fn pool(&self) -> Result<PgPool> {
        self.pool_for(self.database()).await
    }

    /// A small pool on another database of the same server.
    pub async fn pool_for(&self, database: &str) -> Result<PgPool> {
        PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(self.connect_options_for(database))
            .await
            .map_err(|e| self.connect_error(e))
    }

    fn endpoint(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.database())
    }

    pub(crate) fn connect_error(&self, e: sqlx::Error) -> Error {
        Error::Connect {
            service: Postgres::KIND,
            endpoint: self.endpoint(),
            cause: e.to_string(),
        }
    }
}

impl fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresServer")
            .field("endpoint", &self.endpoint())
            .field("user", &self.credentials.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Probe for PostgresServer {
    async fn probe(&self) -> std::result::Result<(), String> {
        let mut conn = PgConnection::connect_with(&self.connect_options())
            .await
            .map_err(|e| e.to_string())?;
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let _ = conn.close().await;
        if one == 1 {
            Ok(())
        } else {
            Err(format!("SELECT 1 returned {one}"))
        }
    }
}
