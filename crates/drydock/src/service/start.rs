//! The one routine that starts any service: image, plan, container, readiness.

use std::collections::HashMap;

use tracing::Instrument;

use super::{plan::PlanContext, ContainerPlan, Service, StartedContainer};
use crate::{
    docker::{self, Engine},
    error::{Error, Result},
    image, readiness,
};

/// How often a start is retried when a reserved host port was taken in the meantime.
const PORT_ATTEMPTS: usize = 3;

/// Where a service's container goes and what it carries.
#[derive(Clone)]
pub(crate) struct Placement {
    pub engine: Engine,
    /// The environment's network; also the prefix of its containers' names.
    pub network: String,
    pub labels: HashMap<String, String>,
}

/// Starts `service` and waits until it is ready. On failure the container may remain; the
/// environment's guard removes everything by label.
pub(crate) async fn start<S: Service>(
    service: &S,
    placement: &Placement,
    sharing: super::Sharing,
) -> Result<(S::Server, ContainerPlan, StartedContainer)> {
    let name = service.name().to_string();
    let image = image::resolve(
        &name,
        service.default_image(),
        service.common().image.as_deref(),
    )?;
    let span = tracing::info_span!("start", service = %name, %image);
    async {
        let began = std::time::Instant::now();
        let container_name = format!("{}-{}", placement.network, name);
        let mut attempt = 0;
        let (plan, started) = loop {
            attempt += 1;
            let mut context = PlanContext {
                container_name: container_name.clone(),
                host: placement.engine.host().to_string(),
                bind_ip: placement.engine.bind_ip().to_string(),
                sharing,
            };
            let plan: ContainerPlan = service.plan(image.clone(), &mut context)?;
            match docker::start(&placement.engine, &name, &plan, &container_name, placement).await {
                Ok(started) => break (plan, started),
                // Another process took a reserved port between reservation and start.
                Err(Error::PortTaken { .. }) if attempt < PORT_ATTEMPTS => {
                    docker::remove_container(&placement.engine, &container_name).await;
                }
                Err(e) => return Err(e),
            }
        };
        check_published(&plan, &started).await?;
        let server = service.server(&plan, &started)?;
        await_ready(service, &server, &started).await?;
        crate::progress::service_ready(&name, &image.to_string(), began.elapsed());
        Ok((server, plan, started))
    }
    .instrument(span)
    .await
}

/// A port of the plan that the engine does not show published means, in practice, a container
/// that already exited (its ports go with it): say that, with its log, rather than "port not
/// published" (an image that is not the service's, a command that fails at once).
async fn check_published(plan: &ContainerPlan, started: &StartedContainer) -> Result<()> {
    let wanted = plan
        .ports
        .iter()
        .chain(plan.fixed_ports.iter().map(|(_, port)| port));
    let Some(port) = wanted.copied().find(|p| !started.ports.contains_key(p)) else {
        return Ok(());
    };
    // The exit may be a moment behind the inspection that found no port.
    for _ in 0..20 {
        if let Some(exit_code) = docker::exit_code(&started.engine, &started.id).await {
            return Err(Error::ContainerExited {
                service: started.service.clone(),
                image: started.image.clone(),
                exit_code,
                log_tail: docker::log_tail(&started.engine, &started.id, 40).await,
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(Error::PortNotPublished {
        service: started.service.clone(),
        image: started.image.clone(),
        port,
    })
}

/// Probes `server` until it is ready, within the service's bound.
pub(crate) async fn await_ready<S: Service>(
    service: &S,
    server: &S::Server,
    container: &StartedContainer,
) -> Result<()> {
    let bound = service
        .common()
        .ready_timeout
        .unwrap_or_else(|| service.default_ready_timeout());
    readiness::wait_until_ready(container, bound, || service.probe(server, container))
        .instrument(tracing::debug_span!("readiness"))
        .await
}
