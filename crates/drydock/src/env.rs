//! An owned environment: services started together for one test, removed when it is dropped.

use std::{collections::HashMap, time::Duration};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use testcontainers::bollard::models::NetworkCreateRequest;
use tracing::Instrument;

use crate::{
    docker::{remove_labelled_blocking, Engine},
    error::{Error, Result},
    identity::InstanceLabels,
    service::{
        self,
        kafka::KafkaServer,
        postgres::{schema, PostgresServer},
        redis::RedisServer,
        stub::StubEndpoint,
        Placement,
    },
    HttpStub, Kafka, Postgres, Redis,
};

/// How long removing an environment may take before drop gives up (and reports it).
const TEARDOWN_BOUND: Duration = Duration::from_secs(60);

/// Describes an environment's services; [`start`](EnvBuilder::start) runs them concurrently.
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
#[derive(Clone, Debug, Serialize, Deserialize)]
#[must_use = "an EnvBuilder does nothing until `.start()` or `.attach()` is awaited"]
pub struct EnvBuilder {
    pub(crate) postgres: Option<Postgres>,
    pub(crate) redis: Option<Redis>,
    pub(crate) kafka: Option<Kafka>,
    #[serde(default)]
    pub(crate) stub: Option<HttpStub>,
    pub(crate) grace_period: Duration,
}

impl Default for EnvBuilder {
    fn default() -> Self {
        EnvBuilder {
            postgres: None,
            redis: None,
            kafka: None,
            stub: None,
            grace_period: Duration::from_secs(5),
        }
    }
}

impl EnvBuilder {
    /// Adds a PostgreSQL server.
    pub fn with_postgres(mut self, postgres: Postgres) -> Self {
        self.postgres = Some(postgres);
        self
    }

    /// Adds a Redis server.
    pub fn with_redis(mut self, redis: Redis) -> Self {
        self.redis = Some(redis);
        self
    }

    /// Adds a Kafka broker.
    pub fn with_kafka(mut self, kafka: Kafka) -> Self {
        self.kafka = Some(kafka);
        self
    }

    /// Adds a stub HTTP server, run in a container (for systems under test in containers; a
    /// test alone is faster with an in-process [`stub::StubServer`](crate::stub::StubServer)).
    pub fn with_stub(mut self, stub: HttpStub) -> Self {
        self.stub = Some(stub);
        self
    }

    /// How long a shared environment outlives its last lease before it is removed (5 s by
    /// default): long enough to bridge the gap between two test processes of one run.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    /// The identity of this spec: equal specs give equal ids; any change of image, setting, or
    /// of the content of a migration or fixture file gives another.
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

    pub(crate) fn resolved_identity(&self) -> Result<String> {
        let schema = match &self.postgres {
            Some(postgres) => {
                let (migrations, fixtures) = postgres.schema_files();
                schema::fingerprint(migrations, fixtures)?
            }
            None => String::new(),
        };
        let mappings = match &self.stub {
            Some(stub) => stub.fingerprint()?,
            None => String::new(),
        };
        // The grace period is how long, not what: it does not make another environment.
        let digest = Sha256::digest(format!(
            "{:?}|{:?}|{:?}|{:?}|{schema}|{mappings}",
            self.postgres, self.redis, self.kafka, self.stub
        ));
        Ok(hex::encode(&digest[..8]))
    }

    /// The longest any service may take to be ready.
    pub(crate) fn ready_bounds(&self) -> Duration {
        let postgres = self.postgres.as_ref().map(Postgres::ready_bound);
        let redis = self.redis.as_ref().map(Redis::ready_bound);
        let kafka = self.kafka.as_ref().map(Kafka::ready_bound);
        let stub = self.stub.as_ref().map(HttpStub::ready_bound);
        postgres
            .into_iter()
            .chain(redis)
            .chain(kafka)
            .chain(stub)
            .max()
            .unwrap_or_default()
    }

    /// Makes every path of the spec absolute, so it means the same in another process.
    pub(crate) fn resolve_paths(&mut self) -> Result<()> {
        if let Some(postgres) = &mut self.postgres {
            postgres.resolve_paths()?;
        }
        if let Some(stub) = &mut self.stub {
            stub.resolve_paths()?;
        }
        Ok(())
    }

    /// Attaches to the environment this spec describes, shared by every test process of the
    /// run, and returns this test's own [`Slice`](crate::Slice) of it. See [`crate::shared`].
    pub async fn attach(self) -> Result<crate::Slice> {
        crate::shared::attach(self).await
    }

    /// Starts every service concurrently and waits until all are ready.
    ///
    /// On any failure, everything already started is removed before the error is returned, and
    /// every failing service is reported, not just the first.
    pub async fn start(mut self) -> Result<Env> {
        self.resolve_paths()?;
        // Also checks the stub mappings, before anything is created.
        let identity = self.resolved_identity()?;
        let engine = Engine::connect().await?;
        let labels = InstanceLabels::owned(identity);
        let span = tracing::info_span!("env", instance = %labels.instance);
        self.start_as(engine, labels).instrument(span).await
    }

    /// Starts the services under the given labels; the keeper of a shared environment uses this
    /// with its own identity.
    pub(crate) async fn start_as(self, engine: Engine, labels: InstanceLabels) -> Result<Env> {
        // Armed from before the first resource exists: a failed or cancelled start removes what it made.
        let guard = InstanceGuard {
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

        let placement = |kind: &str| Placement {
            engine: engine.clone(),
            network: network.clone(),
            labels: labels.for_service(kind),
        };
        let (postgres_placement, redis_placement, kafka_placement, stub_placement) = (
            placement("postgres"),
            placement("redis"),
            placement("kafka"),
            placement("stub"),
        );
        // All run to completion even if one fails, so nothing is still being created while the
        // guard removes what exists.
        let (postgres, redis, kafka, stub) = tokio::join!(
            start_optional(self.postgres.as_ref(), postgres_placement),
            start_optional(self.redis.as_ref(), redis_placement),
            start_optional(self.kafka.as_ref(), kafka_placement),
            start_optional(self.stub.as_ref(), stub_placement),
        );
        let mut failures = Vec::new();
        let postgres = postgres.unwrap_or_else(|e| {
            failures.push(e);
            None
        });
        let redis = redis.unwrap_or_else(|e| {
            failures.push(e);
            None
        });
        let kafka = kafka.unwrap_or_else(|e| {
            failures.push(e);
            None
        });
        let stub = stub.unwrap_or_else(|e| {
            failures.push(e);
            None
        });
        if let (Some(spec), Some(server), true) = (&self.postgres, &postgres, failures.is_empty()) {
            let (migrations, fixtures) = spec.schema_files();
            if let Err(e) = schema::apply(&server.connect_options(), migrations, fixtures)
                .instrument(tracing::info_span!("schema"))
                .await
            {
                failures.push(e);
            }
        }
        if let (Some(spec), Some(endpoint), true) = (&self.stub, &stub, failures.is_empty()) {
            if let Err(e) = spec.install(endpoint).await {
                failures.push(e);
            }
        }
        match failures.len() {
            0 => Ok(Env {
                guard,
                network,
                postgres,
                redis,
                kafka,
                stub,
            }),
            // The guard drops here and removes what was started.
            1 => Err(failures.remove(0)),
            _ => Err(Error::Several(failures)),
        }
    }
}

async fn start_optional<S: service::Service>(
    service: Option<&S>,
    placement: Placement,
) -> Result<Option<S::Server>> {
    match service {
        Some(service) => service::start(service, placement).await.map(Some),
        None => Ok(None),
    }
}

/// Running services of one test. Dropping it removes every container and network it created,
/// also when the test panics.
///
/// ```no_run
/// # async fn demo() -> drydock::Result<()> {
/// let env = drydock::Env::builder().with_redis(drydock::Redis::default()).start().await?;
/// std::env::set_var("REDIS_URL", env.redis()?.url());
/// env.teardown().await?; // or just let it drop
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Env {
    guard: InstanceGuard,
    network: String,
    postgres: Option<PostgresServer>,
    redis: Option<RedisServer>,
    kafka: Option<KafkaServer>,
    stub: Option<StubEndpoint>,
}

impl Env {
    /// Starts describing an environment.
    pub fn builder() -> EnvBuilder {
        EnvBuilder::default()
    }

    /// The PostgreSQL server, if the environment has one.
    pub fn postgres(&self) -> Result<&PostgresServer> {
        self.postgres.as_ref().ok_or(Error::ServiceNotInEnv {
            service: "postgres",
        })
    }

    /// The Redis server, if the environment has one.
    pub fn redis(&self) -> Result<&RedisServer> {
        self.redis
            .as_ref()
            .ok_or(Error::ServiceNotInEnv { service: "redis" })
    }

    /// The Kafka broker, if the environment has one.
    pub fn kafka(&self) -> Result<&KafkaServer> {
        self.kafka
            .as_ref()
            .ok_or(Error::ServiceNotInEnv { service: "kafka" })
    }

    /// The stub HTTP server, if the environment has one.
    pub fn stub(&self) -> Result<&StubEndpoint> {
        self.stub
            .as_ref()
            .ok_or(Error::ServiceNotInEnv { service: "stub" })
    }

    /// The configuration a system under test reads: `DATABASE_URL`, `REDIS_URL`,
    /// `KAFKA_BOOTSTRAP_SERVERS`, `STUB_URL`.
    pub fn vars(&self) -> HashMap<String, String> {
        let mut vars = HashMap::new();
        if let Some(postgres) = &self.postgres {
            vars.insert("DATABASE_URL".into(), postgres.url());
        }
        if let Some(redis) = &self.redis {
            vars.insert("REDIS_URL".into(), redis.url());
        }
        if let Some(kafka) = &self.kafka {
            vars.insert(
                "KAFKA_BOOTSTRAP_SERVERS".into(),
                kafka.bootstrap_servers().into(),
            );
        }
        if let Some(stub) = &self.stub {
            vars.insert("STUB_URL".into(), stub.url());
        }
        vars
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

    /// Removes the environment now and reports failure, instead of logging it as a drop does.
    pub async fn teardown(mut self) -> Result<()> {
        let label = self.guard.labels.instance_filter();
        self.guard.armed = false;
        tokio::task::spawn_blocking(move || remove_labelled_blocking(label, TEARDOWN_BOUND))
            .await
            .map_err(|e| Error::Timeout {
                what: format!("teardown task ({e})"),
                bound: TEARDOWN_BOUND,
            })?
            .map(|_| ())
    }
}

/// Removes an instance's resources by label when dropped, unless disarmed.
#[derive(Debug)]
struct InstanceGuard {
    labels: InstanceLabels,
    armed: bool,
}

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let span = tracing::info_span!("teardown", instance = %self.labels.instance);
        let _entered = span.enter();
        match remove_labelled_blocking(self.labels.instance_filter(), TEARDOWN_BOUND) {
            Ok(removed) => tracing::debug!(?removed, "removed"),
            // Drop cannot return the error; say it where the developer will look.
            Err(e) => eprintln!(
                "drydock: could not remove environment {} ({e}); `drydock prune` removes it",
                self.labels.instance
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests spawn environments onto runtimes; a non-`Send` start would stop them compiling.
    #[test]
    fn starting_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let start = Env::builder().with_redis(Redis::default()).start();
        is_send(&start);
    }
}
