//! Succession: a keeper that finds the ready environment of a keeper of the same run and spec
//! that died takes it over — containers, template, the slices tests hold — instead of sweeping
//! it from under running tests.
//!
//! What a keeper leaves for its successor, in the run directory: `ready.json` (the instance,
//! written once it is ready, removed before it tears down) and `leases/<slice>.json` (each
//! slice's scopes and whose it is — a test's, the run's, kept for a look — removed when the
//! slice is given back).

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use testcontainers::bollard::query_parameters::ListContainersOptionsBuilder;

use super::serve::{Keeper, Resources};
use crate::{
    docker::Engine,
    error::{Error, Result},
    identity::{RunOwner, LABEL_INSTANCE, LABEL_SERVICE},
    service::{registry, Started, StartedContainer},
};

/// The ready environment, as `ready.json` records it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ReadyRecord {
    pub instance: String,
    pub network: String,
    /// How many keepers held it before: slice numbers of each start at `generation << 32`, so
    /// a successor never numbers a slice as one a test still holds.
    pub generation: u64,
}

/// One slice's lease, as `leases/<slice>.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LeaseRecord {
    /// The process it was cut for: the test's, or `drydock up`'s for the run's slice.
    #[serde(rename = "test")]
    pub holder: RunOwner,
    /// Each service's name and the scope granted.
    pub scopes: Vec<(String, serde_json::Value)>,
    /// Whose it is, and so when a successor gives it back.
    #[serde(default)]
    pub held_by: HeldBy,
}

/// Whose a recorded slice is: what a successor does with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum HeldBy {
    /// A test's: given back when the test's process ends.
    #[default]
    Test,
    /// The run's (`drydock up`): held until `drydock down` or the end of the run, whatever
    /// becomes of the process that asked.
    Run,
    /// A failed test's, kept for a look (`DRYDOCK_KEEP`): held until `drydock down`.
    Look {
        /// The test, as the keeper lists it.
        test: String,
    },
}

pub(super) fn write_json(path: &Path, value: &impl Serialize) {
    let write = serde_json::to_vec(value)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            // Written whole, then renamed: a successor never reads half a record.
            let partial = path.with_extension("partial");
            std::fs::write(&partial, bytes)?;
            std::fs::rename(&partial, path)
        });
    if let Err(e) = write {
        eprintln!(
            "drydock keeper: cannot write {} (a successor could not adopt it): {e}",
            path.display()
        );
    }
}

/// Reads the ready record of this run directory, if there is one.
pub(super) fn ready_record(keeper: &Keeper) -> Option<ReadyRecord> {
    let text = std::fs::read_to_string(keeper.dir.ready_file()).ok()?;
    serde_json::from_str(&text).ok()
}

/// The environment a keeper of this run and spec that died left ready, taken over; `None`
/// when there is none, or it cannot be taken over whole (a container gone or stopped, a
/// service that cannot be adopted): the caller sweeps and starts anew.
pub(super) async fn adopt(keeper: &Arc<Keeper>) -> Result<Option<(Resources, u64)>> {
    let Some(record) = ready_record(keeper) else {
        return Ok(None);
    };
    let engine = Engine::connect().await?;
    let filters = HashMap::from([(
        "label",
        vec![format!("{LABEL_INSTANCE}={}", record.instance)],
    )]);
    let listed = engine
        .docker()
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| Error::docker("listing the containers to adopt", e))?;
    let mut services: Vec<(String, Arc<dyn Started>)> = Vec::new();
    for (kind, spec) in &keeper.spec.services {
        let service = registry::rebuild(kind, spec.clone())?;
        let name = service.name().to_string();
        let Some(found) = listed.iter().find(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SERVICE))
                .is_some_and(|s| *s == name)
        }) else {
            eprintln!(
                "drydock keeper: not adopting {}: no {name} container",
                record.instance
            );
            return Ok(None);
        };
        let Some(id) = found.id.clone() else {
            return Ok(None);
        };
        let inspected = engine
            .docker()
            .inspect_container(&id, None)
            .await
            .map_err(|e| Error::docker(format!("inspecting the {name} container to adopt"), e))?;
        let running = inspected
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false);
        let paused = inspected
            .state
            .as_ref()
            .and_then(|s| s.paused)
            .unwrap_or(false);
        if !running || paused {
            eprintln!(
                "drydock keeper: not adopting {}: its {name} container is not running",
                record.instance
            );
            return Ok(None);
        }
        let config = inspected.config.unwrap_or_default();
        let env = config
            .env
            .unwrap_or_default()
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cmd = config.cmd.unwrap_or_default();
        let ports = crate::docker::published_ports(&engine, &id, &name).await?;
        let container = StartedContainer {
            engine: engine.clone(),
            service: name.clone(),
            image: config.image.unwrap_or_default(),
            id,
            name: inspected
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            host: engine.host().to_string(),
            ports,
        };
        // Bounded by the service's ready bound (a probe of the running server).
        match service.adopt(container, env, cmd).await? {
            Some(started) => services.push((name, started)),
            None => {
                eprintln!(
                    "drydock keeper: not adopting {}: {name} cannot be adopted",
                    record.instance
                );
                return Ok(None);
            }
        }
    }
    let generation = record.generation + 1;
    let resources = Resources {
        instance: record.instance,
        network: record.network,
        services,
        slices: std::sync::atomic::AtomicU64::new(generation << 32),
        holders: Default::default(),
    };
    Ok(Some((resources, generation)))
}

/// How often the successor looks whether the tests it took leases over from still run.
const ORPHAN_POLL: Duration = Duration::from_millis(250);

/// Takes over the leases the keeper that died recorded: a test's counts as a lease of this
/// keeper (it does not end under the test) and its scopes are given back when the test's
/// process ends, at once for a test that ended meanwhile; the run's (`drydock up`) and those
/// kept for a look are held again as they were.
pub(super) fn take_over_leases(keeper: &Arc<Keeper>, resources: &Resources) {
    let Ok(entries) = std::fs::read_dir(keeper.dir.leases_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // `<slice>.partial`: a record the dead keeper was writing; the whole one it replaces
        // (if any) is still there.
        if path.extension().is_none_or(|e| e != "json") {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let record: Option<LeaseRecord> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let Some(record) = record else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        let mut leases = Vec::new();
        for (name, scope) in &record.scopes {
            if let Some((_, started)) = resources.services.iter().find(|(n, _)| n == name) {
                leases.extend(started.reclaim(scope.clone()));
            }
        }
        let test = record.holder.clone();
        // The run's slice is held while the run's process lives (none: until `drydock down`).
        let run_lives = keeper.spec.owner.as_ref().is_none_or(RunOwner::is_alive);
        // The record lives as long as the slice, so a successor of this keeper finds it too.
        leases.push(Box::new(super::lease::LeaseFile::adopted(
            path,
            record.clone(),
        )));
        match record.held_by {
            HeldBy::Run if run_lives => {
                eprintln!("drydock keeper: holding the run's slice again (drydock up)");
                keeper.held().push(leases);
            }
            HeldBy::Run => drop(leases),
            HeldBy::Look { test } => {
                eprintln!("drydock keeper: keeping the slice of failed test {test} again");
                keeper.kept().push((test, leases));
            }
            HeldBy::Test if !test.is_alive() => drop(leases),
            HeldBy::Test => {
                eprintln!(
                    "drydock keeper: took over the lease of test process {}",
                    test.pid
                );
                let count = super::lease::LeaseCount::new(keeper);
                tokio::spawn(async move {
                    while test.is_alive() {
                        tokio::time::sleep(ORPHAN_POLL).await;
                    }
                    drop(leases);
                    drop(count);
                });
            }
        }
    }
}
