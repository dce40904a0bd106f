//! The keeper's life: read the spec, start the environment, accept leases, tear down when the
//! run is over.
//!
//! When the run has a process to follow (`cargo test`, `cargo nextest run`, or
//! `DRYDOCK_RUN_OWNER`), the keeper stays while it lives, however long the gaps between test
//! binaries, and ends the grace period after it is gone and no test holds a lease. With none, it
//! ends the grace period after the last lease. Either way it ends after `max_idle` with no test's
//! lease, so nothing lives forever when the owner is misjudged, and at once on `drydock down`.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::{
    net::UnixListener,
    signal::unix::{signal, SignalKind},
    sync::watch,
};
use tracing::Instrument;

use super::lease;
use crate::{
    docker::{remove_labelled, Engine},
    error::{Error, Result},
    identity::{InstanceLabels, LABEL_ENV, LABEL_INSTANCE, LABEL_OWNER, LABEL_RUN, LABEL_SCOPE},
    service::{registry, Sharing, Started},
    shared::{protocol::KeeperSpec, run_dir::RunDir},
    Env, EnvBuilder,
};

/// How long a run directory with no keeper and no election stays before it is swept.
const STALE_AFTER: Duration = Duration::from_secs(600);

/// Where the environment is in its life.
#[derive(Clone)]
pub(super) enum Phase {
    Starting,
    Ready(Arc<Resources>),
    Failed(String),
}

/// What the keeper cuts slices from.
pub(super) struct Resources {
    pub instance: String,
    pub network: String,
    pub services: Vec<(String, Arc<dyn Started>)>,
    /// Numbers slices.
    pub slices: AtomicU64,
    /// The process holding each slice now, by slice number: named when a slice cannot be cut
    /// because the others hold every piece.
    pub holders: std::sync::Mutex<std::collections::BTreeMap<u64, u32>>,
}

pub(super) struct Keeper {
    pub spec: KeeperSpec,
    pub phase: watch::Sender<Phase>,
    /// Tests' leases: connections that hold a slice.
    pub leases: watch::Sender<usize>,
    /// Slices held for `drydock up`, until `drydock down` or the end of the run.
    pub held: std::sync::Mutex<Vec<HeldSlice>>,
    /// Slices of failed tests kept for a look (`DRYDOCK_KEEP=on-failure`), by test: until
    /// `drydock down` or the longest idle time, whatever happens to the run.
    pub kept: std::sync::Mutex<Vec<(String, HeldSlice)>>,
    /// Asked to end now (`drydock down`).
    pub down: tokio::sync::Notify,
    pub served: AtomicUsize,
    pub log: std::path::PathBuf,
    pub dir: RunDir,
    /// What the watcher saw go wrong with services, and not yet put right ([`watch`]).
    pub problems: watch::Sender<Vec<super::watch::Problem>>,
    /// What the watcher last saw of each service container, once followed.
    pub seen: watch::Sender<Vec<Option<super::watch::Seen>>>,
    /// Set when it removes its environment: the watcher stops following the containers.
    pub ending: std::sync::atomic::AtomicBool,
    /// The engine's events about the service containers, as far as the watcher followed them.
    pub events: super::watch::Events,
}

/// A slice the keeper holds itself: its leases give it back when dropped.
pub(super) type HeldSlice = Vec<Box<dyn Send + Sync>>;

impl Keeper {
    pub(super) fn held(&self) -> std::sync::MutexGuard<'_, Vec<HeldSlice>> {
        // A Vec of leases: a panic elsewhere leaves it consistent.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records what went wrong with a service (attaching tests wait for it, or are told), and
    /// writes it to the keeper's log, where a user reads it after the run.
    pub(super) fn set_problem(&self, problem: super::watch::Problem) {
        eprintln!("drydock keeper: {}: {}", problem.service, problem.what);
        self.problems.send_modify(|all| {
            all.retain(|p| p.service != problem.service);
            all.push(problem);
        });
    }

    pub(super) fn clear_problem(&self, service: &str) {
        self.problems
            .send_modify(|all| all.retain(|p| p.service != service));
    }

    /// Waits, at most `bound`, until no service has a problem; else what happened to which.
    pub(super) async fn healthy(&self, bound: Duration) -> std::result::Result<(), String> {
        let mut problems = self.problems.subscribe();
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let now = problems.borrow_and_update().clone();
            let describe = |all: &[super::watch::Problem]| {
                all.iter()
                    .map(|p| format!("{}: {}", p.service, p.what))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            if now.is_empty() {
                return Ok(());
            }
            if now.iter().any(|p| p.terminal) {
                return Err(describe(&now));
            }
            match tokio::time::timeout_at(deadline, problems.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    return Err(format!(
                        "{}; this test waited {bound:?} for it to come back",
                        describe(&now)
                    ))
                }
            }
        }
    }

    pub(super) fn kept(&self) -> std::sync::MutexGuard<'_, Vec<(String, HeldSlice)>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How often the keeper looks whether the run's owner still lives.
const OWNER_POLL: Duration = Duration::from_millis(250);

/// Why the keeper ends, decided anew on every event.
struct Life {
    /// Since when no test holds a lease (`None`: one does).
    idle_since: Option<Instant>,
    /// When the run's owner was seen gone.
    owner_gone: Option<Instant>,
}

impl Life {
    /// When the keeper ends if nothing changes, and why.
    fn deadline(&self, spec: &KeeperSpec, held: bool, kept: bool) -> Option<(Instant, String)> {
        let idle = self.idle_since?;
        let (grace, max_idle) = (spec.grace_period, spec.max_idle);
        Some(match (&spec.owner, self.owner_gone) {
            // A failed test's slice kept for a look outlives the run.
            _ if kept => (
                idle + max_idle,
                format!(
                    "slices kept for a look (DRYDOCK_KEEP) and no test for {max_idle:?} (the \
                     most a keeper waits); `drydock down` ends it sooner"
                ),
            ),
            (Some(owner), Some(gone)) => (
                idle.max(gone) + grace,
                format!(
                    "the run's process {} ended and no test held a lease for {grace:?}",
                    owner.pid
                ),
            ),
            (Some(owner), None) => (
                idle + max_idle,
                format!(
                    "no test held a lease for {max_idle:?} (the most a keeper waits), though \
                     the run's process {} still runs",
                    owner.pid
                ),
            ),
            (None, _) if held => (
                idle + max_idle,
                format!("no test held a lease for {max_idle:?} (the most a keeper waits)"),
            ),
            (None, _) => (
                idle + grace,
                format!("no lease for {grace:?} (no process of the run to follow)"),
            ),
        })
    }
}

pub(super) async fn serve(dir: RunDir) -> Result<()> {
    let spec_text = std::fs::read_to_string(dir.spec_file())
        .map_err(|e| Error::keeper_io(dir.path(), "cannot read its spec", e))?;
    let spec: KeeperSpec = serde_json::from_str(&spec_text)
        .map_err(|e| Error::keeper(dir.path(), format!("cannot parse its spec: {e}")))?;
    // The spawner holds the election lock until this socket answers, so no other keeper binds.
    let _ = std::fs::remove_file(dir.socket());
    let listener = UnixListener::bind(dir.socket())
        .map_err(|e| Error::keeper_io(dir.path(), "cannot listen", e))?;
    // Names this keeper to a test that finds it hung; tells its reaper where a successor goes.
    let _ = std::fs::write(dir.pid_file(), std::process::id().to_string());
    crate::reaper::successor(dir.path());
    eprintln!(
        "drydock keeper {}: run {} env {}, grace {:?}, {}, at most {:?} with no lease",
        std::process::id(),
        spec.run,
        spec.identity,
        spec.grace_period,
        match &spec.owner {
            Some(owner) => format!("while the run's process {} lives", owner.pid),
            None => "no process of the run to follow".into(),
        },
        spec.max_idle,
    );
    let keeper = Arc::new(Keeper {
        spec,
        phase: watch::channel(Phase::Starting).0,
        leases: watch::channel(0).0,
        held: std::sync::Mutex::new(Vec::new()),
        kept: std::sync::Mutex::new(Vec::new()),
        down: tokio::sync::Notify::new(),
        served: AtomicUsize::new(0),
        log: dir.log_file(),
        dir: dir.clone(),
        problems: watch::channel(Vec::new()).0,
        seen: watch::channel(Vec::new()).0,
        ending: std::sync::atomic::AtomicBool::new(false),
        events: super::watch::Events::default(),
    });
    let (env_tx, env_rx) = tokio::sync::oneshot::channel();
    let starter = tokio::spawn(start(Arc::clone(&keeper), env_tx));

    let mut leases = keeper.leases.subscribe();
    let mut terminate = signal(SignalKind::terminate()).ok();
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut life = Life {
        idle_since: Some(Instant::now()),
        owner_gone: None,
    };
    let mut owner_poll = tokio::time::interval(OWNER_POLL);
    owner_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watching = keeper.spec.owner.is_some();
    loop {
        let active = *leases.borrow_and_update() > 0;
        match (active, life.idle_since) {
            (true, _) => life.idle_since = None,
            (false, None) => life.idle_since = Some(Instant::now()),
            (false, Some(_)) => {}
        }
        if life.owner_gone.is_none() {
            if let Some(owner) = keeper.spec.owner.as_ref().filter(|o| !o.is_alive()) {
                let held = std::mem::take(&mut *keeper.held()).len();
                eprintln!(
                    "drydock keeper: the run's process {} ended; {held} held slices released",
                    owner.pid
                );
                life.owner_gone = Some(Instant::now());
            }
        }
        let deadline = life.deadline(
            &keeper.spec,
            !keeper.held().is_empty(),
            !keeper.kept().is_empty(),
        );
        let ends = deadline.as_ref().map(|(at, _)| *at);
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match same_user(&stream) {
                    Ok(()) => { tokio::spawn(lease::handle(Arc::clone(&keeper), stream)); }
                    Err(why) => eprintln!("drydock keeper: refused a connection: {why}"),
                },
                Err(e) => eprintln!("drydock keeper: accept failed: {e}"),
            },
            _ = leases.changed() => {}
            _ = owner_poll.tick(), if watching && life.owner_gone.is_none() => {}
            _ = sleep_until(ends), if ends.is_some() => {
                if let Some((_, why)) = deadline {
                    eprintln!("drydock keeper: {why}; removing the environment");
                }
                break;
            }
            _ = keeper.down.notified() => {
                eprintln!("drydock keeper: asked to end (drydock down); removing the environment");
                break;
            }
            _ = recv(&mut terminate) => { eprintln!("drydock keeper: SIGTERM"); break; }
            _ = recv(&mut interrupt) => { eprintln!("drydock keeper: SIGINT"); break; }
        }
    }
    keeper.ending.store(true, Ordering::Relaxed);
    // Nothing to adopt any more, should this keeper die from here on.
    let _ = std::fs::remove_file(dir.ready_file());
    // Stop answering first, so a late test starts a new keeper instead of waiting on this one.
    drop(listener);
    let _ = std::fs::remove_file(dir.socket());
    keeper.held().clear();
    keeper.kept().clear();
    starter.abort();
    let _ = starter.await;
    match env_rx.await {
        Ok(Holding::Started(env)) => {
            if let Err(e) = env.teardown().await {
                eprintln!("drydock keeper: teardown: {e}");
            }
        }
        // Its containers carry the owner label of the keeper that made them.
        Ok(Holding::Adopted { instance, watch }) => {
            let label = format!("{LABEL_INSTANCE}={instance}");
            match Engine::connect().await {
                Ok(engine) => match remove_labelled(&engine, &[label]).await {
                    Ok(_) => watch.removed(),
                    Err(e) => eprintln!("drydock keeper: teardown: {e}"),
                },
                Err(e) => eprintln!("drydock keeper: teardown: {e}"),
            }
        }
        Err(_) => {}
    }
    sweep(&keeper.spec, Some(std::process::id())).await;
    eprintln!(
        "drydock keeper: done after {} slices",
        keeper.served.load(Ordering::Relaxed)
    );
    // Failed or not: errors name the keeper's log, which lives beside the run directories.
    dir.remove_if_idle();
    // What killed keepers of earlier runs left.
    crate::shared::run_dir::remove_stale(STALE_AFTER);
    crate::shared::run_dir::remove_old_logs(crate::shared::run_dir::LOG_KEPT);
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Removes shared-environment resources of this run and spec: before starting, what a killed
/// keeper of the same run left (`owner: None`); on exit, what this keeper made (`Some(pid)`).
/// Never an owned `Env` of a test, even one with the same spec.
async fn sweep(spec: &KeeperSpec, owner: Option<u32>) {
    let mut labels = vec![
        format!("{LABEL_RUN}={}", spec.run),
        format!("{LABEL_ENV}={}", spec.identity),
        format!("{LABEL_SCOPE}=shared"),
    ];
    labels.extend(owner.map(|pid| format!("{LABEL_OWNER}={pid}")));
    match Engine::connect().await {
        Ok(engine) => {
            if let Err(e) = remove_labelled(&engine, &labels).await {
                eprintln!("drydock keeper: sweep: {e}");
            }
        }
        Err(e) => eprintln!("drydock keeper: sweep: {e}"),
    }
}

/// What the keeper tears down when it ends.
enum Holding {
    /// An environment it started.
    Started(Env),
    /// An environment it adopted from a keeper of the run that died.
    Adopted {
        instance: String,
        watch: crate::reaper::Watch,
    },
}

/// Adopts the environment a keeper of this run and spec that died left ready, else starts
/// one; prepares its slices, publishes the outcome to every waiting test, and watches it.
async fn start(keeper: Arc<Keeper>, env_out: tokio::sync::oneshot::Sender<Holding>) {
    // Counted as a lease while adopting: a successor started by a dead keeper's reaper has no
    // test waiting on it, and must not end before it knows what its predecessor held. Dropped
    // once the leases are taken over, which wakes the keeper's loop to weigh them (slices kept
    // for a look or held for the run keep it longer than the grace period).
    let adopting = super::lease::LeaseCount::new(&keeper);
    match super::adopt::adopt(&keeper).await {
        Ok(Some((resources, generation))) => {
            let watch =
                crate::reaper::Watch::new(&format!("{LABEL_INSTANCE}={}", resources.instance));
            let _ = env_out.send(Holding::Adopted {
                instance: resources.instance.clone(),
                watch,
            });
            super::adopt::take_over_leases(&keeper, &resources);
            eprintln!(
                "drydock keeper: adopted the ready environment {} (keeper generation \
                 {generation}) instead of starting another",
                resources.instance
            );
            ready(&keeper, resources, generation);
            drop(adopting);
            return;
        }
        Ok(None) => {}
        Err(e) => eprintln!("drydock keeper: could not adopt the environment left: {e}"),
    }
    drop(adopting);
    // No environment to adopt: any earlier keeper of this run and spec is dead, and what it
    // left can go (its lease records too).
    let _ = std::fs::remove_dir_all(keeper.dir.leases_dir());
    sweep(&keeper.spec, None).await;
    let outcome = async {
        let mut builder = EnvBuilder::default();
        for (kind, spec) in &keeper.spec.services {
            builder
                .services
                .push(registry::rebuild(kind, spec.clone())?);
        }
        let engine = Engine::connect().await?;
        let labels = InstanceLabels::shared(keeper.spec.run.clone(), keeper.spec.identity.clone());
        let env = builder
            .start_as(engine, labels, Sharing::Shared)
            .instrument(tracing::info_span!("keeper start"))
            .await?;
        let resources = Resources {
            instance: env.instance_id().to_string(),
            network: env.network().to_string(),
            services: env.running().to_vec(),
            slices: AtomicU64::new(0),
            holders: Default::default(),
        };
        // Whatever happens next, the environment is torn down by `serve`.
        let _ = env_out.send(Holding::Started(env));
        Ok::<_, Error>(resources)
    }
    .await;
    match outcome {
        Ok(resources) => {
            eprintln!("drydock keeper: ready ({})", resources.instance);
            ready(&keeper, resources, 0);
        }
        Err(e) => {
            eprintln!("drydock keeper: failed: {e}");
            keeper.phase.send_replace(Phase::Failed(e.to_string()));
        }
    }
}

/// Records the ready environment for a successor, watches its servers, and serves it.
fn ready(keeper: &Arc<Keeper>, resources: Resources, generation: u64) {
    super::adopt::write_json(
        &keeper.dir.ready_file(),
        &super::adopt::ReadyRecord {
            instance: resources.instance.clone(),
            network: resources.network.clone(),
            generation,
        },
    );
    let resources = Arc::new(resources);
    // Ends with the keeper's runtime.
    tokio::spawn(super::watch::watch(
        Arc::clone(keeper),
        Arc::clone(&resources),
    ));
    keeper.phase.send_replace(Phase::Ready(resources));
}

/// Whether the peer of a connection runs as this keeper's user: the run directory (mode `0700`)
/// already keeps other users from the socket; this holds even if its mode were loosened, so
/// that only the user's own test processes lease slices (and learn the services' passwords).
fn same_user(stream: &tokio::net::UnixStream) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let peer = stream
        .peer_cred()
        .map_err(|e| format!("its credentials are unknown ({e})"))?;
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| format!("this process's uid is unknown ({e})"))?;
    if peer.uid() == me {
        Ok(())
    } else {
        Err(format!(
            "its process (pid {:?}) runs as uid {}, not as this keeper's uid {me}",
            peer.pid(),
            peer.uid()
        ))
    }
}
