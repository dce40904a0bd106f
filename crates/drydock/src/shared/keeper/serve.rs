//! The keeper's life: read the spec, start the environment, accept leases, tear down after the
//! grace period.

use std::sync::{
    atomic::{AtomicU64, AtomicUsize, Ordering},
    Arc,
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
    identity::{InstanceLabels, LABEL_ENV, LABEL_OWNER, LABEL_RUN, LABEL_SCOPE},
    service::{registry, Sharing, Started},
    shared::{protocol::KeeperSpec, run_dir::RunDir},
    Env, EnvBuilder,
};

/// How long a run directory with no keeper and no election stays before it is swept.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

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
}

pub(super) struct Keeper {
    pub spec: KeeperSpec,
    pub phase: watch::Sender<Phase>,
    pub leases: watch::Sender<usize>,
    pub served: AtomicUsize,
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
    eprintln!(
        "drydock keeper {}: run {} env {}, grace {:?}",
        std::process::id(),
        spec.run,
        spec.identity,
        spec.grace_period
    );
    let grace = spec.grace_period;
    let keeper = Arc::new(Keeper {
        spec,
        phase: watch::channel(Phase::Starting).0,
        leases: watch::channel(0).0,
        served: AtomicUsize::new(0),
    });
    let (env_tx, env_rx) = tokio::sync::oneshot::channel();
    let starter = tokio::spawn(start(Arc::clone(&keeper), env_tx));

    let mut leases = keeper.leases.subscribe();
    let mut terminate = signal(SignalKind::terminate()).ok();
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    loop {
        let idle = *leases.borrow_and_update() == 0;
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { tokio::spawn(lease::handle(Arc::clone(&keeper), stream)); }
                Err(e) => eprintln!("drydock keeper: accept failed: {e}"),
            },
            _ = leases.changed() => {}
            _ = tokio::time::sleep(grace), if idle => {
                eprintln!("drydock keeper: no lease for {grace:?}; removing the environment");
                break;
            }
            _ = recv(&mut terminate) => { eprintln!("drydock keeper: SIGTERM"); break; }
            _ = recv(&mut interrupt) => { eprintln!("drydock keeper: SIGINT"); break; }
        }
    }
    // Stop answering first, so a late test starts a new keeper instead of waiting on this one.
    drop(listener);
    let _ = std::fs::remove_file(dir.socket());
    starter.abort();
    let _ = starter.await;
    if let Ok(env) = env_rx.await {
        if let Err(e) = env.teardown().await {
            eprintln!("drydock keeper: teardown: {e}");
        }
    }
    sweep(&keeper.spec, Some(std::process::id())).await;
    eprintln!(
        "drydock keeper: done after {} slices",
        keeper.served.load(Ordering::Relaxed)
    );
    // A failed environment keeps its directory a while: errors name the log in it.
    if !matches!(*keeper.phase.borrow(), Phase::Failed(_)) {
        dir.remove_if_idle();
    }
    // What killed keepers of earlier runs left.
    crate::shared::run_dir::remove_stale(STALE_AFTER);
    Ok(())
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

/// Starts the environment and prepares its slices; publishes the outcome to every waiting test.
async fn start(keeper: Arc<Keeper>, env_out: tokio::sync::oneshot::Sender<Env>) {
    // This keeper won the election and found no live one: any earlier keeper of this run and
    // spec is dead, and what it left can go.
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
        };
        // Whatever happens next, the environment is torn down by `serve`.
        let _ = env_out.send(env);
        Ok::<_, Error>(resources)
    }
    .await;
    let phase = match outcome {
        Ok(resources) => {
            eprintln!("drydock keeper: ready ({})", resources.instance);
            Phase::Ready(Arc::new(resources))
        }
        Err(e) => {
            eprintln!("drydock keeper: failed: {e}");
            Phase::Failed(e.to_string())
        }
    };
    keeper.phase.send_replace(phase);
}
