//! What one test gets from a shared environment.

use std::{
    fmt,
    ops::Deref,
    os::unix::net::UnixStream,
    sync::atomic::{AtomicBool, Ordering},
    time::SystemTime,
};

use crate::services::Services;

/// This test's own part of a shared environment: a database cloned from the migrated template,
/// a Redis logical database, Kafka names of its own, a namespace on the stub server, a scope of
/// each service of yours. Dropping it gives them back (the database is dropped, the Redis
/// database flushed); so does the death of the test process, however it dies. It dereferences to
/// its [`Services`], whose handles are the same types an owned [`Env`](crate::Env) hands out.
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
    network: String,
    services: Services,
    /// When the slice was cut: a failing test's report shows the containers' logs since.
    cut: SystemTime,
    /// Whether its report was printed already (by `#[drydock::test]`).
    explained: AtomicBool,
}

impl Slice {
    pub(crate) fn new(
        lease: UnixStream,
        instance: String,
        network: String,
        services: Services,
    ) -> Self {
        Slice {
            _lease: lease,
            instance,
            network,
            services,
            cut: SystemTime::now(),
            explained: AtomicBool::new(false),
        }
    }

    /// When this slice was cut.
    pub fn cut_at(&self) -> SystemTime {
        self.cut
    }

    /// Its report was printed: dropping it in a panic prints nothing more.
    pub(crate) fn mark_explained(&self) {
        self.explained.store(true, Ordering::Relaxed);
    }

    /// The services, one handle each, scoped to this slice.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The shared environment's instance id (its `drydock.instance` label).
    pub fn instance_id(&self) -> &str {
        &self.instance
    }

    /// `host:port` at which containers on the shared environment's network reach service
    /// `name` through this slice's fault proxy: a system under test in a container gets this
    /// slice's faults (the internal URLs bypass them).
    pub async fn network_route(&self, name: &str) -> crate::Result<String> {
        self.services.network_route(name, &self.network).await
    }

    /// The Docker network of the shared environment; containers on it reach services by name.
    pub fn network(&self) -> &str {
        &self.network
    }
}

/// A slice dropped while its test panics prints the failing test's report
/// ([`harness::explain`](crate::harness::explain)) before it is given back, so that every
/// failing test that holds one — `#[tokio::test]`, rstest, a harness of your own — explains
/// itself.
impl Drop for Slice {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.explained.load(Ordering::Relaxed) {
            crate::harness::explain_on_panic(&self.services, self.cut);
        }
    }
}

impl Deref for Slice {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl fmt::Debug for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slice")
            .field("instance", &self.instance)
            .field("network", &self.network)
            .field("services", &self.services)
            .finish()
    }
}
