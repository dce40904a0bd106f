//! Who owns a resource: the run it belongs to and the labels every resource carries.
//!
//! The reaper, teardown and `drydock prune` find resources by these labels and nothing else, so a
//! resource drydock did not label is never touched.

use std::collections::HashMap;

/// Label: the run that created the resource (see [`run_id`]).
pub const LABEL_RUN: &str = "drydock.run";
/// Label: the identity of the environment's spec (a hash of its services and settings).
pub const LABEL_ENV: &str = "drydock.env";
/// Label: the one started instance of an environment; teardown removes exactly this.
pub const LABEL_INSTANCE: &str = "drydock.instance";
/// Label: the pid of the process that owns the resource.
pub const LABEL_OWNER: &str = "drydock.owner";
/// Label: which service of the environment a container runs (`postgres`, `redis`).
pub const LABEL_SERVICE: &str = "drydock.service";
/// Label: `owned` (an [`Env`](crate::Env) of one test) or `shared` (a keeper's, for a run).
pub const LABEL_SCOPE: &str = "drydock.scope";

/// The id of the current test run, shared by every test process of one run.
///
/// In order: `DRYDOCK_RUN_ID` (an explicit choice wins); `NEXTEST_RUN_ID` (one per
/// `cargo nextest run`); otherwise the parent process and its start time, which every test binary
/// of one `cargo test` invocation shares (testcontainers-go derives its session the same way).
///
/// ```
/// let run = drydock::identity::run_id();
/// assert!(!run.is_empty());
/// assert_eq!(run, drydock::identity::run_id(), "stable within a process");
/// ```
pub fn run_id() -> String {
    for var in ["DRYDOCK_RUN_ID", "NEXTEST_RUN_ID"] {
        if let Ok(value) = std::env::var(var) {
            if !value.trim().is_empty() {
                return sanitize(&value);
            }
        }
    }
    parent_process_id()
}

/// `ppid-<pid>-<start time in clock ticks>`: the start time tells a reused pid from the original.
fn parent_process_id() -> String {
    let ppid = std::os::unix::process::parent_id();
    let started = std::fs::read_to_string(format!("/proc/{ppid}/stat"))
        .ok()
        .and_then(|stat| {
            // Field 22 (starttime), counted after the parenthesised command name, which may hold spaces.
            let rest = stat.rsplit_once(')')?.1;
            rest.split_whitespace().nth(19).map(str::to_string)
        })
        .unwrap_or_else(|| "0".to_string());
    format!("ppid-{ppid}-{started}")
}

/// Docker label values may hold anything, but ids also end up in names and paths: keep them tame.
fn sanitize(value: &str) -> String {
    value
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The labels of one environment instance.
#[derive(Clone, Debug)]
pub(crate) struct InstanceLabels {
    pub run: String,
    pub env: String,
    pub instance: String,
    pub owner: u32,
    pub scope: &'static str,
}

impl InstanceLabels {
    /// Labels of an environment owned by this process.
    pub(crate) fn owned(env: String) -> Self {
        Self::with(run_id(), env, "owned")
    }

    /// Labels of a run's shared environment, started by its keeper on the run's behalf (the
    /// keeper's own parent says nothing of the run).
    pub(crate) fn shared(run: String, env: String) -> Self {
        Self::with(run, env, "shared")
    }

    fn with(run: String, env: String, scope: &'static str) -> Self {
        InstanceLabels {
            run,
            env,
            instance: uuid::Uuid::new_v4().simple().to_string(),
            owner: std::process::id(),
            scope,
        }
    }

    pub(crate) fn for_service(&self, service: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_RUN.to_string(), self.run.clone()),
            (LABEL_ENV.to_string(), self.env.clone()),
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
            (LABEL_OWNER.to_string(), self.owner.to_string()),
            (LABEL_SERVICE.to_string(), service.to_string()),
            (LABEL_SCOPE.to_string(), self.scope.to_string()),
        ])
    }

    /// The `label=value` filter that selects exactly this instance's resources.
    pub(crate) fn instance_filter(&self) -> String {
        format!("{LABEL_INSTANCE}={}", self.instance)
    }

    /// A short, readable prefix for names of this instance's resources.
    pub(crate) fn name_prefix(&self) -> String {
        format!("drydock-{}", &self.instance[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_id_names_the_parent() {
        let id = parent_process_id();
        assert!(id.starts_with(&format!("ppid-{}-", std::os::unix::process::parent_id())));
    }

    #[test]
    fn sanitize_keeps_ids_safe_for_names() {
        assert_eq!(sanitize(" a b/c:d "), "a-b-c-d");
    }
}
