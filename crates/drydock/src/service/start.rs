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
    /// When this service's container may be created, among those started with it.
    pub gate: StartGate,
}

/// Orders the containers of one wave: those of services that [start first]
/// (Service::start_first) are created and started before the others are. The engine sets
/// containers up largely one at a time (networking, published ports), so a slow server that
/// waited behind quick ones would add their setup to the environment's start.
#[derive(Clone, Debug)]
pub(crate) struct StartGate {
    /// Services that start first and have not yet had their container started (or failed).
    leads: std::sync::Arc<tokio::sync::watch::Sender<usize>>,
    lead: bool,
}

impl StartGate {
    /// Gates for `starts_first` (one per service of a wave, in order).
    pub fn for_wave(starts_first: &[bool]) -> Vec<StartGate> {
        let leads = std::sync::Arc::new(
            tokio::sync::watch::channel(starts_first.iter().filter(|first| **first).count()).0,
        );
        starts_first
            .iter()
            .map(|lead| StartGate {
                leads: std::sync::Arc::clone(&leads),
                lead: *lead,
            })
            .collect()
    }

    /// For a service that starts first: its turn, which passes on when dropped — once its
    /// container has started or could not be, or its start ended before that.
    pub fn lead(&self) -> Option<LeadTurn> {
        self.lead
            .then(|| LeadTurn(std::sync::Arc::clone(&self.leads)))
    }

    /// For the others: waits until every service that starts first has had its turn. Bounded
    /// by those services' own start bound (a turn ends with its start, whatever the outcome).
    pub async fn wait_for_leads(&self) {
        if self.lead {
            return;
        }
        let mut leads = self.leads.subscribe();
        let _ = leads.wait_for(|left| *left == 0).await;
    }
}

/// A service that starts first, until its container has started (or failed to).
pub(crate) struct LeadTurn(std::sync::Arc<tokio::sync::watch::Sender<usize>>);

impl Drop for LeadTurn {
    fn drop(&mut self) {
        self.0.send_modify(|left| *left = left.saturating_sub(1));
    }
}

/// The image `service` runs: its override variable's ([`Service::image_vars`]), else the code's,
/// else its default.
pub(crate) fn image_of<S: Service>(service: &S) -> Result<image::ImageRef> {
    image::resolve_with(
        &service.image_vars(),
        service.default_image(),
        service.common().image.as_deref(),
        |var| std::env::var(var).ok(),
    )
}

/// Starts `service` and waits until it is ready. On failure the container may remain; the
/// environment's guard removes everything by label.
pub(crate) async fn start<S: Service>(
    service: &S,
    placement: &Placement,
    sharing: super::Sharing,
) -> Result<(S::Server, ContainerPlan, StartedContainer)> {
    let name = service.name().to_string();
    let image = image_of(service)?;
    let span = tracing::info_span!("start", service = %name, %image);
    async {
        let began = std::time::Instant::now();
        let container_name = format!("{}-{}", placement.network, name);
        // Held from here: a start that fails before its container exists passes the turn too.
        let mut lead = placement.gate.lead();
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
            let outcome =
                docker::start(&placement.engine, &name, &plan, &container_name, placement).await;
            drop(lead.take());
            match outcome {
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
