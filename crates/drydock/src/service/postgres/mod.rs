//! PostgreSQL: the official image's contract, tuned for tests, ready when a login runs `SELECT 1`.
//! A slice is a database cloned from a template that holds the schema.

mod handle;
pub(crate) mod schema;
pub(crate) mod template;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

pub use handle::{PostgresDb, PostgresServer};
use template::ClonePool;

use super::{
    Common, ContainerPlan, Lease, PlanContext, Service, Sharing, SliceId, StartedContainer,
};
use super::{HostPort, Router};
use crate::{
    error::{BoxError, Result},
    image::ImageRef,
    paths,
};

/// The port PostgreSQL listens on inside its container.
pub const PORT: u16 = 5432;
const DATA_DIR: &str = "/var/lib/postgresql/data";
/// The database an owned environment's handle uses (and the image creates).
pub(crate) const DATABASE: &str = "drydock";
const USER: &str = "drydock";

/// PBKDF2 rounds of the password's SCRAM hash; see [`fast_logins`].
const SCRAM_ITERATIONS: u32 = 16;

/// Makes the generated password's SCRAM hash again with [`SCRAM_ITERATIONS`] rounds, so that
/// each login — one per connection a test opens — costs a client microseconds instead of the
/// 4096 rounds of the default (≈ 24 ms in a debug build, where tests run).
///
/// Authentication is not weakened: rounds only slow down someone guessing a password from a
/// stolen hash, and this password is generated (see `secret::generate`), far beyond any
/// guessing; a wrong password is refused exactly as before. Servers before 16, which have no
/// `scram_iterations`, keep their hash.
async fn fast_logins(server: &PostgresServer) -> Result<()> {
    use sqlx::{ConnectOptions, Executor};
    let connect_error = |e| server.connect_error("postgres", e);
    // The statement carries the password: never logged.
    let mut conn = server
        .connect_options_for(DATABASE)
        .disable_statement_logging()
        .connect()
        .await
        .map_err(connect_error)?;
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&mut conn)
        .await
        .map_err(connect_error)?;
    if version >= 160_000 {
        conn.execute(sqlx::AssertSqlSafe(format!(
            "SET scram_iterations = {SCRAM_ITERATIONS}; ALTER ROLE {USER} PASSWORD '{}'",
            server.password().replace('\'', "''")
        )))
        .await
        .map_err(connect_error)?;
    }
    let _ = conn.close().await;
    Ok(())
}

/// A PostgreSQL service to run: image, settings, schema. Credentials are generated when it starts.
///
/// Durability is off (`fsync`, `synchronous_commit`, `full_page_writes`) and the data directory
/// is a tmpfs: a test database that survives a power cut is worth nothing, one that starts fast is.
///
/// ```
/// use drydock::{Postgres, ServiceExt};
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
    common: Common,
    settings: Vec<(String, String)>,
    migrations: Option<PathBuf>,
    fixtures: Vec<PathBuf>,
    clone_pool: usize,
}

impl Default for Postgres {
    fn default() -> Self {
        Postgres {
            common: Common::default(),
            settings: [
                ("fsync", "off"),
                ("synchronous_commit", "off"),
                ("full_page_writes", "off"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            migrations: None,
            fixtures: Vec::new(),
            clone_pool: 8,
        }
    }
}

impl Postgres {
    /// Passes `-c name=value` to the server; a later value for the same name wins.
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.settings.retain(|(k, _)| *k != name);
        self.settings.push((name, value.into()));
        self
    }

    /// A `sqlx` migrations directory (a relative path starts from the calling crate's directory,
    /// `CARGO_MANIFEST_DIR`). An owned environment applies it to its database; a shared one
    /// applies it once, to the template its slices are cloned from.
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

    pub(crate) fn clone_pool_size(&self) -> usize {
        self.clone_pool
    }
}

/// What slices are cut from: a shared environment's migrated template and its pool of ready
/// clones (an owned environment has none: its handle is the server's own database).
pub struct PostgresSlicer(Option<Arc<ClonePool>>);

impl Service for Postgres {
    const KIND: &'static str = "postgres";
    type Server = PostgresServer;
    type Slicer = PostgresSlicer;
    type Scope = String;
    type Handle = PostgresDb;

    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }

    fn default_image(&self) -> &str {
        "postgres:17-alpine"
    }

    fn identity(&self) -> Result<serde_json::Value> {
        let (migrations, fixtures) = self.schema_files();
        Ok(serde_json::json!({
            "spec": serde_json::to_value(self).map_err(|e| super::spec_error(Self::KIND, e))?,
            "schema": schema::fingerprint(migrations, fixtures)?,
        }))
    }

    fn files(&self) -> Vec<PathBuf> {
        self.migrations
            .iter()
            .chain(&self.fixtures)
            .cloned()
            .collect()
    }

    fn resolve_paths(&mut self, base: &Path) -> Result<()> {
        if let Some(dir) = &self.migrations {
            self.migrations = Some(paths::resolve(base, dir, "migrations directory")?);
        }
        for file in &mut self.fixtures {
            *file = paths::resolve(base, file, "fixture")?;
        }
        Ok(())
    }

    fn start_first(&self) -> bool {
        // initdb, then the server: ≈ 1 s after the container starts, the others ≈ 0.1–0.3 s.
        true
    }

    fn plan(&self, image: ImageRef, _: &mut PlanContext) -> Result<ContainerPlan> {
        let mut cmd = vec!["postgres".to_string()];
        for (name, value) in &self.settings {
            cmd.push("-c".into());
            cmd.push(format!("{name}={value}"));
        }
        Ok(ContainerPlan::new(image)
            .env("POSTGRES_USER", USER)
            .env("POSTGRES_PASSWORD", crate::secret::generate())
            .env("POSTGRES_DB", DATABASE)
            .env("PGDATA", DATA_DIR)
            .cmd(cmd)
            .port(PORT)
            .tmpfs(DATA_DIR))
    }

    fn server(&self, plan: &ContainerPlan, container: &StartedContainer) -> Result<PostgresServer> {
        Ok(PostgresServer {
            host: container.host().to_string(),
            port: container.host_port(PORT)?,
            container_name: container.name().to_string(),
            user: USER.into(),
            password: plan
                .env_value("POSTGRES_PASSWORD")
                .unwrap_or_default()
                .into(),
            direct: None,
        })
    }

    async fn probe(
        &self,
        server: &PostgresServer,
        _: &StartedContainer,
    ) -> std::result::Result<(), BoxError> {
        let mut conn = PgConnection::connect_with(&server.connect_options_for(DATABASE)).await?;
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
        let _ = conn.close().await;
        if one == 1 {
            Ok(())
        } else {
            Err(format!("SELECT 1 returned {one}").into())
        }
    }

    async fn prepare(&self, server: &PostgresServer, sharing: Sharing) -> Result<PostgresSlicer> {
        fast_logins(server).await?;
        let (migrations, fixtures) = self.schema_files();
        match sharing {
            Sharing::Owned => {
                schema::apply(&server.connect_options_for(DATABASE), migrations, fixtures).await?;
                Ok(PostgresSlicer(None))
            }
            // The template gets the schema, not the server's own database.
            Sharing::Shared => Ok(PostgresSlicer(Some(
                ClonePool::prepare(server, self).await?,
            ))),
        }
    }

    async fn adopt(&self, server: &PostgresServer) -> Result<Option<PostgresSlicer>> {
        Ok(ClonePool::adopt(server, self)
            .await?
            .map(|pool| PostgresSlicer(Some(pool))))
    }

    fn reclaim(slicer: &Arc<PostgresSlicer>, database: &String) -> Option<Lease<String>> {
        slicer.0.as_ref().map(|pool| pool.reclaim(database))
    }

    fn owned_scope(_: &PostgresSlicer) -> String {
        DATABASE.into()
    }

    async fn cut(slicer: &Arc<PostgresSlicer>, _: SliceId) -> Result<Lease<String>> {
        match &slicer.0 {
            None => Ok(Lease::unguarded(DATABASE.into())),
            Some(pool) => pool.acquire().await,
        }
    }

    fn route(server: &PostgresServer, router: &mut Router) -> Result<PostgresServer> {
        server.routed(router)
    }

    fn handle(server: &PostgresServer, database: String) -> PostgresDb {
        PostgresDb {
            server: server.clone(),
            database,
        }
    }

    fn vars(db: &PostgresDb) -> Vec<(String, String)> {
        vec![("DATABASE_URL".into(), db.url())]
    }

    fn diagnose(db: &PostgresDb) -> Vec<String> {
        vec![
            format!("database: {}", db.database()),
            format!(
                "connect: PGPASSWORD={} psql -h {} -p {} -U {} {}",
                if crate::secret::shown() {
                    db.password()
                } else {
                    "<masked: DRYDOCK_SHOW_SECRETS=1 shows it>"
                },
                db.host(),
                db.port(),
                db.user(),
                db.database()
            ),
        ]
    }
}
