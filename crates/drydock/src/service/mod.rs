//! The service model: one trait describes everything drydock does with a service.
//!
//! A [`Service`] says how to run it (a [`ContainerPlan`]), when it is ready (a probe over its own
//! protocol), what a test's slice of it is and how one is cut ([`Service::cut`], a [`Lease`] that
//! gives itself back when dropped), the one [`Handle`](Service::Handle) a test holds — the same
//! type for an owned environment (the default scope) and a slice of a shared one — and the
//! variables a system under test reads. PostgreSQL, Redis, Kafka, the stub server and users'
//! own containers all implement it; nothing in the environment, the keeper or the slice names a
//! service.
//!
//! A service of your own is a type that implements [`Service`] plus one [`register_service!`]
//! line, so that the keeper of a shared environment (the test binary, re-executed) can rebuild
//! it from its spec. See `tests/beanstalk/` in drydock's repository for a whole one: a
//! beanstalkd server with a tube per test.
//!
//! ```
//! use drydock::service::{Common, ContainerPlan, Lease, PlanContext, Service, Sharing, SliceId, StartedContainer};
//! use drydock::{BoxError, ImageRef, Result};
//! use serde::{Deserialize, Serialize};
//!
//! /// memcached, with a key prefix per test.
//! #[derive(Clone, Debug, Default, Serialize, Deserialize)]
//! struct Memcached { common: Common }
//!
//! impl Service for Memcached {
//!     const KIND: &'static str = "memcached";
//!     type Server = String;          // host:port
//!     type Slicer = ();
//!     type Scope = String;           // the key prefix
//!     type Handle = (String, String);
//!
//!     fn common(&self) -> &Common { &self.common }
//!     fn common_mut(&mut self) -> &mut Common { &mut self.common }
//!     fn default_image(&self) -> &str { "memcached:1.6" }
//!     fn plan(&self, image: ImageRef, _: &mut PlanContext) -> Result<ContainerPlan> {
//!         Ok(ContainerPlan::new(image).port(11211))
//!     }
//!     fn server(&self, _: &ContainerPlan, c: &StartedContainer) -> Result<String> {
//!         Ok(format!("{}:{}", c.host(), c.host_port(11211)?))
//!     }
//!     async fn probe(&self, server: &String, _: &StartedContainer) -> Result<(), BoxError> {
//!         tokio::net::TcpStream::connect(server).await?;
//!         Ok(())
//!     }
//!     async fn prepare(&self, _: &String, _: Sharing) -> Result<()> { Ok(()) }
//!     fn owned_scope(_: &()) -> String { String::new() }
//!     async fn cut(_: &std::sync::Arc<()>, slice: SliceId) -> Result<Lease<String>> {
//!         Ok(Lease::unguarded(slice.prefix()))
//!     }
//!     fn handle(server: &String, prefix: String) -> (String, String) { (server.clone(), prefix) }
//!     fn vars((server, prefix): &(String, String)) -> Vec<(String, String)> {
//!         vec![("MEMCACHED_ADDR".into(), server.clone()), ("MEMCACHED_PREFIX".into(), prefix.clone())]
//!     }
//! }
//! drydock::register_service!(Memcached);
//! ```

pub mod container;
mod dynamic;
mod lease;
mod plan;
#[cfg(any(
    feature = "postgres",
    feature = "redis",
    feature = "kafka",
    feature = "stub"
))]
pub(crate) mod quiet;
#[doc(hidden)]
pub mod registry;
mod router;
pub(crate) mod start;

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "stub")]
pub mod stub;
pub mod toxiproxy;

use std::{fmt, future::Future, path::Path, sync::Arc, time::Duration};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub(crate) use dynamic::{AnyService, Entry, Started};
pub use lease::{Lease, SliceId};
pub use plan::{ContainerPlan, PlanContext, StartedContainer};
pub use registry::Registration;
#[cfg(any(feature = "postgres", feature = "redis", feature = "stub"))]
pub(crate) use router::HostPort;
pub use router::Router;

use crate::{
    error::{BoxError, Result},
    image::ImageRef,
};

/// How long a service may take to be ready unless it or the user says otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a service runs for one test (owned [`Env`](crate::Env)) or for a whole run, cut into
/// slices (a shared environment's keeper).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// One test's: the handle uses the default scope (database `drydock`, Redis db 0, …).
    Owned,
    /// A run's: every test gets a slice cut with [`Service::cut`].
    Shared,
}

/// The knobs every service has, kept in one place ([`ServiceExt`] sets them on any service).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Common {
    /// The image set in code (the variables of [`Service::image_vars`] still win).
    pub image: Option<String>,
    /// How long the service may take to be ready.
    pub ready_timeout: Option<Duration>,
    /// The service's name in its environment, when not its kind (several of a kind).
    /// Not serialised when unset, so an unnamed spec's identity is what it always was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A kind of service drydock runs in a container; see the [module docs](self) for an example.
///
/// The spec (`Self`) and the [`Server`](Self::Server) are serialisable because a shared
/// environment is started by the keeper process, which rebuilds the spec from JSON and hands
/// servers and scopes to test processes over a socket.
pub trait Service:
    Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static
{
    /// The kind's name: in labels, container names, errors and `DRYDOCK_IMAGE_<KIND>`.
    const KIND: &'static str;
    /// The running server: addresses and generated credentials.
    type Server: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;
    /// What slices are cut from, prepared once per environment (a template and its clone pool,
    /// a set of free databases); `()` when cutting needs nothing.
    type Slicer: Send + Sync + 'static;
    /// One test's part: a database name, a Redis db number, a name prefix, a namespace.
    type Scope: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;
    /// What a test holds: the server in a scope. The same type for owned and sliced use.
    type Handle: Clone + fmt::Debug + Send + Sync + 'static;

    /// The knobs shared by every service.
    fn common(&self) -> &Common;
    /// The same, to change.
    fn common_mut(&mut self) -> &mut Common;
    /// The official image users get unless they or their CI choose another.
    fn default_image(&self) -> &str;
    /// How long readiness may take unless the user says otherwise.
    fn default_ready_timeout(&self) -> Duration {
        DEFAULT_READY_TIMEOUT
    }
    /// Whether its container goes first when an environment starts several at once: a server
    /// that works for a second or more after its container starts (PostgreSQL's `initdb`, a
    /// JVM) is ready sooner when the engine, which sets containers up largely one at a time,
    /// starts it before the quick ones; they start while it works. Default: no.
    fn start_first(&self) -> bool {
        false
    }
    /// This service's name in the environment: the one [`ServiceExt::named`] gave it, else
    /// its kind.
    fn name(&self) -> &str {
        self.common().name.as_deref().unwrap_or(Self::KIND)
    }
    /// The names of services that must be ready before this one starts.
    fn depends_on(&self) -> Vec<String> {
        Vec::new()
    }
    /// What makes two specs the same environment. By default the spec itself; a service that
    /// reads files adds their content (a changed migration is another environment).
    fn identity(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| spec_error(self.name(), e))
    }
    /// The files (or directories of files) [`identity`](Self::identity) reads. Their sizes
    /// and modification times key the per-process identity cache, so an unchanged spec is not
    /// read again on every attach, and a changed file still makes another environment.
    fn files(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
    /// Makes the spec's relative paths absolute against `base` (the calling crate's directory),
    /// so that the spec means the same in the keeper's process.
    fn resolve_paths(&mut self, _base: &Path) -> Result<()> {
        Ok(())
    }
    /// The container to run.
    fn plan(&self, image: ImageRef, context: &mut PlanContext) -> Result<ContainerPlan>;
    /// The server, once its container runs.
    fn server(&self, plan: &ContainerPlan, container: &StartedContainer) -> Result<Self::Server>;
    /// One readiness check over the service's own protocol: `Ok` once it does real work.
    fn probe(
        &self,
        server: &Self::Server,
        container: &StartedContainer,
    ) -> impl Future<Output = std::result::Result<(), BoxError>> + Send;
    /// Once ready: applies what the spec asks (schema, mappings) and prepares slicing.
    fn prepare(
        &self,
        server: &Self::Server,
        sharing: Sharing,
    ) -> impl Future<Output = Result<Self::Slicer>> + Send;
    /// A shared environment's slicer over `server`, which a keeper that died prepared, so that
    /// its successor adopts the environment (and the slices tests hold of it) instead of
    /// removing it from under them. `None`, the default: this service cannot be adopted; the
    /// successor removes the environment and starts another.
    fn adopt(
        &self,
        _server: &Self::Server,
    ) -> impl Future<Output = Result<Option<Self::Slicer>>> + Send {
        async { Ok(None) }
    }
    /// A lease on `scope`, which a slice still holds from a keeper that died (a test's, the
    /// run's, one kept for a look): the successor drops it, giving the scope back, when that
    /// slice ends (its test's process, the run, `drydock down`). `None`, the default: nothing
    /// is given back for it.
    fn reclaim(_slicer: &Arc<Self::Slicer>, _scope: &Self::Scope) -> Option<Lease<Self::Scope>> {
        None
    }
    /// The scope of an owned environment's handle (the default scope).
    fn owned_scope(slicer: &Self::Slicer) -> Self::Scope;
    /// Cuts one test's slice; the lease gives it back when dropped (the keeper drops it when
    /// the test's connection closes, however the test ended).
    fn cut(
        slicer: &Arc<Self::Slicer>,
        slice: SliceId,
    ) -> impl Future<Output = Result<Lease<Self::Scope>>> + Send;
    /// The server as this process's clients reach it: each address they connect to routed
    /// through a fault proxy of the environment or slice ([`Router::via`]), so a test can fault
    /// its own path to the service. By default nothing is routed (no faults for the service).
    fn route(server: &Self::Server, _router: &mut Router) -> Result<Self::Server> {
        Ok(server.clone())
    }
    /// The handle of `server` in `scope`.
    fn handle(server: &Self::Server, scope: Self::Scope) -> Self::Handle;
    /// What a system under test reads (`DATABASE_URL`, …).
    fn vars(handle: &Self::Handle) -> Vec<(String, String)>;
    /// The same for the service under `name`: [`vars`](Self::vars) as they are under its
    /// kind's name, and each prefixed with the name otherwise (`payments` → `PAYMENTS_STUB_URL`),
    /// so that several services of a kind in one environment do not overwrite each other's.
    /// A service whose variables already carry its name (a [`Container`](crate::Container)'s
    /// `<NAME>_HOST`) returns [`vars`](Self::vars).
    fn vars_as(name: &str, handle: &Self::Handle) -> Vec<(String, String)> {
        let vars = Self::vars(handle);
        if name == Self::KIND {
            return vars;
        }
        let prefix = var_prefix(name);
        vars.into_iter()
            .map(|(var, value)| (format!("{prefix}_{var}"), value))
            .collect()
    }
    /// The variables that choose this service's image over the code's, the first set wins:
    /// `DRYDOCK_IMAGE_<NAME>`, then, for a service given a name of its own,
    /// `DRYDOCK_IMAGE_<KIND>` (so CI's substitute for a kind serves each of that kind).
    fn image_vars(&self) -> Vec<String> {
        let mut vars = vec![crate::image::override_var(self.name())];
        if self.name() != Self::KIND {
            vars.push(crate::image::override_var(Self::KIND));
        }
        vars
    }
    /// Lines shown when a test fails: how to connect, what the slice is.
    fn diagnose(_handle: &Self::Handle) -> Vec<String> {
        Vec::new()
    }
    /// Lines a failing test's report adds that need a round trip to the service (a stub's
    /// unmatched requests and near misses): none by default. The report bounds the wait.
    fn explain(_handle: &Self::Handle) -> impl Future<Output = Vec<String>> + Send {
        async { Vec::new() }
    }
}

/// Options every service takes, in the style of testcontainers' `ImageExt`.
///
/// ```
/// use drydock::{Postgres, ServiceExt};
///
/// let postgres = Postgres::default()
///     .image("postgres:16-alpine")
///     .ready_timeout(std::time::Duration::from_secs(90));
/// # let _ = postgres;
/// ```
pub trait ServiceExt: Service {
    /// Runs this image instead of the default (`DRYDOCK_IMAGE_<NAME>`, then `_<KIND>`, still
    /// win, so CI can substitute).
    fn image(mut self, image: impl Into<String>) -> Self {
        self.common_mut().image = Some(image.into());
        self
    }

    /// How long the service may take to be ready.
    fn ready_timeout(mut self, bound: Duration) -> Self {
        self.common_mut().ready_timeout = Some(bound);
        self
    }

    /// Names the service, so that an environment can have several of its kind: two stubbed
    /// dependencies, a second database server. The name is the service's in
    /// [`Services::named`](crate::Services::named), in [`fault`](crate::Services::fault), in
    /// its container's name, and it prefixes its variables (`PAYMENTS_STUB_URL`). Letters,
    /// digits, `_`, `.` and `-`, starting with a letter or digit.
    ///
    /// ```
    /// use drydock::{Env, Redis, ServiceExt};
    ///
    /// let env = Env::builder()
    ///     .with_redis(Redis::default())                   // REDIS_URL
    ///     .with_redis(Redis::default().named("sessions")); // SESSIONS_REDIS_URL
    /// // env.redis()? is the first; env.named::<Redis>("sessions")? the second.
    /// # let _ = env;
    /// ```
    fn named(mut self, name: impl Into<String>) -> Self {
        self.common_mut().name = Some(name.into());
        self
    }
}

/// Checks that no two services of an environment share a name, or a name that differs only
/// in case or in `-`/`.`/`_` (`pay-ments`, `PAY_MENTS`): they would share their variables
/// (`PAY_MENTS_STUB_URL`) and, Docker's names resolving without case, their network alias.
pub(crate) fn check_names_apart<'a>(
    services: impl Iterator<Item = (&'a str, &'static str)>,
) -> Result<()> {
    let mut seen: Vec<(String, &str, &str)> = Vec::new();
    for (name, kind) in services {
        let prefix = var_prefix(name);
        if let Some((_, other, other_kind)) = seen.iter().find(|(p, _, _)| *p == prefix) {
            let same = if *other == name {
                format!("two services are named {name:?} (a {other_kind} and a {kind})")
            } else {
                format!(
                    "the services {other:?} (a {other_kind}) and {name:?} (a {kind}) would share \
                     their variables ({prefix}_…) and network name"
                )
            };
            return Err(crate::Error::Spec {
                service: name.to_string(),
                problem: same,
                fix: "give one of them another name (`.named(..)`, or \
                      `Container::from_image`'s first argument)"
                    .into(),
            });
        }
        seen.push((prefix, name, kind));
    }
    Ok(())
}

/// `my-app` → `MY_APP`: a service's name as the start of an environment variable.
pub(crate) fn var_prefix(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Checks that `name` can name a container, resolve on the environment's network and start
/// its variables' names: the engine would refuse it only once the network exists, naming
/// neither, and a shell would not take `1APP_HOST`.
pub(crate) fn check_name(name: &str, fix: &str) -> Result<()> {
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.starts_with(|c: char| c.is_ascii_alphabetic());
    if valid {
        return Ok(());
    }
    Err(crate::Error::Spec {
        service: name.to_string(),
        problem: format!(
            "the name {name:?} cannot name a service: it names a container and starts its \
             variables' names, so letters, digits, `_`, `.` and `-`, starting with a letter"
        ),
        fix: fix.to_string(),
    })
}

impl<S: Service> ServiceExt for S {}

pub(crate) fn spec_error(service: &str, e: serde_json::Error) -> crate::Error {
    crate::Error::Spec {
        service: service.to_string(),
        problem: format!("its spec cannot be serialised: {e}"),
        fix: "make every field of the service serialisable".into(),
    }
}
