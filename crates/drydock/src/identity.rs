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
/// Label: the machine the owner runs on ([`host_id`]): only there can its liveness be judged.
pub const LABEL_HOST: &str = "drydock.host";
/// Label: the owner's start time ([`RunOwner::started`]): a later process with the same pid is
/// not the owner.
pub const LABEL_OWNER_STARTED: &str = "drydock.owner-started";

/// This machine, as resources' [`LABEL_HOST`] names it: `/etc/machine-id`, else the host name.
///
/// An engine may be shared by several machines (a remote `DOCKER_HOST`, a socket mounted into
/// CI containers): `drydock prune` judges an owner's liveness only for resources of this one.
///
/// ```
/// assert_eq!(drydock::identity::host_id(), drydock::identity::host_id());
/// ```
pub fn host_id() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        ["/etc/machine-id", "/proc/sys/kernel/hostname"]
            .into_iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .map(|id| sanitize(&id))
            .find(|id| !id.is_empty())
            .unwrap_or_else(|| "unknown".into())
    })
    .clone()
}

/// Whether process `pid` of this machine runs and, when `started` is known, is the one that
/// started then (not a later process given the same pid).
pub fn process_alive(pid: u32, started: Option<u64>) -> bool {
    match started {
        Some(started) => RunOwner { pid, started }.is_alive(),
        None => RunOwner::of(pid).is_some(),
    }
}

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

/// The process whose life is the run's: the shared environment lives while it does.
///
/// In order: `DRYDOCK_RUN_OWNER` (a pid, set by whoever chose `DRYDOCK_RUN_ID`, and exported by
/// `drydock up`); with an explicit `DRYDOCK_RUN_ID` and no owner, none (the grace period alone
/// ends the environment); otherwise the nearest `cargo` or `cargo-nextest` among this process's
/// ancestors: `cargo test` runs test binaries one after another as its children, `cargo nextest
/// run` runs every test as its child. A test binary started by hand has none.
///
/// ```
/// // Under `cargo test` or `cargo nextest run`, the runner; by hand, maybe none.
/// if let Some(owner) = drydock::identity::run_owner() {
///     assert!(owner.is_alive());
/// }
/// ```
pub fn run_owner() -> Option<RunOwner> {
    if let Some(pid) = std::env::var("DRYDOCK_RUN_OWNER")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
    {
        return RunOwner::of(pid);
    }
    if std::env::var("DRYDOCK_RUN_ID").is_ok_and(|v| !v.trim().is_empty()) {
        return None;
    }
    runner_ancestor()
}

/// The nearest ancestor that is a test runner (`cargo`, `cargo-nextest`), at most 8 levels up.
fn runner_ancestor() -> Option<RunOwner> {
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..8 {
        if pid <= 1 {
            return None;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        if RUNNERS.contains(&comm.trim()) {
            return RunOwner::of(pid);
        }
        pid = ProcStat::read(pid)?.ppid;
    }
    None
}

/// The names (`/proc/<pid>/comm`) of processes whose life is a test run.
const RUNNERS: &[&str] = &["cargo", "cargo-nextest"];

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunOwner {
    /// Its pid.
    pub pid: u32,
    /// Its start time, in clock ticks after boot (`/proc/<pid>/stat`, field 22).
    pub started: u64,
}

impl RunOwner {
    /// The process `pid`, if it runs.
    pub fn of(pid: u32) -> Option<Self> {
        let stat = ProcStat::read(pid)?;
        (!stat.zombie).then_some(RunOwner {
            pid,
            started: stat.started,
        })
    }

    /// This process's parent.
    pub fn parent() -> Option<Self> {
        Self::of(std::os::unix::process::parent_id())
    }

    /// Whether it still runs (an exited process that is not yet reaped does not).
    pub fn is_alive(&self) -> bool {
        ProcStat::read(self.pid).is_some_and(|s| s.started == self.started && !s.zombie)
    }
}

/// What drydock reads of `/proc/<pid>/stat`.
struct ProcStat {
    ppid: u32,
    started: u64,
    zombie: bool,
}

impl ProcStat {
    fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the parenthesised command name, which may hold spaces: field 3 (state) is the
        // first, 4 (ppid) the second, 22 (starttime) the twentieth.
        let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(ProcStat {
            zombie: matches!(rest.first(), Some(&"Z") | Some(&"X")),
            ppid: rest.get(1)?.parse().ok()?,
            started: rest.get(19)?.parse().ok()?,
        })
    }
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
    /// The owner's start time, when `/proc` tells it.
    pub owner_started: Option<u64>,
    /// The machine the owner runs on.
    pub host: String,
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
        let owner = std::process::id();
        InstanceLabels {
            run,
            env,
            instance: uuid::Uuid::new_v4().simple().to_string(),
            owner,
            owner_started: RunOwner::of(owner).map(|o| o.started),
            host: host_id(),
            scope,
        }
    }

    pub(crate) fn for_service(&self, service: &str) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (LABEL_RUN.to_string(), self.run.clone()),
            (LABEL_ENV.to_string(), self.env.clone()),
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
            (LABEL_OWNER.to_string(), self.owner.to_string()),
            (LABEL_HOST.to_string(), self.host.clone()),
            (LABEL_SERVICE.to_string(), service.to_string()),
            (LABEL_SCOPE.to_string(), self.scope.to_string()),
        ]);
        if let Some(started) = self.owner_started {
            labels.insert(LABEL_OWNER_STARTED.to_string(), started.to_string());
        }
        labels
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
    fn the_owner_of_this_process_is_alive_and_a_dead_one_is_not() {
        let me = RunOwner::of(std::process::id()).expect("this process");
        assert!(me.is_alive());
        let reused = RunOwner {
            started: me.started + 1,
            ..me.clone()
        };
        assert!(!reused.is_alive(), "another start time is another process");
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let owner = RunOwner::of(child.id());
        child.wait().expect("wait");
        assert!(owner.is_none_or(|o| !o.is_alive()), "an exited process");
    }

    #[test]
    fn sanitize_keeps_ids_safe_for_names() {
        assert_eq!(sanitize(" a b/c:d "), "a-b-c-d");
    }
}
