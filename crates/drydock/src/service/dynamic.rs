//! The object-safe face of [`Service`]: what environments, keepers and slices hold, so that
//! none of them names a service.

use crate::sync::lock;
use std::{any::Any, fmt, path::Path, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use serde_json::Value;

use super::{
    start::{self, Placement},
    ContainerPlan, Router, Service, Sharing, SliceId, StartedContainer,
};
use crate::{
    error::{Error, Result},
    fault::FaultProxy,
};

/// A service spec of any kind.
pub(crate) trait AnyService: Send + Sync + fmt::Debug {
    fn kind(&self) -> &'static str;
    fn name(&self) -> &str;
    fn depends_on(&self) -> Vec<String>;
    fn ready_bound(&self) -> Duration;
    /// [`Service::start_first`].
    fn start_first(&self) -> bool;
    /// The spec as it crosses to the keeper.
    fn spec(&self) -> Result<Value>;
    fn identity(&self) -> Result<Value>;
    fn files(&self) -> Vec<std::path::PathBuf>;
    fn resolve_paths(&mut self, base: &Path) -> Result<()>;
    fn clone_box(&self) -> Box<dyn AnyService>;
    /// Starts, waits for readiness, prepares.
    fn start<'a>(
        &'a self,
        placement: &'a Placement,
        sharing: Sharing,
    ) -> BoxFuture<'a, Result<Arc<dyn Started>>>;
    /// Takes over `container`, started for a shared environment by a keeper that died:
    /// `env` and `cmd` are what it was started with (its generated secrets). `None` when the
    /// service cannot be adopted ([`Service::adopt`]).
    fn adopt(
        &self,
        container: StartedContainer,
        env: Vec<(String, String)>,
        cmd: Vec<String>,
    ) -> BoxFuture<'_, Result<Option<Arc<dyn Started>>>>;
    /// A test's entry from what the keeper granted (server and scope as JSON).
    fn entry(&self, server: Value, scope: Value, container: String) -> Result<Entry>;
    /// What a system under test reads of a granted slice, reaching the server directly (for
    /// `drydock up`, whose process, and so its proxies, ends).
    fn direct_vars(&self, server: Value, scope: Value) -> Result<Vec<(String, String)>>;
}

impl Clone for Box<dyn AnyService> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// A running, prepared service.
pub(crate) trait Started: Send + Sync {
    /// The handle at the default scope (an owned environment's), through proxies of its own.
    fn owned(&self) -> Result<Entry>;
    fn server_json(&self) -> Result<Value>;
    /// One test's slice: its scope as JSON, and the lease that gives it back when dropped.
    fn cut(
        self: Arc<Self>,
        slice: SliceId,
    ) -> BoxFuture<'static, Result<(Value, Box<dyn Send + Sync>)>>;
    /// The container the service runs in.
    fn container(&self) -> StartedContainer;
    /// After the container came back (restart, start after stop, unpause): reads its ports
    /// again, waits until it is ready, prepares it again when its data was lost (`fresh`) —
    /// an owned service's schema and mappings, or a shared one's slicer (the template, anew) —
    /// and points `proxies` at its new addresses.
    fn recover<'a>(
        &'a self,
        proxies: &'a [FaultProxy],
        fresh: bool,
        sharing: Sharing,
    ) -> BoxFuture<'a, Result<()>>;
    /// A lease on `scope` (as granted), held by a test of a keeper that died; `None` when the
    /// service gives nothing back for it ([`Service::reclaim`]).
    fn reclaim(&self, scope: Value) -> Option<Box<dyn Send + Sync>>;
}

/// Asks a service for its part of a failing test's report.
pub(crate) type Explain =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Vec<String>> + Send + Sync>;

/// One service as a test sees it: its handle, variables and diagnostics.
#[derive(Clone)]
pub(crate) struct Entry {
    pub kind: &'static str,
    pub name: String,
    pub handle: Arc<dyn Any + Send + Sync>,
    pub vars: Vec<(String, String)>,
    pub diagnose: Vec<String>,
    /// The service's own lines for a failing test's report ([`Service::explain`]).
    pub explain: Explain,
    pub debug: String,
    /// The fault proxies in front of the service's addresses (they live as long as the entry).
    pub proxies: Vec<FaultProxy>,
    /// The id of the container the service runs in, for its log.
    pub container: String,
}

impl Entry {
    /// The entry of `server` in `scope`, its addresses routed through proxies made here.
    fn routed<S: Service>(
        name: &str,
        server: &S::Server,
        scope: S::Scope,
        container: String,
    ) -> Result<Entry> {
        let mut router = Router::new(name);
        let server = S::route(server, &mut router)?;
        let handle = S::handle(&server, scope);
        Ok(Entry {
            kind: S::KIND,
            name: name.to_string(),
            vars: S::vars_as(name, &handle),
            diagnose: S::diagnose(&handle),
            explain: {
                let handle = handle.clone();
                Arc::new(move || {
                    let handle = handle.clone();
                    Box::pin(async move { S::explain(&handle).await })
                })
            },
            debug: format!("{handle:?}"),
            handle: Arc::new(handle),
            proxies: router.into_proxies(),
            container,
        })
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.debug)
    }
}

impl<S: Service> AnyService for S {
    fn kind(&self) -> &'static str {
        S::KIND
    }

    fn name(&self) -> &str {
        Service::name(self)
    }

    fn depends_on(&self) -> Vec<String> {
        Service::depends_on(self)
    }

    fn start_first(&self) -> bool {
        Service::start_first(self)
    }

    fn ready_bound(&self) -> Duration {
        self.common()
            .ready_timeout
            .unwrap_or_else(|| self.default_ready_timeout())
    }

    fn spec(&self) -> Result<Value> {
        serde_json::to_value(self).map_err(|e| super::spec_error(Service::name(self), e))
    }

    fn identity(&self) -> Result<Value> {
        Service::identity(self)
    }

    fn files(&self) -> Vec<std::path::PathBuf> {
        Service::files(self)
    }

    fn resolve_paths(&mut self, base: &Path) -> Result<()> {
        Service::resolve_paths(self, base)
    }

    fn clone_box(&self) -> Box<dyn AnyService> {
        Box::new(self.clone())
    }

    fn start<'a>(
        &'a self,
        placement: &'a Placement,
        sharing: Sharing,
    ) -> BoxFuture<'a, Result<Arc<dyn Started>>> {
        Box::pin(async move {
            let (server, plan, container) = start::start(self, placement, sharing).await?;
            let slicer = self.prepare(&server, sharing).await?;
            Ok(Arc::new(Running::<S> {
                name: Service::name(self).to_string(),
                spec: self.clone(),
                plan,
                container: std::sync::Mutex::new(container),
                server: std::sync::Mutex::new(server),
                slicer: std::sync::Mutex::new(Arc::new(slicer)),
            }) as Arc<dyn Started>)
        })
    }

    fn adopt(
        &self,
        container: StartedContainer,
        env: Vec<(String, String)>,
        cmd: Vec<String>,
    ) -> BoxFuture<'_, Result<Option<Arc<dyn Started>>>> {
        Box::pin(async move {
            let image = start::image_of(self)?;
            let mut context = super::PlanContext {
                container_name: container.name.clone(),
                host: container.engine.host().to_string(),
                bind_ip: container.engine.bind_ip().to_string(),
                sharing: Sharing::Shared,
            };
            let mut plan = self.plan(image, &mut context)?;
            // What the container runs with, not what a new plan generates (passwords).
            plan.env = env;
            plan.cmd = cmd;
            let server = self.server(&plan, &container)?;
            start::await_ready(self, &server, &container).await?;
            let Some(slicer) = Service::adopt(self, &server).await? else {
                return Ok(None);
            };
            Ok(Some(Arc::new(Running::<S> {
                name: Service::name(self).to_string(),
                spec: self.clone(),
                plan,
                container: std::sync::Mutex::new(container),
                server: std::sync::Mutex::new(server),
                slicer: std::sync::Mutex::new(Arc::new(slicer)),
            }) as Arc<dyn Started>))
        })
    }

    fn entry(&self, server: Value, scope: Value, container: String) -> Result<Entry> {
        let decode = |what: &str, e: serde_json::Error| Error::Spec {
            service: Service::name(self).to_string(),
            problem: format!("the keeper granted a {what} this process cannot read: {e}"),
            fix: "the keeper runs another build of this test binary; run `cargo nextest run` again"
                .into(),
        };
        let server: S::Server = serde_json::from_value(server).map_err(|e| decode("server", e))?;
        let scope: S::Scope = serde_json::from_value(scope).map_err(|e| decode("scope", e))?;
        Entry::routed::<S>(Service::name(self), &server, scope, container)
    }

    fn direct_vars(&self, server: Value, scope: Value) -> Result<Vec<(String, String)>> {
        let decode = |what: &str, e: serde_json::Error| Error::Spec {
            service: Service::name(self).to_string(),
            problem: format!("the keeper granted a {what} this process cannot read: {e}"),
            fix: "the keeper runs another build of drydock; run `drydock down` and again".into(),
        };
        let server: S::Server = serde_json::from_value(server).map_err(|e| decode("server", e))?;
        let scope: S::Scope = serde_json::from_value(scope).map_err(|e| decode("scope", e))?;
        Ok(S::vars_as(Service::name(self), &S::handle(&server, scope)))
    }
}

struct Running<S: Service> {
    name: String,
    spec: S,
    plan: ContainerPlan,
    container: std::sync::Mutex<StartedContainer>,
    /// Changes when the container comes back on other ports.
    server: std::sync::Mutex<S::Server>,
    /// Changes when a shared service's container comes back empty: prepared anew.
    slicer: std::sync::Mutex<Arc<S::Slicer>>,
}

impl<S: Service> Running<S> {
    fn server(&self) -> S::Server {
        lock(&self.server).clone()
    }

    fn slicer(&self) -> Arc<S::Slicer> {
        Arc::clone(&lock(&self.slicer))
    }
}

impl<S: Service> Started for Running<S> {
    fn owned(&self) -> Result<Entry> {
        Entry::routed::<S>(
            &self.name,
            &self.server(),
            S::owned_scope(&self.slicer()),
            self.container().id,
        )
    }

    fn server_json(&self) -> Result<Value> {
        serde_json::to_value(self.server()).map_err(|e| super::spec_error(&self.name, e))
    }

    fn container(&self) -> StartedContainer {
        lock(&self.container).clone()
    }

    fn recover<'a>(
        &'a self,
        proxies: &'a [FaultProxy],
        fresh: bool,
        sharing: Sharing,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let container = self.container().reinspect().await?;
            let server = self.spec.server(&self.plan, &container)?;
            start::await_ready(&self.spec, &server, &container).await?;
            // Data on tmpfs is gone with a restart: what the spec asks for is applied again; a
            // shared service's slices are cut from a slicer prepared anew (the old one's
            // template is gone with the data).
            if fresh {
                let slicer = self.spec.prepare(&server, sharing).await?;
                if sharing == Sharing::Shared {
                    *lock(&self.slicer) = Arc::new(slicer);
                }
            }
            S::route(&server, &mut Router::retarget(&self.name, proxies))?;
            *lock(&self.container) = container;
            *lock(&self.server) = server;
            Ok(())
        })
    }

    fn reclaim(&self, scope: Value) -> Option<Box<dyn Send + Sync>> {
        let scope: S::Scope = serde_json::from_value(scope).ok()?;
        S::reclaim(&self.slicer(), &scope).map(|lease| Box::new(lease) as Box<dyn Send + Sync>)
    }

    fn cut(
        self: Arc<Self>,
        slice: SliceId,
    ) -> BoxFuture<'static, Result<(Value, Box<dyn Send + Sync>)>> {
        Box::pin(async move {
            let lease = S::cut(&self.slicer(), slice).await?;
            let scope = serde_json::to_value(lease.scope())
                .map_err(|e| super::spec_error(&self.name, e))?;
            Ok((scope, Box::new(lease) as Box<dyn Send + Sync>))
        })
    }
}
