//! `drydock ls` and `drydock prune`: the environments drydock's labels say exist.
//!
//! Both look only at resources carrying `drydock.run` (containers, and networks and volumes a
//! killed start left without one); `prune` removes an instance only when the process that owns it (its
//! `drydock.owner` label, told apart from a later process with the same pid by
//! `drydock.owner-started`) is gone from this machine. An instance of another machine
//! (`drydock.host`; an engine shared by several) is left alone: its liveness cannot be judged here.
//! Nor is an instance a live keeper of this user serves (one that adopted it from a dead keeper).

use std::{
    collections::{BTreeMap, HashMap},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Result;
use drydock::{
    docker::{
        bollard::query_parameters::{
            ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
        },
        remove_labelled, Engine,
    },
    identity::{
        host_id, process_alive, LABEL_ENV, LABEL_HOST, LABEL_INSTANCE, LABEL_OWNER,
        LABEL_OWNER_STARTED, LABEL_RUN, LABEL_SERVICE,
    },
};

/// One started environment, as its containers' labels describe it.
struct Instance {
    run: String,
    env: String,
    owner: Option<u32>,
    owner_started: Option<u64>,
    /// The owner's machine; `None` for resources labelled before drydock said.
    host: Option<String>,
    services: Vec<String>,
    created: i64,
}

/// Whether an instance's owner lives, as far as this machine can tell.
#[derive(Debug, PartialEq, Eq)]
enum Owner {
    Alive,
    Gone,
    /// Of another machine: not judged here, never pruned from here.
    Elsewhere(String),
}

impl Instance {
    fn from_labels(labels: &HashMap<String, String>, created: i64) -> Self {
        Instance {
            run: labels.get(LABEL_RUN).cloned().unwrap_or_default(),
            env: labels.get(LABEL_ENV).cloned().unwrap_or_default(),
            owner: labels.get(LABEL_OWNER).and_then(|p| p.parse().ok()),
            owner_started: labels.get(LABEL_OWNER_STARTED).and_then(|s| s.parse().ok()),
            host: labels.get(LABEL_HOST).cloned(),
            services: Vec::new(),
            created,
        }
    }

    fn owner(&self) -> Owner {
        match (&self.host, self.owner) {
            (Some(host), _) if *host != host_id() => Owner::Elsewhere(host.clone()),
            (_, Some(pid)) if process_alive(pid, self.owner_started) => Owner::Alive,
            _ => Owner::Gone,
        }
    }
}

async fn instances(engine: &Engine) -> Result<BTreeMap<String, Instance>> {
    let filters = HashMap::from([("label", vec![LABEL_RUN.to_string()])]);
    let containers = engine
        .docker()
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    let mut found: BTreeMap<String, Instance> = BTreeMap::new();
    for container in containers {
        let labels = container.labels.unwrap_or_default();
        let Some(instance) = labels.get(LABEL_INSTANCE) else {
            continue;
        };
        let entry = found.entry(instance.clone()).or_insert_with(|| {
            Instance::from_labels(&labels, container.created.unwrap_or_default())
        });
        if let Some(service) = labels.get(LABEL_SERVICE) {
            entry.services.push(service.clone());
        }
        entry.created = entry
            .created
            .min(container.created.unwrap_or(entry.created));
    }
    // A network whose instance has no container (a start killed between the two) is one too.
    let networks = engine
        .docker()
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await?;
    // So is a volume left without either.
    let volumes = engine
        .docker()
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await?
        .volumes
        .unwrap_or_default();
    let labels = networks
        .into_iter()
        .map(|n| n.labels.unwrap_or_default())
        .chain(volumes.into_iter().map(|v| v.labels));
    for labels in labels {
        let Some(instance) = labels.get(LABEL_INSTANCE) else {
            continue;
        };
        found
            .entry(instance.clone())
            .or_insert_with(|| Instance::from_labels(&labels, 0));
    }
    Ok(found)
}

fn age(created: i64) -> String {
    if created == 0 {
        return "?".into();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(created);
    let secs = (now - created).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// `drydock ls`.
pub async fn list() -> Result<()> {
    let engine = Engine::connect().await?;
    let found = instances(&engine).await?;
    let keepers: HashMap<(String, String), drydock::shared::Status> = drydock::shared::keepers()
        .into_iter()
        .filter_map(|(_, status)| status.ok())
        .map(|s| ((s.run.clone(), s.identity.clone()), s))
        .collect();
    if found.is_empty() {
        println!("no drydock environment is running");
        return Ok(());
    }
    println!(
        "{:<28} {:<17} {:<13} {:>5}  {:<16} {:<14} LEASES",
        "RUN", "ENV", "INSTANCE", "AGE", "SERVICES", "OWNER"
    );
    for (instance, found) in &found {
        let mut services = found.services.clone();
        services.sort();
        let owner = match (found.owner, found.owner()) {
            (_, Owner::Elsewhere(host)) => format!("on {}", truncate(&host, 11)),
            (Some(pid), Owner::Alive) => format!("{pid} alive"),
            (Some(pid), Owner::Gone) => format!("{pid} gone"),
            (None, _) => "?".into(),
        };
        let leases = keepers
            .get(&(found.run.clone(), found.env.clone()))
            .map(|k| {
                let mut leases = k.leases.to_string();
                if k.held > 0 {
                    leases.push_str(&format!(" + {} held", k.held));
                }
                if !k.kept.is_empty() {
                    leases.push_str(&format!(" + kept: {}", k.kept.join(", ")));
                }
                format!("{leases} ({})", k.state)
            })
            .unwrap_or_else(|| "- (owned by a test)".into());
        println!(
            "{:<28} {:<17} {:<13} {:>5}  {:<16} {:<14} {leases}",
            truncate(&found.run, 28),
            found.env,
            &instance[..instance.len().min(12)],
            age(found.created),
            services.join(","),
            owner,
        );
    }
    Ok(())
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

/// `drydock prune`.
pub async fn prune(dry_run: bool) -> Result<()> {
    let engine = Engine::connect().await?;
    let found = instances(&engine).await?;
    // A keeper that adopted an environment after its first keeper died serves it under the
    // dead keeper's owner label: the live keeper of its run and identity vouches for it.
    let adopted: std::collections::HashSet<(String, String)> = drydock::shared::keepers()
        .into_iter()
        .filter_map(|(_, status)| status.ok())
        .map(|s| (s.run, s.identity))
        .collect();
    let mut pruned = 0;
    for (instance, found) in &found {
        if adopted.contains(&(found.run.clone(), found.env.clone())) {
            continue;
        }
        match found.owner() {
            Owner::Alive => continue,
            Owner::Elsewhere(host) => {
                println!(
                    "left alone: {instance} (run {}) belongs to machine {host}; prune it there",
                    found.run
                );
                continue;
            }
            Owner::Gone => {}
        }
        pruned += 1;
        if dry_run {
            println!("would remove {instance} (run {}, owner gone)", found.run);
            continue;
        }
        let removed = remove_labelled(&engine, &[format!("{LABEL_INSTANCE}={instance}")]).await?;
        println!(
            "removed {instance} (run {}): {} containers, {} networks, {} volumes",
            found.run, removed.containers, removed.networks, removed.volumes
        );
    }
    let live = found.len() - pruned;
    println!("{pruned} left behind by dead runs; {live} live, untouched");
    if !dry_run {
        // Run directories whose keeper is gone and where nothing happened for a minute.
        let dirs = drydock::shared::remove_stale_run_dirs(std::time::Duration::from_secs(60));
        println!("{dirs} stale run directories removed");
        let logs = drydock::shared::remove_old_logs(std::time::Duration::from_secs(24 * 3600));
        println!("{logs} keepers' logs older than a day removed");
    }
    Ok(())
}
