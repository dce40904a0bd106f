//! Removal by label: the one mechanism behind teardown, failed starts and pruning.
//!
//! Whatever handle drydock holds or lost (a failed start leaves a container
//! created, a test may panic between two starts), a resource is found again by its labels.

use std::{collections::HashMap, time::Duration};

use futures::future::join_all;
use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder,
};

use super::Engine;
use crate::error::{Error, Result};

/// What a removal found and removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Containers removed.
    pub containers: usize,
    /// Networks removed.
    pub networks: usize,
    /// Volumes removed.
    pub volumes: usize,
}

/// Removes every container, network and volume carrying all of `labels` (`key=value` each),
/// containers first since a network cannot go while containers use it.
///
/// ```no_run
/// # async fn demo() -> drydock::Result<()> {
/// let engine = drydock::docker::Engine::connect().await?;
/// let removed = drydock::docker::remove_labelled(&engine, &["drydock.run=ci-1234".into()]).await?;
/// println!("{} containers removed", removed.containers);
/// # Ok(()) }
/// ```
pub async fn remove_labelled(engine: &Engine, labels: &[String]) -> Result<Removed> {
    let docker = engine.docker();
    let label = labels.join(",");
    let filters = HashMap::from([("label", labels.to_vec())]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| Error::docker(format!("listing containers labelled {label}"), e))?;
    let removals = containers
        .iter()
        .filter_map(|c| c.id.as_deref())
        .map(|id| async move {
            let options = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            match docker.remove_container(id, Some(options)).await {
                Ok(()) => Ok(true),
                Err(e) if is_not_found(&e) => Ok(false),
                Err(e) => Err(Error::docker(format!("removing container {id}"), e)),
            }
        });
    let mut removed = Removed::default();
    for outcome in join_all(removals).await {
        removed.containers += usize::from(outcome?);
    }

    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(|e| Error::docker(format!("listing networks labelled {label}"), e))?;
    for network in networks.iter().filter_map(|n| n.id.as_deref()) {
        match docker.remove_network(network).await {
            Ok(()) => removed.networks += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(Error::docker(format!("removing network {network}"), e)),
        }
    }

    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(|e| Error::docker(format!("listing volumes labelled {label}"), e))?;
    for volume in volumes.volumes.unwrap_or_default() {
        match docker
            .remove_volume(
                &volume.name,
                None::<testcontainers::bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await
        {
            Ok(()) => removed.volumes += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(Error::docker(format!("removing volume {}", volume.name), e)),
        }
    }
    Ok(removed)
}

/// [`remove_labelled`] from synchronous code (a `Drop`), bounded by `bound`.
///
/// It runs on a thread of its own with its own runtime and a fresh engine connection: the caller
/// may be a current-thread runtime blocked in this very drop, and a client whose connections live
/// on that runtime would wait on it forever.
pub(crate) fn remove_labelled_blocking(label: String, bound: Duration) -> Result<Removed> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let what = format!("removing resources labelled {label}");
    let labels = vec![label];
    std::thread::Builder::new()
        .name("drydock-teardown".into())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::connect("docker", "a teardown runtime", e))
                .and_then(|runtime| {
                    runtime.block_on(async {
                        let engine = Engine::connect().await?;
                        remove_labelled(&engine, &labels).await
                    })
                });
            let _ = tx.send(outcome);
        })
        .map_err(|e| Error::connect("docker", "a teardown thread", e))?;
    rx.recv_timeout(bound)
        .map_err(|_| Error::Timeout { what, bound })?
}

fn is_not_found(error: &testcontainers::bollard::errors::Error) -> bool {
    matches!(
        error,
        testcontainers::bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
