//! What one test gets from a shared environment.

use std::{
    fmt,
    io::Write,
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
    lease: UnixStream,
    run: String,
    instance: String,
    network: String,
    /// The services' variables reaching the servers directly, for a kept slice (this
    /// process's fault proxies end with it).
    direct: Vec<(String, String)>,
    services: Services,
    /// When the slice was cut: a failing test's report shows the containers' logs since.
    cut: SystemTime,
    /// Whether its report was printed already (by `#[drydock::test]`).
    explained: AtomicBool,
}

impl Slice {
    pub(crate) fn new(lease: UnixStream, granted: Granted, services: Services) -> Self {
        Slice {
            lease,
            run: granted.run,
            instance: granted.instance,
            network: granted.network,
            direct: granted.direct,
            services,
            cut: SystemTime::now(),
            explained: AtomicBool::new(false),
        }
    }

    /// When this slice was cut.
    pub fn cut_at(&self) -> SystemTime {
        self.cut
    }

    /// Under `DRYDOCK_KEEP=on-failure`, asks the keeper to keep this slice (and its
    /// environment) after it is dropped, for a look at what the failing `test` left; returns
    /// what to tell the developer: how to reach it and how to remove it. `None` otherwise.
    pub(crate) fn keep_if_asked(&self, test: &str) -> Option<String> {
        if !std::env::var("DRYDOCK_KEEP").is_ok_and(|v| v == "on-failure") {
            return None;
        }
        let mut request = serde_json::to_vec(&super::protocol::Request::Keep {
            test: test.to_owned(),
        })
        .ok()?;
        request.push(b'\n');
        if let Err(e) = (&self.lease).write_all(&request) {
            return Some(format!(
                "drydock: DRYDOCK_KEEP=on-failure: the keeper did not take the request to keep \
                 this slice ({e}); it is removed as usual"
            ));
        }
        let shown = crate::secret::shown();
        let mut text = format!(
            "drydock: DRYDOCK_KEEP=on-failure: the slice of {test} is kept, with its \
             environment (run {run}), until `drydock down --run {run}` (or an hour with no test; \
             `drydock ls` lists kept slices). Reach it directly (this process's fault proxies \
             end with it):\n",
            run = self.run
        );
        for (key, value) in &self.direct {
            let value = if shown {
                value.clone()
            } else {
                crate::secret::mask_userinfo(value)
            };
            text.push_str(&format!("  {key}={value}\n"));
        }
        if !shown {
            text.push_str("  (passwords masked: DRYDOCK_SHOW_SECRETS=1 shows them)\n");
        }
        Some(text)
    }

    /// Its report was printed: dropping it in a panic prints nothing more.
    pub(crate) fn mark_explained(&self) {
        self.explained.store(true, Ordering::Relaxed);
    }

    /// The services, one handle each, scoped to this slice.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The run the shared environment belongs to (its `drydock.run` label).
    pub fn run_id(&self) -> &str {
        &self.run
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
            let test = std::thread::current().name().unwrap_or("a test").to_owned();
            if let Some(kept) = self.keep_if_asked(&test) {
                eprintln!("{kept}");
            }
        }
    }
}

/// What the keeper granted, beside the services.
pub(crate) struct Granted {
    pub run: String,
    pub instance: String,
    pub network: String,
    pub direct: Vec<(String, String)>,
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
