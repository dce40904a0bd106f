//! `drydock ls` and `drydock prune`: the environments drydock's labels say exist.
//!
//! Both look only at resources carrying `drydock.run`; `prune` removes an instance only when the
//! process that owns it (its `drydock.owner` label) is gone, so a live run is never touched.

use std::{
    collections::{BTreeMap, HashMap},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Result;
use drydock::{
    docker::{bollard::query_parameters::ListContainersOptionsBuilder, remove_labelled, Engine},
    identity::{LABEL_ENV, LABEL_INSTANCE, LABEL_OWNER, LABEL_RUN, LABEL_SERVICE},
};

/// One started environment, as its containers' labels describe it.
struct Instance {
    run: String,
    env: String,
    owner: Option<u32>,
    services: Vec<String>,
    created: i64,
}

impl Instance {
    fn owner_alive(&self) -> bool {
        // On this machine's engine the owner is a local pid; /proc answers whether it lives.
        self.owner
            .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
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
        let entry = found.entry(instance.clone()).or_insert_with(|| Instance {
            run: labels.get(LABEL_RUN).cloned().unwrap_or_default(),
            env: labels.get(LABEL_ENV).cloned().unwrap_or_default(),
            owner: labels.get(LABEL_OWNER).and_then(|p| p.parse().ok()),
            services: Vec::new(),
            created: container.created.unwrap_or_default(),
        });
        if let Some(service) = labels.get(LABEL_SERVICE) {
            entry.services.push(service.clone());
        }
        entry.created = entry
            .created
            .min(container.created.unwrap_or(entry.created));
    }
    Ok(found)
}

fn age(created: i64) -> String {
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
        let owner = match (found.owner, found.owner_alive()) {
            (Some(pid), true) => format!("{pid} alive"),
            (Some(pid), false) => format!("{pid} gone"),
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
    let mut pruned = 0;
    for (instance, found) in &found {
        if found.owner_alive() {
            continue;
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
