//! The services drydock runs, one module each, and the one routine that starts any of them.
//!
//! A service says how to run it (a [`ContainerPlan`]) and how to know it is ready (a probe over
//! its own protocol); starting, labelling, bounding and reporting are the same for all.

pub mod kafka;
pub mod postgres;
pub mod redis;
pub mod stub;

use std::{collections::HashMap, future::Future, time::Duration};

use tracing::Instrument;

use crate::{
    docker::{self, ContainerPlan, Engine, StartedContainer},
    error::Result,
    image::{self, ImageRef},
    readiness,
};

/// How a kind of service is run and probed.
pub(crate) trait Service: std::fmt::Debug + Send + Sync {
    /// The service's name: in labels, container names, errors and `DRYDOCK_IMAGE_<KIND>`.
    const KIND: &'static str;
    /// What the plan generated that clients need (credentials).
    type Access: Send;
    /// The running service as tests see it.
    type Server: Probe + Send + Sync;

    /// The official image users get unless they or their CI choose another.
    fn default_image(&self) -> &'static str;
    /// The image set in code, if any.
    fn image_in_code(&self) -> Option<&str>;
    /// How long readiness may take.
    fn ready_timeout(&self) -> Duration;
    /// The container to run, with the credentials generated for it.
    fn plan(&self, image: ImageRef, context: &PlanContext) -> (ContainerPlan, Self::Access);
    /// The server, once its container runs.
    fn server(&self, access: Self::Access, container: &StartedContainer) -> Self::Server;
}

/// One readiness check over the service's own protocol.
pub(crate) trait Probe {
    /// `Ok` once the service does real work; otherwise the reason, for the timeout error.
    fn probe(&self) -> impl Future<Output = std::result::Result<(), String>> + Send;
}

/// What a plan may need to know before its container exists.
pub(crate) struct PlanContext {
    /// The container's name, which resolves on the environment's network.
    pub container_name: String,
    /// Where this process reaches published ports.
    pub host: String,
    /// A free host port, reserved for a service that must know its published port up front
    /// (Kafka advertises it); publish it with `ContainerPlan::fixed_ports`.
    pub host_port: u16,
}

/// How often a start is retried when the reserved host port was taken in the meantime.
const PORT_ATTEMPTS: usize = 3;

/// Where a service's container goes and what it carries (owned: an engine is a cheap handle).
pub(crate) struct Placement {
    pub engine: Engine,
    /// The environment's network; also the prefix of its containers' names.
    pub network: String,
    pub labels: HashMap<String, String>,
}

/// Starts `service` and waits until it is ready. On failure the container may remain; the caller's
/// [`InstanceGuard`](crate::env) removes everything by label, which also covers what
/// testcontainers leaves behind after a failed start.
pub(crate) async fn start<S: Service>(service: &S, placement: Placement) -> Result<S::Server> {
    let image = image::resolve(S::KIND, service.default_image(), service.image_in_code())?;
    let span = tracing::info_span!("start", service = S::KIND, %image);
    async {
        let name = format!("{}-{}", placement.network, S::KIND);
        let mut attempt = 0;
        let (started, access) = loop {
            attempt += 1;
            let context = PlanContext {
                container_name: name.clone(),
                host: placement.engine.host().to_string(),
                host_port: docker::reserve_port(&placement.engine)?,
            };
            let (plan, access) = service.plan(image.clone(), &context);
            match docker::start(
                &placement.engine,
                plan,
                name.clone(),
                &placement.network,
                placement.labels.clone(),
            )
            .await
            {
                Ok(started) => break (started, access),
                // Another process took the reserved port between reservation and start.
                Err(e) if attempt < PORT_ATTEMPTS && docker::port_taken(&e) => {
                    docker::remove_container(&placement.engine, &name).await;
                }
                Err(e) => return Err(e),
            }
        };
        let server = service.server(access, &started);
        readiness::wait_until_ready(
            &placement.engine,
            S::KIND,
            &started,
            service.ready_timeout(),
            || server.probe(),
        )
        .instrument(tracing::debug_span!("readiness"))
        .await?;
        Ok(server)
    }
    .instrument(span)
    .await
}
