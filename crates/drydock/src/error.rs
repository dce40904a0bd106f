//! drydock's one error type.
//!
//! Every variant says what failed, where, and what to do about it, because the person reading it is
//! usually looking at a red CI log with no way to poke at the machine. The underlying error is kept
//! as the variant's [`source`](std::error::Error::source), decided where the failure happens, so
//! code that must tell failures apart matches variants, never message text.
//!
//! `Debug` prints the same text as `Display`: a test that returns `Err` or calls `unwrap()` shows
//! the "to fix" line, not a struct dump.

use std::{fmt, path::PathBuf, time::Duration};

/// Result alias used throughout drydock.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error, boxed: what a client library or a user's service returned.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The return type for tests: `?` works on drydock's errors and on those of every client a test
/// uses (sqlx, redis, rdkafka, reqwest, …), and a failure prints its "to fix" text.
///
/// ```
/// fn a_test() -> drydock::TestResult {
///     let port: u16 = "5432".parse()?;                 // a std error
///     let image: drydock::ImageRef = "redis:7".parse()?; // a drydock error
///     assert_eq!((port, image.tag()), (5432, "7"));
///     Ok(())
/// }
/// a_test().unwrap();
/// ```
pub type TestResult<T = ()> = std::result::Result<T, BoxError>;

/// Everything that can go wrong while starting, using or tearing down an environment.
///
/// ```
/// let err = drydock::Error::ServiceNotInEnv {
///     service: "redis".into(),
///     wanted: Some("redis".into()),
///     present: vec![],
/// };
/// assert!(err.to_string().contains("Env::builder()"));
/// assert_eq!(format!("{err:?}"), err.to_string(), "Debug shows the actionable text");
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No Docker engine answered.
    #[error(
        "no Docker engine answered at {endpoint}: {cause}\n  \
         looked at: {looked_at}\n  \
         to fix: {}",
        .fix.as_deref().unwrap_or(ENGINE_FIX)
    )]
    DockerUnavailable {
        /// The endpoint that was tried.
        endpoint: String,
        /// Every place drydock looked for an engine, in order.
        looked_at: String,
        /// Why the last attempt failed.
        cause: String,
        /// What to do, when it is not to start an engine (a TLS setting to correct, say).
        fix: Option<String>,
    },

    /// An image reference (from code or an environment variable) could not be parsed.
    #[error(
        "invalid image reference {value:?} (from {origin}): {reason}\n  \
         to fix: write it as [registry/]repository[:tag] in {origin}, e.g. `postgres:17-alpine` \
         or `drydock.local/postgres:17`"
    )]
    InvalidImage {
        /// The text that was given.
        value: String,
        /// Where it came from, e.g. `DRYDOCK_IMAGE_POSTGRES`.
        origin: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The image is not present locally and pulling it failed.
    #[error(
        "image `{image}` for {service} is not on this machine and could not be pulled: {cause}\n  \
         to fix: check the name, build local stand-ins with `cargo run -p drydock-cli -- images build`, \
         or choose another image with {env_var}=<image>"
    )]
    ImageUnavailable {
        /// The service that needed it.
        service: String,
        /// The resolved image reference.
        image: String,
        /// The environment variable that overrides this service's image.
        env_var: String,
        /// Why the pull failed.
        cause: String,
    },

    /// The engine refused to create or start the container.
    #[error(
        "starting the {service} container from `{image}` failed: {source}\n  \
         to fix: read the engine's message; check that `{image}` is an image for {service} and \
         that its command exists in it"
    )]
    StartFailed {
        /// The service being started.
        service: String,
        /// The image it was started from.
        image: String,
        /// The engine's error.
        #[source]
        source: crate::docker::bollard::errors::Error,
    },

    /// A host port the service must publish as is (Kafka advertises it) was taken by another
    /// process between its reservation and the container's start.
    #[error(
        "host port {port} for {service} was taken by another process before the container started"
    )]
    PortTaken {
        /// The service.
        service: String,
        /// The host port.
        port: u16,
    },

    /// A container port the service needs was not published.
    #[error(
        "the {service} container does not publish port {port}\n  \
         to fix: check that the image listens on {port} (is `{image}` really a {service} image?)"
    )]
    PortNotPublished {
        /// The service.
        service: String,
        /// The image it runs.
        image: String,
        /// The container port.
        port: u16,
    },

    /// The service did not pass its readiness probe within its bound.
    #[error(
        "{service} was not ready after {waited:?} (bound {bound:?}); last probe error: {last_error}\n  \
         to fix: read the container log below; raise the bound with `.ready_timeout(..)` if the machine is slow\n\
         --- last lines of the {service} container's log ---\n{log_tail}"
    )]
    NotReady {
        /// The service that was probed.
        service: String,
        /// How long drydock waited.
        waited: Duration,
        /// The configured bound.
        bound: Duration,
        /// The error of the last probe attempt, with its causes.
        last_error: String,
        /// The last lines the container wrote.
        log_tail: String,
    },

    /// The container stopped before it became ready.
    #[error(
        "the {service} container (`{image}`) exited with code {exit_code} before it became \
         ready\n  \
         to fix: read its log below; check that `{image}` is an image for {service}, and its \
         command and environment\n\
         --- last lines of the {service} container's log ---\n{log_tail}"
    )]
    ContainerExited {
        /// The service whose container stopped.
        service: String,
        /// The image it ran.
        image: String,
        /// The container's exit code.
        exit_code: i64,
        /// The last lines the container wrote.
        log_tail: String,
    },

    /// A Docker API call failed.
    #[error("docker: {context}: {source}")]
    Docker {
        /// What drydock was doing.
        context: String,
        /// The engine's error.
        #[source]
        source: crate::docker::bollard::errors::Error,
    },

    /// The environment has no service of the name asked for.
    #[error(
        "this environment has no {service} service{}\n  to fix: {}",
        render_present(present),
        missing_fix(service, wanted.as_deref(), present)
    )]
    ServiceNotInEnv {
        /// The service that was asked for.
        service: String,
        /// The kind asked for (`postgres`), when the question named one.
        wanted: Option<String>,
        /// The services it has, as `(name, kind)`.
        present: Vec<(String, String)>,
    },

    /// The service asked for exists, but is of another type than the handle asked for.
    #[error(
        "the service {service} is a {actual}, not a {wanted}\n  \
         to fix: ask for {service} as a {actual}, or name the {wanted} otherwise"
    )]
    WrongServiceType {
        /// The service's name.
        service: String,
        /// Its kind.
        actual: String,
        /// The kind the caller asked for.
        wanted: String,
    },

    /// A service's description cannot be used as written.
    #[error("service {service}: {problem}\n  to fix: {fix}")]
    Spec {
        /// The service.
        service: String,
        /// What is wrong.
        problem: String,
        /// What to do.
        fix: String,
    },

    /// Connecting a client to a running service failed.
    #[error("connecting to {service} at {endpoint}: {source}")]
    Connect {
        /// The service.
        service: String,
        /// The endpoint, with any secret removed.
        endpoint: String,
        /// The client's error.
        #[source]
        source: BoxError,
    },

    /// A client call of a test failed (converted by `?` from the client crates drydock hands out).
    #[error("{client}: {source}")]
    Client {
        /// `sqlx`, `redis` or `rdkafka`.
        client: &'static str,
        /// The client's error.
        #[source]
        source: BoxError,
    },

    /// An environment variable drydock reads holds a value it cannot use.
    #[error("{variable}={value:?}: {problem}\n  to fix: {fix}")]
    Setting {
        /// The variable, e.g. `DRYDOCK_BIND_IP`.
        variable: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        problem: String,
        /// What to do.
        fix: String,
    },

    /// A pool or set of leases a test waits for stayed empty for the whole bound: every piece
    /// of it is held by other slices.
    #[error("waited {bound:?} for {what}; held by {holders}\n  to fix: {fix}")]
    Exhausted {
        /// What was waited for.
        what: String,
        /// The bound.
        bound: Duration,
        /// Who holds the pieces, e.g. `slice 3 (database 2), slice 4 (database 5)`.
        holders: String,
        /// What to do.
        fix: String,
    },

    /// A running shared environment could not cut this test a slice (a pool or lease ran
    /// out); the environment itself is fine and serves other tests.
    #[error(
        "no slice of the shared environment {environment} for this test: {message}\n  \
         the keeper's log: {}",
        .log.display()
    )]
    SliceUnavailable {
        /// Which environment (run and spec).
        environment: String,
        /// Why, with who holds what.
        message: String,
        /// The keeper's log.
        log: PathBuf,
    },

    /// A bounded wait ran out.
    #[error("{what} did not finish within {bound:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The bound.
        bound: Duration,
    },

    /// A migration or fixture could not be read or applied.
    #[error(
        "schema: {}: {message}{}\n  \
         to fix: correct that file; nothing was left running",
        .file.display(),
        .source.as_ref().map(|s| format!(": {s}")).unwrap_or_default()
    )]
    Schema {
        /// The migration or fixture file (or directory).
        file: PathBuf,
        /// What went wrong with it.
        message: String,
        /// The database's or file system's error.
        #[source]
        source: Option<BoxError>,
    },

    /// A path given in a spec (migrations, fixtures, mappings) does not exist.
    #[error(
        "the {what} {} does not exist (looked at {}; relative paths start from {base}, \
         the calling crate's directory)\n  to fix: correct the path",
        .path.display(), .resolved.display()
    )]
    MissingPath {
        /// What the path is for.
        what: &'static str,
        /// As given.
        path: PathBuf,
        /// As resolved.
        resolved: PathBuf,
        /// The directory relative paths start from.
        base: String,
    },

    /// A fault could not be applied, or a fault proxy cannot run.
    #[error("fault proxy {proxy}: {problem}\n  to fix: {fix}")]
    Fault {
        /// The proxy (its service's name).
        proxy: String,
        /// What is wrong, naming the toxic or parameter.
        problem: String,
        /// What to do.
        fix: String,
    },

    /// The shared environment of this run failed; every test attaching to it gets this same error.
    #[error("the shared environment {environment} failed: {message}")]
    Shared {
        /// Which environment (run and spec).
        environment: String,
        /// The keeper's report of the failure, the same text for every attaching test.
        message: String,
    },

    /// Talking to the keeper of a shared environment failed.
    #[error(
        "the keeper of the shared environment in {} {problem}{}\n  its log: {}",
        .dir.display(),
        .source.as_ref().map(|s| format!(": {s}")).unwrap_or_default(),
        crate::shared::run_dir::log_path(.dir).display()
    )]
    Keeper {
        /// The environment's run directory.
        dir: PathBuf,
        /// What went wrong.
        problem: String,
        /// The I/O error, when there was one.
        #[source]
        source: Option<std::io::Error>,
    },

    /// The keeper closed the connection before it answered (it ended as the test connected, or
    /// it died).
    #[error(
        "the keeper of the shared environment in {} closed the connection before answering\n  \
         its log ({}) ends with:\n{log_tail}",
        .dir.display(), crate::shared::run_dir::log_path(.dir).display()
    )]
    KeeperClosed {
        /// The environment's run directory.
        dir: PathBuf,
        /// The last lines of the keeper's log.
        log_tail: String,
    },

    /// Keepers kept dying under this attach: each one's replacement was tried, up to a bound.
    #[error(
        "the keeper of the shared environment in {} died {attempts} times while this test \
         attached; a replacement was started and tried each time, for {waited:?} in all, then \
         this test gave up. The last failure: {last}\n  \
         to fix: look in the keeper's log ({}) for what ends it (a kill loop, an OOM kill, a \
         crash at start)",
        .dir.display(), crate::shared::run_dir::log_path(.dir).display()
    )]
    KeeperLost {
        /// The environment's run directory.
        dir: PathBuf,
        /// How many keepers were lost.
        attempts: u32,
        /// How long the attach spent, replacements included.
        waited: Duration,
        /// What the last keeper's loss looked like.
        last: Box<Error>,
    },

    /// A stub server refused or failed an operation, or its mappings are invalid.
    #[cfg(feature = "stub")]
    #[error("stub: {0}")]
    Stub(#[from] drydock_stub::StubError),

    /// A Kafka client operation failed.
    #[cfg(feature = "kafka")]
    #[error("kafka at {bootstrap}: {context}: {source}")]
    Kafka {
        /// The broker's bootstrap address.
        bootstrap: String,
        /// What was being done.
        context: String,
        /// librdkafka's (or the encoder's) error.
        #[source]
        source: BoxError,
    },

    /// The awaited message did not arrive in time.
    #[error(
        "waited {waited:?} for {wanted}; {} arrived instead:{}{}",
        .arrived.len(),
        .arrived.iter().map(|m| format!("\n  {m}")).collect::<String>(),
        render_reported(.reported)
    )]
    NoMessage {
        /// What was awaited.
        wanted: String,
        /// How long.
        waited: Duration,
        /// One line per message that did arrive.
        arrived: Vec<String>,
        /// What the consumer reported meanwhile and recovered from (an unreachable broker, a
        /// topic it did not know), one line each: often why nothing came.
        reported: Vec<String>,
    },

    /// Starting several services failed; each failure is listed.
    #[error("{} services failed to start:\n{}", .0.len(), render_list(.0))]
    Several(Vec<Error>),
}

/// What to do when no engine answers.
const ENGINE_FIX: &str =
    "start the engine (`sudo systemctl start docker`, or `scripts/ensure-docker`), \
     or point DOCKER_HOST at a running one (e.g. DOCKER_HOST=unix:///run/user/1000/docker.sock)";

/// The same text as `Display`: what a failing test prints is what the user must read.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An error and its sources in one line, each source only once (clients often repeat the first
/// one in their own message).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// What a [`Error::ServiceNotInEnv`] says the environment has.
fn render_present(present: &[(String, String)]) -> String {
    if present.is_empty() {
        return String::new();
    }
    let list: Vec<String> = present
        .iter()
        .map(|(name, kind)| format!("{name} ({kind})"))
        .collect();
    format!(" (it has: {})", list.join(", "))
}

/// The `to fix:` of a [`Error::ServiceNotInEnv`]: ask for a service of the kind by the name it
/// was given (one named with `ServiceExt::named` is not found by its kind), or add one.
fn missing_fix(service: &str, wanted: Option<&str>, present: &[(String, String)]) -> String {
    let of_kind = present
        .iter()
        .find(|(_, kind)| Some(kind.as_str()) == wanted);
    let ask = match of_kind {
        Some((name, _)) => {
            format!("ask for it by the name it was given (`.named::<…>(\"{name}\")`), or ")
        }
        None => String::new(),
    };
    let add = match wanted {
        Some(kind) if kind == service => format!(
            "add it when building: Env::builder().with_{service}(..), or for one of yours \
             .with_container(Container::from_image(\"{service}\", ..)) / .with_service(..)"
        ),
        Some(kind) => format!(
            "add a {kind} named {service} when building: `.with_service(….named(\"{service}\"))`"
        ),
        None => {
            format!("use one of the names it has, or add a service named {service} when building")
        }
    };
    format!("{ask}{add}")
}

fn render_reported(reported: &[String]) -> String {
    if reported.is_empty() {
        return String::new();
    }
    let lines: String = reported.iter().map(|r| format!("\n  {r}")).collect();
    format!("\nthe consumer reported meanwhile (and went on waiting):{lines}")
}

fn render_list(errors: &[Error]) -> String {
    errors
        .iter()
        .map(|e| format!("- {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    pub(crate) fn docker(
        context: impl Into<String>,
        source: crate::docker::bollard::errors::Error,
    ) -> Self {
        Error::Docker {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn connect(
        service: &str,
        endpoint: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Connect {
            service: service.to_string(),
            endpoint: endpoint.into(),
            source: source.into(),
        }
    }

    pub(crate) fn keeper(dir: &std::path::Path, problem: impl Into<String>) -> Self {
        Error::Keeper {
            dir: dir.to_path_buf(),
            problem: problem.into(),
            source: None,
        }
    }

    pub(crate) fn keeper_io(
        dir: &std::path::Path,
        problem: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        Error::Keeper {
            dir: dir.to_path_buf(),
            problem: problem.into(),
            source: Some(source),
        }
    }
}

/// `?` on a sqlx call in a function returning `drydock::Result`.
#[cfg(feature = "postgres")]
impl From<sqlx::Error> for Error {
    fn from(source: sqlx::Error) -> Self {
        Error::Client {
            client: "sqlx",
            source: source.into(),
        }
    }
}

/// `?` on a redis call in a function returning `drydock::Result`.
#[cfg(feature = "redis")]
impl From<redis::RedisError> for Error {
    fn from(source: redis::RedisError) -> Self {
        Error::Client {
            client: "redis",
            source: source.into(),
        }
    }
}

/// `?` on an rdkafka call in a function returning `drydock::Result`.
#[cfg(feature = "kafka")]
impl From<rdkafka::error::KafkaError> for Error {
    fn from(source: rdkafka::error::KafkaError) -> Self {
        Error::Client {
            client: "rdkafka",
            source: source.into(),
        }
    }
}
