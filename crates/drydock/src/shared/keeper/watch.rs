//! The keeper watches its servers: a service container restarted, paused, killed, removed, or
//! come back on another published port is noticed as the engine reports it (its event stream),
//! and at the latest within [`WATCH_EVERY`]; the environment follows it — ports read again, the
//! template prepared anew — so that later tests get working slices. Meanwhile attaches wait
//! (bounded) or are told what happened to which service.
//!
//! Why events: an attach must not get a slice of a server the engine has already restarted
//! elsewhere. Inspecting every container on every attach made that exact, at ≈ 1 ms per
//! attach; following the engine's event stream makes it exact for free, since the engine
//! reports a restart before `docker restart` returns, and an attach only waits while the
//! watcher is still following an event it has received.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::StreamExt;
use testcontainers::bollard::query_parameters::EventsOptions;

use super::serve::{Keeper, Resources};
use crate::service::{Sharing, Started};

/// How often each service container is inspected, events or not: what catches a change the
/// event stream missed (an engine that restarted, a stream that broke).
const WATCH_EVERY: Duration = Duration::from_millis(1500);

/// What the engine does to a container that the watcher follows; anything else (`exec_*`,
/// `attach`, `top`, …) leaves its state and ports alone.
const EVENTS: [&str; 9] = [
    "start", "restart", "die", "kill", "stop", "oom", "pause", "unpause", "destroy",
];

/// The engine's events about the service containers, counted as received and as followed.
#[derive(Debug)]
pub(crate) struct Events {
    /// The stream is subscribed: what happened since is received, or being received.
    live: AtomicBool,
    /// Events received (plus one per subscription: a look at what the stream did not see).
    received: AtomicU64,
    /// Of those, how many the watcher has followed: it looked at the containers after them.
    followed: tokio::sync::watch::Sender<u64>,
    /// Wakes the watcher for an event.
    wake: tokio::sync::Notify,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            live: AtomicBool::new(false),
            received: AtomicU64::new(0),
            followed: tokio::sync::watch::channel(0).0,
            wake: tokio::sync::Notify::new(),
        }
    }
}

impl Events {
    fn received(&self) {
        self.received.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// What went wrong with one service, as attaching tests are told.
#[derive(Clone, Debug)]
pub(super) struct Problem {
    pub service: String,
    /// What happened and what the keeper does about it.
    pub what: String,
    /// Nothing the keeper does brings it back: attaches fail at once.
    pub terminal: bool,
}

/// A container's state as far as the watcher cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Seen {
    Running {
        started_at: String,
        ports: Vec<(u16, u16)>,
    },
    Paused,
    /// Exited, dead or killed, with its state and exit code.
    Stopped(String),
    Gone,
}

async fn look(container: &crate::service::StartedContainer) -> Seen {
    let inspected = match container
        .engine
        .docker()
        .inspect_container(&container.id, None)
        .await
    {
        Ok(inspected) => inspected,
        Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }) => return Seen::Gone,
        // The engine did not answer this time: nothing is concluded from that.
        Err(_) => {
            return Seen::Running {
                started_at: String::new(),
                ports: Vec::new(),
            }
        }
    };
    let state = inspected.state.unwrap_or_default();
    // `docker rm -f` kills the container first: its `die` comes before its `destroy`. One
    // being removed is gone, not stopped (starting it again would be refused).
    if state.status == Some(testcontainers::bollard::models::ContainerStateStatusEnum::REMOVING) {
        return Seen::Gone;
    }
    if state.paused == Some(true) {
        return Seen::Paused;
    }
    if state.running != Some(true) || state.restarting == Some(true) {
        return Seen::Stopped(format!(
            "{} (exit code {})",
            state
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "stopped".into()),
            state.exit_code.unwrap_or_default()
        ));
    }
    let mut ports: Vec<(u16, u16)> =
        crate::docker::ports_of(inspected.network_settings.and_then(|n| n.ports)).collect();
    ports.sort_unstable();
    Seen::Running {
        started_at: state.started_at.unwrap_or_default(),
        ports,
    }
}

/// Receives the engine's events about `ids` into `keeper.events`, subscribing again when the
/// stream ends, until the keeper ends (the task is aborted with the watcher).
async fn receive_events(
    keeper: Arc<Keeper>,
    docker: testcontainers::bollard::Docker,
    ids: Vec<String>,
) {
    let filters = std::collections::HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("container".to_string(), ids),
        (
            "event".to_string(),
            EVENTS.iter().map(|e| e.to_string()).collect(),
        ),
    ]);
    loop {
        // A subscription starts a little in the past: the engine replays what happened since
        // (it keeps its recent events), so nothing between asking and being subscribed is
        // lost; seeing an event twice costs one look.
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|now| now.saturating_sub(Duration::from_secs(5)).as_secs())
            .unwrap_or_default();
        let mut stream = docker.events(Some(EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(filters.clone()),
        }));
        keeper.events.live.store(true, Ordering::SeqCst);
        // One look now, for whatever happened while there was no stream.
        keeper.events.received();
        while let Some(event) = stream.next().await {
            if event.is_err() {
                break;
            }
            keeper.events.received();
        }
        // Attaches inspect for themselves until the stream is back.
        keeper.events.live.store(false, Ordering::SeqCst);
        if keeper.ending.load(Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Watches every service of `resources` until the keeper ends (the task is aborted).
pub(super) async fn watch(keeper: Arc<Keeper>, resources: Arc<Resources>) {
    let events = resources.services.first().map(|(_, started)| {
        let container = started.container();
        let ids = resources
            .services
            .iter()
            .map(|(_, started)| started.container().id)
            .collect();
        AbortOnDrop(tokio::spawn(receive_events(
            Arc::clone(&keeper),
            container.engine.docker().clone(),
            ids,
        )))
    });
    let mut last: Vec<Option<Seen>> = vec![None; resources.services.len()];
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = keeper.events.wake.notified() => {}
        }
        if keeper.ending.load(Ordering::Relaxed) {
            drop(events);
            return;
        }
        // Every event received so far is followed once this round has looked.
        let covered = keeper.events.received.load(Ordering::SeqCst);
        for (i, (name, started)) in resources.services.iter().enumerate() {
            let seen = look(&started.container()).await;
            // An engine that did not answer.
            if matches!(&seen, Seen::Running { started_at, .. } if started_at.is_empty()) {
                continue;
            }
            let before = last[i].replace(seen.clone());
            let Some(before) = before else { continue };
            if before == seen {
                continue;
            }
            follow(&keeper, name, &**started, &before, &seen).await;
        }
        // Followed: an attach that saw the same waits no more (see `caught_up`).
        keeper.seen.send_replace(last.clone());
        keeper.events.followed.send_if_modified(|followed| {
            let later = covered > *followed;
            *followed = (*followed).max(covered);
            later
        });
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits, at most `bound`, until the watcher has followed what the service containers look
/// like now: a test attaching right after a `docker restart` gets the restarted server's
/// slice, not the old one's, however the watcher's round falls.
pub(super) async fn caught_up(keeper: &Keeper, resources: &Resources, bound: Duration) {
    if keeper.events.live.load(Ordering::SeqCst) {
        // The engine has reported what it did; wait only for the watcher to follow that.
        let received = keeper.events.received.load(Ordering::SeqCst);
        let mut followed = keeper.events.followed.subscribe();
        let _ = tokio::time::timeout(bound, followed.wait_for(|f| *f >= received)).await;
        return;
    }
    // No event stream (yet, or for now): look at each container, all at once, so that an
    // attach waits for the slowest inspection, not for their sum.
    let now = futures::future::join_all(
        resources
            .services
            .iter()
            .map(|(_, started)| async move { look(&started.container()).await }),
    )
    .await;
    let mut seen = keeper.seen.subscribe();
    let _ = tokio::time::timeout(bound, async {
        loop {
            let followed = {
                let last = seen.borrow_and_update();
                now.iter().zip(last.iter()).all(|(now, last)| match now {
                    Seen::Running { started_at, .. } if started_at.is_empty() => true,
                    now => last.as_ref() == Some(now),
                }) && last.len() == now.len()
            };
            if followed || seen.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
}

/// Brings the environment along after `name`'s container went from `before` to `now`.
/// The problem of a service whose container was removed: terminal.
fn removed(name: &str, container: &str) -> Problem {
    Problem {
        service: name.into(),
        what: format!(
            "its container {container} was removed (`docker rm`, or a prune) while the run \
             used it; this environment cannot serve again. To fix: run the tests again \
             (`drydock down` ends this keeper now)"
        ),
        terminal: true,
    }
}

async fn follow(keeper: &Keeper, name: &str, started: &dyn Started, before: &Seen, now: &Seen) {
    let container = started.container().name;
    match now {
        Seen::Paused => keeper.set_problem(Problem {
            service: name.into(),
            what: format!(
                "its container {container} was paused (`docker pause`); attaching tests wait \
                 for it to be unpaused"
            ),
            terminal: false,
        }),
        Seen::Gone => keeper.set_problem(removed(name, &container)),
        Seen::Stopped(state) => {
            keeper.set_problem(Problem {
                service: name.into(),
                what: format!("its container {container} stopped ({state}); starting it again"),
                terminal: false,
            });
            let restarted = started
                .container()
                .engine
                .docker()
                .start_container(&started.container().id, None)
                .await;
            match (restarted, look(&started.container()).await) {
                // Removed meanwhile (its removal began after this look saw it stopped).
                (_, Seen::Gone) => keeper.set_problem(removed(name, &container)),
                // An error because `docker restart` started it meanwhile is no error.
                (Err(e), seen) if !matches!(seen, Seen::Running { .. }) => {
                    keeper.set_problem(Problem {
                        service: name.into(),
                        what: format!(
                            "its container {container} stopped ({state}) and could not be \
                             started again: {e}"
                        ),
                        terminal: true,
                    })
                }
                _ => {}
            }
            // The next look sees it running, with a new start time: recovered then.
        }
        Seen::Running { ports, .. } => {
            let (restarted, moved) = match before {
                Seen::Running {
                    ports: old_ports, ..
                } => (true, old_ports != ports),
                Seen::Paused => (false, false),
                _ => (true, true),
            };
            if !restarted {
                eprintln!("drydock keeper: {name}: its container {container} was unpaused");
                keeper.clear_problem(name);
                return;
            }
            keeper.set_problem(Problem {
                service: name.into(),
                what: format!(
                    "its container {container} restarted{}; the keeper is reading its ports \
                     again and preparing it anew (its data, the template of the slices, is gone)",
                    if moved {
                        format!(" on other published ports ({ports:?})")
                    } else {
                        String::new()
                    }
                ),
                terminal: false,
            });
            match started.recover(&[], true, Sharing::Shared).await {
                Ok(()) => {
                    eprintln!("drydock keeper: {name}: ready again");
                    keeper.clear_problem(name);
                }
                Err(e) => {
                    keeper.set_problem(Problem {
                        service: name.into(),
                        what: format!(
                            "its container {container} restarted and could not be prepared \
                             again: {e}"
                        ),
                        terminal: true,
                    });
                }
            }
        }
    }
}
