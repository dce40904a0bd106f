//! What a test reaches: the same whether it owns the environment or holds a slice of it.

use std::{collections::HashMap, fmt};

use crate::{
    error::{Error, Result},
    fault::{FaultProxy, Traffic},
    service::{Entry, Service},
};

/// The services of an [`Env`](crate::Env) or a [`Slice`](crate::Slice), one handle each.
///
/// An owned environment's handles use each service's default scope (database `drydock`, Redis
/// database 0, topic prefix `""`, stub namespace `""`); a slice's use the scope cut for its test.
/// The types are the same, so helpers take `&Services` and work with both.
///
/// ```no_run
/// use drydock::{Env, Postgres, Services};
///
/// async fn count_orders(services: &Services) -> drydock::Result<i64> {
///     let pool = services.postgres()?.pool().await?;
///     Ok(sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&pool).await?)
/// }
///
/// # async fn demo() -> drydock::Result<()> {
/// let env = Env::builder().with_postgres(Postgres::default()).start().await?;
/// count_orders(&env).await?;                     // an owned environment
/// let slice = Env::builder().with_postgres(Postgres::default()).attach().await?;
/// count_orders(&slice).await?;                   // a slice of a shared one
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Services {
    entries: Vec<Entry>,
}

impl Services {
    pub(crate) fn new(entries: Vec<Entry>) -> Self {
        Services { entries }
    }

    /// The handle of the service of type `S` named by its kind (`S::KIND`).
    pub fn get<S: Service>(&self) -> Result<&S::Handle> {
        self.named::<S>(S::KIND)
    }

    /// The handle of the service `name`, of type `S`.
    pub fn named<S: Service>(&self, name: &str) -> Result<&S::Handle> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| self.not_in_env(name, Some(S::KIND)))?;
        entry
            .handle
            .downcast_ref::<S::Handle>()
            .ok_or_else(|| Error::WrongServiceType {
                service: name.to_string(),
                actual: entry.kind.to_string(),
                wanted: S::KIND.to_string(),
            })
    }

    /// The PostgreSQL database: the environment's own, or this slice's clone of the template.
    #[cfg(feature = "postgres")]
    pub fn postgres(&self) -> Result<&crate::PostgresDb> {
        self.get::<crate::Postgres>()
    }

    /// The Redis logical database: 0 in an owned environment, this slice's in a shared one.
    #[cfg(feature = "redis")]
    pub fn redis(&self) -> Result<&crate::RedisDb> {
        self.get::<crate::Redis>()
    }

    /// Kafka topic names and groups: unprefixed in an owned environment, under this slice's
    /// prefix in a shared one (its topics are deleted on release).
    #[cfg(feature = "kafka")]
    pub fn kafka(&self) -> Result<&crate::KafkaSlice> {
        self.get::<crate::Kafka>()
    }

    /// The stub server: its root in an owned environment, this slice's namespace in a shared one.
    #[cfg(feature = "stub")]
    pub fn stub(&self) -> Result<&crate::StubEndpoint> {
        self.get::<crate::HttpStub>()
    }

    /// A container of your own, added with
    /// [`EnvBuilder::with_container`](crate::EnvBuilder::with_container).
    pub fn container(&self, name: &str) -> Result<&crate::ContainerEndpoint> {
        self.named::<crate::Container>(name)
    }

    /// The fault proxy in front of service `name` (the first, for a service with several
    /// addresses): add toxics to it, take its link down, read its traffic. See [`crate::fault`].
    pub fn fault(&self, name: &str) -> Result<&FaultProxy> {
        self.faults(name)?.first().ok_or_else(|| Error::Fault {
            proxy: name.to_string(),
            problem: "this service routes none of its addresses through a proxy".into(),
            fix: "fault a service drydock proxies (see Services::traffic for those that are)"
                .into(),
        })
    }

    /// The address containers on `network` use to reach service `name` through this
    /// environment's or slice's fault proxy (the network's gateway and a port of the proxy), so
    /// a system under test in a container gets the same faults as the test.
    pub(crate) async fn network_route(&self, name: &str, network: &str) -> Result<String> {
        let proxy = self.fault(name)?;
        let engine = crate::docker::Engine::connect().await?;
        let gateway = crate::docker::network_gateway(&engine, network).await?;
        Ok(proxy.listen_also(gateway)?.to_string())
    }

    /// Every fault proxy in front of service `name`, one per address.
    pub fn faults(&self, name: &str) -> Result<&[FaultProxy]> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.proxies.as_slice())
            .ok_or_else(|| self.not_in_env(name, None))
    }

    /// The error for a service `name` (of kind `wanted`, when asked for by type) this
    /// environment lacks, naming those it has.
    pub(crate) fn not_in_env(&self, name: &str, wanted: Option<&str>) -> Error {
        Error::ServiceNotInEnv {
            service: name.to_string(),
            wanted: wanted.map(str::to_string),
            present: self
                .entries
                .iter()
                .map(|e| (e.name.clone(), e.kind.to_string()))
                .collect(),
        }
    }

    /// What crossed each service's proxies so far: connections, bytes, round trips, waits.
    pub fn traffic(&self) -> Vec<(String, Traffic)> {
        self.entries
            .iter()
            .flat_map(|e| {
                e.proxies
                    .iter()
                    .map(|p| (p.name().to_string(), p.traffic()))
            })
            .collect()
    }

    /// The configuration a system under test reads, from every service: `DATABASE_URL`,
    /// `REDIS_URL`, `KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC_PREFIX`, `STUB_URL` (and
    /// `STUB_ADMIN_URL`, with the stub's admin credentials), and
    /// `<NAME>_HOST`/`<NAME>_PORT` for containers of your own.
    pub fn vars(&self) -> HashMap<String, String> {
        self.entries
            .iter()
            .flat_map(|e| e.vars.iter().cloned())
            .collect()
    }

    /// The entries, for a failing test's report.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The services' names, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// What to show when a test fails: per service, its scope and how to connect.
    pub fn diagnostics(&self) -> String {
        let mut text = String::new();
        for entry in &self.entries {
            text.push_str(&format!("{}: {}\n", entry.name, entry.debug));
            for line in &entry.diagnose {
                text.push_str(&format!("  {line}\n"));
            }
            for proxy in &entry.proxies {
                text.push_str(&format!(
                    "  traffic via {}: {}\n",
                    proxy.listen_addr(),
                    proxy.traffic()
                ));
            }
        }
        text
    }
}

impl Services {
    /// [`diagnostics`](Self::diagnostics) and the last `lines` lines of each service's
    /// container log: what to print when a test fails.
    ///
    /// ```no_run
    /// # async fn demo(slice: drydock::Slice) {
    /// eprintln!("{}", slice.report(20).await);
    /// # }
    /// ```
    pub async fn report(&self, lines: usize) -> String {
        let mut text = self.diagnostics();
        let Ok(engine) = crate::docker::Engine::connect().await else {
            text.push_str("(no Docker engine answered: no container logs)\n");
            return text;
        };
        for entry in &self.entries {
            let log = crate::docker::log_tail(&engine, &entry.container, lines).await;
            text.push_str(&format!(
                "--- last {lines} lines of {}'s log ---\n{log}\n",
                entry.name
            ));
        }
        text
    }
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|e| (&e.name, e)))
            .finish()
    }
}
