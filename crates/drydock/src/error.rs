//! drydock's one error type.
//!
//! Every variant says what failed, where, and what to do about it, because the person reading it is
//! usually looking at a red CI log with no way to poke at the machine.

use std::time::Duration;

/// Result alias used throughout drydock.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while starting, using or tearing down an environment.
///
/// ```
/// let err = drydock::Error::ServiceNotInEnv { service: "redis" };
/// assert!(err.to_string().contains("Env::builder()"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No Docker engine answered.
    #[error(
        "no Docker engine answered at {endpoint}: {cause}\n  \
         looked at: {looked_at}\n  \
         to fix: start the engine (`sudo systemctl start docker`, or `scripts/ensure-docker`), \
         or point DOCKER_HOST at a running one (e.g. DOCKER_HOST=unix:///run/user/1000/docker.sock)"
    )]
    DockerUnavailable {
        /// The endpoint that was tried.
        endpoint: String,
        /// Every place drydock looked for an engine, in order.
        looked_at: String,
        /// Why the last attempt failed.
        cause: String,
    },

    /// An image reference (from code or an environment variable) could not be parsed.
    #[error("invalid image reference {value:?} (from {origin}): {reason}")]
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
        service: &'static str,
        /// The resolved image reference.
        image: String,
        /// The environment variable that overrides this service's image.
        env_var: String,
        /// Why the pull failed.
        cause: String,
    },

    /// The container could not be created or started.
    #[error("starting the {service} container from `{image}` failed: {cause}")]
    StartFailed {
        /// The service being started.
        service: &'static str,
        /// The image it was started from.
        image: String,
        /// The engine's or testcontainers' message.
        cause: String,
    },

    /// The service did not pass its readiness probe within its bound.
    #[error(
        "{service} was not ready after {waited:?} (bound {bound:?}); last probe error: {last_error}\n  \
         to fix: read the container log below; raise the bound with `.ready_timeout(..)` if the machine is slow\n\
         --- last lines of the {service} container's log ---\n{log_tail}"
    )]
    NotReady {
        /// The service that was probed.
        service: &'static str,
        /// How long drydock waited.
        waited: Duration,
        /// The configured bound.
        bound: Duration,
        /// The error of the last probe attempt.
        last_error: String,
        /// The last lines the container wrote.
        log_tail: String,
    },

    /// The container stopped before it became ready.
    #[error(
        "the {service} container exited with code {exit_code} before it became ready\n\
         --- last lines of the {service} container's log ---\n{log_tail}"
    )]
    ContainerExited {
        /// The service whose container stopped.
        service: &'static str,
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
        source: testcontainers::bollard::errors::Error,
    },

    /// The environment has no service of the kind asked for.
    #[error(
        "this environment has no {service} service; add it when building: \
         Env::builder().with_{service}(..)"
    )]
    ServiceNotInEnv {
        /// The service that was asked for.
        service: &'static str,
    },

    /// Connecting a client to a running service failed.
    #[error("connecting to {service} at {endpoint}: {cause}")]
    Connect {
        /// The service.
        service: &'static str,
        /// The endpoint, with any secret removed.
        endpoint: String,
        /// The client's message.
        cause: String,
    },

    /// A bounded operation did not finish in time.
    #[error("{what} did not finish within {bound:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The bound.
        bound: Duration,
    },

    /// A migration or fixture could not be read or applied.
    #[error(
        "schema: {file}: {message}\n  \
         to fix: correct that file; nothing was left running"
    )]
    Schema {
        /// The migration or fixture file (or directory).
        file: String,
        /// The database's (or the file system's) message.
        message: String,
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
        "the keeper of the shared environment in {dir} {problem}\n  \
         its log: {dir}/keeper.log"
    )]
    Keeper {
        /// The environment's run directory.
        dir: String,
        /// What went wrong.
        problem: String,
    },

    /// A stub server refused or failed an operation, or its mappings are invalid.
    #[error("stub: {0}")]
    Stub(#[from] drydock_stub::StubError),
    /// A Kafka client operation failed.
    #[error("kafka at {bootstrap}: {context}: {cause}")]
    Kafka {
        /// The broker's bootstrap address.
        bootstrap: String,
        /// What was being done.
        context: String,
        /// librdkafka's message.
        cause: String,
    },

    /// The awaited message did not arrive in time.
    #[error(
        "waited {waited:?} for {wanted}; {} arrived instead:{}",
        .arrived.len(),
        .arrived.iter().map(|m| format!("\n  {m}")).collect::<String>()
    )]
    NoMessage {
        /// What was awaited.
        wanted: String,
        /// How long.
        waited: Duration,
        /// One line per message that did arrive.
        arrived: Vec<String>,
    },

    /// Starting several services failed; each failure is listed.
    #[error("{} services failed to start:\n{}", .0.len(), render_list(.0))]
    Several(Vec<Error>),
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
        source: testcontainers::bollard::errors::Error,
    ) -> Self {
        Error::Docker {
            context: context.into(),
            source,
        }
    }
}
