//! Slices of a shared server: databases cloned from a migrated template, kept ready in a pool.
//!
//! Migrations run once, into the template. `CREATE DATABASE … TEMPLATE` then copies it in tens of
//! milliseconds, off the test's path: a background worker keeps `clone_pool` clones ready, so a
//! test usually just takes one (IntegreSQL's design).
//!
//! Released clones are dropped by the same worker, but only once the pool is full: creating and
//! dropping both checkpoint and contend, and a test waits for a missing clone, never for a drop.
//! So that garbage cannot grow without bound (the data directory is a tmpfs), more than
//! `MAX_PENDING_DROPS` waiting drops go first.

use crate::sync::lock;
use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use sqlx::{postgres::PgPoolOptions, AssertSqlSafe, PgPool};
use tokio::sync::Notify;

use super::{schema, Postgres, PostgresServer};
use crate::{error::Result, service::Lease};

const TEMPLATE: &str = "drydock_template";
const MAX_PENDING_DROPS: usize = 64;

/// The template database and its pool of ready clones.
pub struct ClonePool {
    admin: PgPool,
    ready: Mutex<VecDeque<String>>,
    released: Mutex<Vec<String>>,
    wanted: Notify,
    target: usize,
    counter: AtomicU64,
    /// Unique to this pool (`drydock_slice_<id>_<n>`): a pool prepared anew after a restart,
    /// or by a keeper that adopted the server, never names a clone as an earlier pool did.
    id: String,
    strategy: &'static str,
}

impl ClonePool {
    /// Creates the template, applies the schema to it, freezes it, and starts filling the pool.
    pub(crate) async fn prepare(server: &PostgresServer, spec: &Postgres) -> Result<Arc<Self>> {
        let admin = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(server.connect_options_for("postgres"))
            .await
            .map_err(|e| server.connect_error("postgres", e))?;
        let sql = |e: sqlx::Error| server.connect_error("postgres", e);
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {TEMPLATE}")))
            .execute(&admin)
            .await
            .map_err(sql)?;
        let (migrations, fixtures) = spec.schema_files();
        schema::apply(&server.connect_options_for(TEMPLATE), migrations, fixtures).await?;
        // No connection may touch the template while it is copied.
        sqlx::query(AssertSqlSafe(format!(
            "ALTER DATABASE {TEMPLATE} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
        )))
        .execute(&admin)
        .await
        .map_err(sql)?;
        Self::over(admin, server, spec).await
    }

    /// The pool of a server whose template a keeper that died prepared; `None` when the
    /// template is not there (complete) to clone from.
    pub(crate) async fn adopt(
        server: &PostgresServer,
        spec: &Postgres,
    ) -> Result<Option<Arc<Self>>> {
        let admin = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(server.connect_options_for("postgres"))
            .await
            .map_err(|e| server.connect_error("postgres", e))?;
        // Frozen last in `prepare`: a template that is one was prepared completely.
        let frozen: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)",
        )
        .bind(TEMPLATE)
        .fetch_one(&admin)
        .await
        .map_err(|e| server.connect_error("postgres", e))?;
        if !frozen {
            return Ok(None);
        }
        Self::over(admin, server, spec).await.map(Some)
    }

    /// A clone of `name` a test holds from a keeper that died: dropped when the lease is.
    pub(crate) fn reclaim(self: &Arc<Self>, name: &str) -> Lease<String> {
        Lease::new(
            name.to_string(),
            LeasedClone {
                pool: Arc::clone(self),
                name: name.to_string(),
            },
        )
    }

    async fn over(admin: PgPool, server: &PostgresServer, spec: &Postgres) -> Result<Arc<Self>> {
        let sql = |e: sqlx::Error| server.connect_error("postgres", e);
        let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
            .fetch_one(&admin)
            .await
            .map_err(sql)?;
        let pool = Arc::new(ClonePool {
            admin,
            ready: Mutex::new(VecDeque::new()),
            released: Mutex::new(Vec::new()),
            wanted: Notify::new(),
            target: spec.clone_pool_size(),
            counter: AtomicU64::new(0),
            id: crate::secret::short_id(),
            // FILE_COPY (PG 15+) copies the directory instead of WAL-logging every block; with
            // fsync off its checkpoints cost little, and it does not serialise on WAL.
            strategy: if version >= 150_000 {
                " STRATEGY FILE_COPY"
            } else {
                ""
            },
        });
        tokio::spawn(Arc::clone(&pool).maintain());
        Ok(pool)
    }

    /// A fresh clone, a ready one when there is one, else made now; dropped (in the
    /// background) when the lease is.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<Lease<String>> {
        let ready = lock(&self.ready).pop_front();
        self.wanted.notify_one();
        let name = match ready {
            Some(name) => name,
            None => self.create_clone().await?,
        };
        Ok(Lease::new(
            name.clone(),
            LeasedClone {
                pool: Arc::clone(self),
                name,
            },
        ))
    }

    /// The one worker: refill first, drop released clones when the pool is full.
    async fn maintain(self: Arc<Self>) {
        loop {
            let missing = lock(&self.ready).len() < self.target;
            let pending = lock(&self.released).len();
            if pending > MAX_PENDING_DROPS || (!missing && pending > 0) {
                let name = lock(&self.released).pop();
                if let Some(name) = name {
                    self.drop_clone(&name).await;
                }
            } else if missing {
                match self.create_clone().await {
                    Ok(name) => lock(&self.ready).push_back(name),
                    Err(e) => {
                        tracing::warn!(error = %e, "preparing a clone failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            } else {
                self.wanted.notified().await;
                // Out of the way of the test that took a clone, unless the pool runs low.
                if lock(&self.ready).len() * 2 >= self.target {
                    crate::service::quiet::after_attach().await;
                }
            }
        }
    }

    async fn drop_clone(&self, name: &str) {
        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        if let Err(e) = sqlx::query(AssertSqlSafe(drop)).execute(&self.admin).await {
            tracing::warn!(database = %name, error = %e, "dropping a released clone failed");
        }
    }

    async fn create_clone(&self) -> Result<String> {
        let name = format!(
            "drydock_slice_{}_{}",
            self.id,
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let create = format!(
            "CREATE DATABASE \"{name}\" TEMPLATE {TEMPLATE}{}",
            self.strategy
        );
        sqlx::query(AssertSqlSafe(create))
            .execute(&self.admin)
            .await
            .map_err(|e| crate::Error::connect("postgres", format!("CREATE DATABASE {name}"), e))?;
        Ok(name)
    }
}

/// A leased clone: queued for dropping when the lease ends; a test never waits for
/// `DROP DATABASE`.
struct LeasedClone {
    pool: Arc<ClonePool>,
    name: String,
}

impl Drop for LeasedClone {
    fn drop(&mut self) {
        lock(&self.pool.released).push(std::mem::take(&mut self.name));
        self.pool.wanted.notify_one();
    }
}
