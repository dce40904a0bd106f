//! An owned environment: services started together for one test, removed when it is dropped.

use std::{
    collections::HashMap,
    ops::Deref,
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use sha2::{Digest, Sha256};
use testcontainers::bollard::models::NetworkCreateRequest;
use tracing::Instrument;

use crate::{
    docker::{remove_labelled_blocking, Engine},
    error::{Error, Result},
    identity::InstanceLabels,
    service::{start::Placement, AnyService, Entry, Service, Sharing, Started},
    services::Services,
};

/// How long removing an environment may take before drop gives up (and reports it).
const TEARDOWN_BOUND: Duration = Duration::from_secs(60);

/// Describes an environment's services; [`start`](EnvBuilder::start) runs them concurrently
/// (each after the services it depends on), [`attach`](EnvBuilder::attach) shares them.
///
/// ```no_run
/// use drydock::{Env, Postgres, Redis};
///
/// # async fn demo() -> drydock::Result<()> {
/// let env = Env::builder()
///     .with_postgres(Postgres::default())
///     .with_redis(Redis::default())
///     .start()
///     .await?;
/// println!("DATABASE_URL has {} characters", env.postgres()?.url().len());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use = "an EnvBuilder does nothing until `.start()` or `.attach()` is awaited"]
pub struct EnvBuilder {
    pub(crate) services: Vec<Box<dyn AnyService>>,
    pub(crate) grace_period: Duration,
}

impl Default for EnvBuilder {
    fn default() -> Self {
        EnvBuilder {
            services: Vec::new(),
            grace_period: Duration::from_secs(5),
        }
    }
}

impl EnvBuilder {
    /// Adds a service of any kind: drydock's own or one of yours (see [`Service`]). A service
    /// of the same name and kind replaces the earlier one (`with_postgres` twice: the second's
    /// settings); one of the same name and another kind is an error when the environment
    /// starts.
    pub fn with_service<S: Service>(mut self, service: S) -> Self {
        let name = service.name().to_string();
        self.services
            .retain(|s| s.name() != name || s.kind() != S::KIND);
        self.services.push(Box::new(service));
        self
    }

    /// Whether the spec has a service named `name` (a service's default name is its kind:
    /// `postgres`, `redis`, `kafka`, `stub`).
    pub fn has_service(&self, name: &str) -> bool {
        self.services.iter().any(|s| s.name() == name)
    }

    /// Adds a PostgreSQL server.
    #[cfg(feature = "postgres")]
    pub fn with_postgres(self, postgres: crate::Postgres) -> Self {
        self.with_service(postgres)
    }

    /// Adds a Redis server.
    #[cfg(feature = "redis")]
    pub fn with_redis(self, redis: crate::Redis) -> Self {
        self.with_service(redis)
    }

    /// Adds a Kafka broker.
    #[cfg(feature = "kafka")]
    pub fn with_kafka(self, kafka: crate::Kafka) -> Self {
        self.with_service(kafka)
    }

    /// Adds a stub HTTP server, run in a container (for systems under test in containers; a
    /// test alone is faster with an in-process [`stub::StubServer`](crate::stub::StubServer)).
    #[cfg(feature = "stub")]
    pub fn with_stub(self, stub: crate::HttpStub) -> Self {
        self.with_service(stub)
    }

    /// Adds a container of your own, described like any testcontainers image (a
    /// `GenericImage`, an image of `testcontainers-modules`, with `ImageExt` options), under
    /// `name`: other containers reach it by that name on the environment's network, and
    /// [`Services::container`] hands out its published ports. See [`Container`](crate::Container)
    /// for readiness and dependencies.
    ///
    /// ```no_run
    /// use drydock::{Container, Env, Readiness};
    /// use testcontainers::{GenericImage, ImageExt};
    ///
    /// # async fn demo() -> drydock::Result<()> {
    /// let env = Env::builder()
    ///     .with_container(
    ///         Container::from_image("search", GenericImage::new("drydock.local/beanstalkd", "1")
    ///             .with_exposed_port(testcontainers::core::ContainerPort::Tcp(11300)))
    ///         .ready_when(Readiness::tcp(11300)),
    ///     )
    ///     .start()
    ///     .await?;
    /// let search = env.container("search")?;
    /// println!("reached at {}", search.address(11300)?);
    /// # Ok(()) }
    /// ```
    pub fn with_container(self, container: crate::Container) -> Self {
        self.with_service(container)
    }

    /// How long a shared environment stays after its run is over (5 s by default): after the
    /// run's process (`cargo test`, `cargo nextest run`, `DRYDOCK_RUN_OWNER`) is gone and the
    /// last lease ended. While that process lives the environment stays, however long the gaps
    /// between test binaries. With no such process (a test binary run by hand, or
    /// `DRYDOCK_RUN_ID` alone), it is how long the environment outlives its last lease. See
    /// [`crate::shared`].
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    /// The identity of this spec: equal specs give equal ids; any change of image, setting, or
    /// of the content of a migration or fixture file gives another. Computed once per process
    /// for a spec.
    ///
    /// ```
    /// use drydock::{Env, Redis};
    ///
    /// let a = Env::builder().with_redis(Redis::default());
    /// let b = Env::builder().with_redis(Redis::default().databases(64));
    /// assert_eq!(a.identity()?, a.clone().identity()?);
    /// assert_ne!(a.identity()?, b.identity()?);
    /// # Ok::<(), drydock::Error>(())
    /// ```
    pub fn identity(&self) -> Result<String> {
        let mut resolved = self.clone();
        resolved.resolve_paths()?;
        resolved.resolved_identity()
    }

    /// The identity of a spec whose paths are resolved: a hash of each service's kind, name
    /// and identity (serialised, so every setting counts and nothing else does), cached.
    pub(crate) fn resolved_identity(&self) -> Result<String> {
        static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
        let specs = self.specs()?;
        let files: Vec<std::path::PathBuf> = self.services.iter().flat_map(|s| s.files()).collect();
        let key = format!(
            "{}|{}",
            serde_json::to_string(&specs).unwrap_or_default(),
            freshness(&files)
        );
        let cache = CACHE.get_or_init(Default::default);
        if let Some(id) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(id.clone());
        }
        let mut identities = Vec::new();
        for service in &self.services {
            identities.push((service.kind(), service.name(), service.identity()?));
        }
        identities.sort_by(|a, b| a.1.cmp(b.1));
        // The grace period is how long, not what: it does not make another environment.
        let digest = Sha256::digest(serde_json::to_vec(&identities).unwrap_or_default());
        let id = hex::encode(&digest[..8]);
        cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, id.clone());
        Ok(id)
    }

    /// Each service as `(kind, spec)`, the form that crosses to a keeper.
    pub(crate) fn specs(&self) -> Result<Vec<(String, serde_json::Value)>> {
        self.services
            .iter()
            .map(|s| Ok((s.kind().to_string(), s.spec()?)))
            .collect()
    }

    /// The longest any service may take to be ready.
    pub(crate) fn ready_bounds(&self) -> Duration {
        self.services
            .iter()
            .map(|s| s.ready_bound())
            .max()
            .unwrap_or_default()
    }

    /// Makes every path of the spec absolute against the calling crate's directory
    /// (`CARGO_MANIFEST_DIR`, which cargo and nextest set for tests; else the current
    /// directory), so it means the same in another process, and checks dependencies.
    pub(crate) fn resolve_paths(&mut self) -> Result<()> {
        let base = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_default();
        for service in &mut self.services {
            crate::service::check_name(
                service.name(),
                "choose a name such as `my-app` (`Container::from_image`'s first argument, or \
                 `.named(..)` on a service)",
            )?;
            service.resolve_paths(&base)?;
        }
        crate::service::check_names_apart(self.services.iter().map(|s| (s.name(), s.kind())))?;
        for service in &self.services {
            for dependency in service.depends_on() {
                if !self.services.iter().any(|s| s.name() == dependency) {
                    return Err(Error::Spec {
                        service: service.name().to_string(),
                        problem: format!(
                            "it depends on `{dependency}`, which is not in the environment"
                        ),
                        fix: format!("add `{dependency}` to the builder, or remove the dependency"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Attaches to the environment this spec describes, shared by every test process of the
    /// run, and returns this test's own [`Slice`](crate::Slice) of it. See [`crate::shared`].
    pub async fn attach(self) -> Result<crate::Slice> {
        crate::shared::attach(self).await
    }

    /// Starts every service concurrently (a service after those it depends on) and waits until
    /// all are ready.
    ///
    /// On any failure, everything already started is removed before the error is returned, and
    /// every failing service is reported, not just the first.
    pub async fn start(mut self) -> Result<Env> {
        self.resolve_paths()?;
        // Also checks the files the spec names, before anything is created.
        let identity = self.resolved_identity()?;
        let engine = Engine::connect().await?;
        let labels = InstanceLabels::owned(identity);
        let span = tracing::info_span!("env", instance = %labels.instance);
        self.start_as(engine, labels, Sharing::Owned)
            .instrument(span)
            .await
    }

    /// Starts the services under the given labels; the keeper of a shared environment uses this
    /// with its own identity and [`Sharing::Shared`].
    pub(crate) async fn start_as(
        self,
        engine: Engine,
        labels: InstanceLabels,
        sharing: Sharing,
    ) -> Result<Env> {
        // Armed from before the first resource exists: a failed or cancelled start removes what it made.
        let guard = InstanceGuard {
            watch: Some(crate::reaper::Watch::new(&labels.instance_filter())),
            labels: labels.clone(),
            armed: true,
        };
        let network = labels.name_prefix();
        engine
            .docker()
            .create_network(NetworkCreateRequest {
                name: network.clone(),
                driver: Some("bridge".into()),
                labels: Some(labels.for_service("network")),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::docker(format!("creating network {network}"), e))?;

        let mut running: Vec<(String, Arc<dyn Started>)> = Vec::new();
        let mut owned_entries = Vec::new();
        let mut failures = Vec::new();
        let mut waiting: Vec<&dyn AnyService> = self.services.iter().map(|s| &**s).collect();
        // In waves: every service whose dependencies run starts now, concurrently. All of a
        // wave run to completion even if one fails, so nothing is still being created while
        // the guard removes what exists.
        while !waiting.is_empty() && failures.is_empty() {
            let (ready, later): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|s| {
                s.depends_on()
                    .iter()
                    .all(|d| running.iter().any(|(name, _)| name == d))
            });
            if ready.is_empty() {
                let names: Vec<&str> = later.iter().map(|s| s.name()).collect();
                failures.push(Error::Spec {
                    service: names.join(", "),
                    problem: "these services depend on each other in a circle".into(),
                    fix: "remove one of the dependencies".into(),
                });
                break;
            }
            let gates = crate::service::start::StartGate::for_wave(
                &ready.iter().map(|s| s.start_first()).collect::<Vec<_>>(),
            );
            let placements: Vec<Placement> = ready
                .iter()
                .zip(gates)
                .map(|(s, gate)| Placement {
                    engine: engine.clone(),
                    network: network.clone(),
                    labels: labels.for_service(s.name()),
                    gate,
                })
                .collect();
            let wave = futures::future::join_all(
                ready
                    .iter()
                    .zip(&placements)
                    .map(|(s, placement)| s.start(placement, sharing)),
            )
            .await;
            for (service, outcome) in ready.iter().zip(wave) {
                match outcome {
                    Ok(started) => running.push((service.name().to_string(), started)),
                    Err(e) => failures.push(e),
                }
            }
            waiting = later;
        }
        // A test's handles go through proxies of this process; a keeper hands out slices instead.
        if failures.is_empty() && sharing == Sharing::Owned {
            match running
                .iter()
                .map(|(_, s)| s.owned())
                .collect::<Result<Vec<Entry>>>()
            {
                Ok(entries) => owned_entries = entries,
                Err(e) => failures.push(e),
            }
        }
        match failures.len() {
            0 => {
                let entries = owned_entries;
                Ok(Env {
                    guard,
                    network,
                    services: Services::new(entries),
                    running,
                })
            }
            // The guard drops here and removes what was started.
            1 => Err(failures.remove(0)),
            _ => Err(Error::Several(failures)),
        }
    }
}

/// Sizes and modification times of `paths` (a directory's files, recursively): what changes
/// when a file of the spec changes, found without reading any.
fn freshness(paths: &[PathBuf]) -> String {
    fn visit(path: &std::path::Path, out: &mut Vec<String>) {
        let Ok(meta) = std::fs::metadata(path) else {
            out.push(format!("{}:absent", path.display()));
            return;
        };
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            for entry in entries {
                visit(&entry, out);
            }
        } else {
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            out.push(format!("{}:{}:{modified}", path.display(), meta.len()));
        }
    }
    let mut out = Vec::new();
    for path in paths {
        visit(path, &mut out);
    }
    out.join("|")
}

/// Running services of one test. Dropping it removes every container and network it created,
/// also when the test panics. It dereferences to its [`Services`].
///
/// ```no_run
/// # async fn demo() -> drydock::Result<()> {
/// let env = drydock::Env::builder().with_redis(drydock::Redis::default()).start().await?;
/// std::env::set_var("REDIS_URL", env.redis()?.url());
/// env.teardown().await?; // or just let it drop
/// # Ok(()) }
/// ```
pub struct Env {
    guard: InstanceGuard,
    network: String,
    services: Services,
    running: Vec<(String, Arc<dyn Started>)>,
}

impl Env {
    /// Starts describing an environment.
    pub fn builder() -> EnvBuilder {
        EnvBuilder::default()
    }

    /// The services, one handle each.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// This instance's id: the value of its `drydock.instance` label.
    pub fn instance_id(&self) -> &str {
        &self.guard.labels.instance
    }

    /// The run this environment belongs to (its `drydock.run` label).
    pub fn run_id(&self) -> &str {
        &self.guard.labels.run
    }

    /// The Docker network its containers share; containers on it reach services by name.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// `host:port` at which containers on this environment's network reach service `name`
    /// through this environment's fault proxy: a system under test in a container gets the
    /// same faults as the test (the internal URLs bypass them).
    pub async fn network_route(&self, name: &str) -> Result<String> {
        self.services.network_route(name, &self.network).await
    }

    /// The container of service `name`, to stop, pause, restart or kill it mid-test and bring
    /// it back; see [`crate::outage`] for what survives.
    pub fn outage(&self, name: &str) -> Result<crate::outage::Outage<'_>> {
        let (service, started) = self
            .running
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| self.services.not_in_env(name, None))?;
        Ok(crate::outage::Outage {
            service,
            started: &**started,
            proxies: self.services.faults(name)?,
        })
    }

    /// The running services, for the keeper to cut slices from.
    pub(crate) fn running(&self) -> &[(String, Arc<dyn Started>)] {
        &self.running
    }

    /// Removes the environment now and reports failure, instead of logging it as a drop does.
    pub async fn teardown(mut self) -> Result<()> {
        let label = self.guard.labels.instance_filter();
        self.guard.armed = false;
        match tokio::task::spawn_blocking(move || remove_labelled_blocking(label, TEARDOWN_BOUND))
            .await
        {
            Ok(outcome) => {
                outcome?;
                self.guard.removed();
                Ok(())
            }
            // The removal thread panicked: say so, and where to clean up.
            Err(e) => Err(Error::Spec {
                service: "environment".into(),
                problem: format!("its teardown task failed: {e}"),
                fix: "remove what is left with `drydock prune`".into(),
            }),
        }
    }
}

impl Deref for Env {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("instance", &self.guard.labels.instance)
            .field("network", &self.network)
            .field("services", &self.services)
            .finish()
    }
}

/// Removes an instance's resources by label when dropped, unless disarmed.
#[derive(Debug)]
struct InstanceGuard {
    labels: InstanceLabels,
    armed: bool,
    /// The reaper's watch: it removes the instance if this process dies first.
    watch: Option<crate::reaper::Watch>,
}

impl InstanceGuard {
    /// The instance is gone: the reaper can forget it.
    fn removed(&mut self) {
        if let Some(watch) = self.watch.take() {
            watch.removed();
        }
    }
}

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let span = tracing::info_span!("teardown", instance = %self.labels.instance);
        let _entered = span.enter();
        match remove_labelled_blocking(self.labels.instance_filter(), TEARDOWN_BOUND) {
            Ok(removed) => {
                tracing::debug!(?removed, "removed");
                self.removed();
            }
            // Drop cannot return the error; say it where the developer will look.
            Err(e) => eprintln!(
                "drydock: could not remove environment {} ({e}); `drydock prune` removes it",
                self.labels.instance
            ),
        }
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    /// Tests spawn environments onto runtimes; a non-`Send` start would stop them compiling.
    #[test]
    fn starting_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let start = Env::builder().with_redis(crate::Redis::default()).start();
        is_send(&start);
    }
}
