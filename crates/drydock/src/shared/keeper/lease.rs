//! One connection, one lease: cut a slice, hand it out, hold it until the connection closes,
//! then drop it — each piece gives itself back.

use crate::sync::lock;
use std::sync::{atomic::Ordering, Arc};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

use super::{
    adopt::{HeldBy, LeaseRecord},
    serve::{Keeper, Phase, Resources},
};
use crate::{
    error::Result,
    service::SliceId,
    shared::protocol::{GrantedService, Request, Response, SliceGrant, Status},
};

/// How long a new connection may take to say what it wants.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Counts a lease while alive.
pub(super) struct LeaseCount(Arc<Keeper>);

impl LeaseCount {
    pub(super) fn new(keeper: &Arc<Keeper>) -> Self {
        keeper.leases.send_modify(|n| *n += 1);
        LeaseCount(Arc::clone(keeper))
    }
}

impl Drop for LeaseCount {
    fn drop(&mut self) {
        self.0.leases.send_modify(|n| *n = n.saturating_sub(1));
    }
}

pub(super) async fn handle(keeper: Arc<Keeper>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return,
    }
    let request: Request = match serde_json::from_str(&line) {
        Ok(request) => request,
        Err(e) => {
            let _ = reply(&mut write, &Response::Failed(format!("bad request: {e}"))).await;
            return;
        }
    };
    match request {
        Request::Status => {
            let status = Status {
                run: keeper.spec.run.clone(),
                identity: keeper.spec.identity.clone(),
                pid: std::process::id(),
                state: match &*keeper.phase.borrow() {
                    Phase::Starting => "starting".into(),
                    Phase::Ready(_) => "ready".into(),
                    Phase::Failed(e) => format!("failed: {e}"),
                },
                leases: *keeper.leases.borrow(),
                held: keeper.held().len(),
                kept: keeper.kept().iter().map(|(test, _)| test.clone()).collect(),
                owner: keeper.spec.owner.as_ref().map(|o| o.pid),
                log: keeper.log.clone(),
            };
            let _ = reply(&mut write, &Response::Status(status)).await;
        }
        Request::Keep { .. } => {
            let _ = reply(
                &mut write,
                &Response::Failed("`Keep` follows an `Attach` on its connection".into()),
            )
            .await;
        }
        Request::Down => {
            let _ = reply(&mut write, &Response::Stopping).await;
            keeper.down.notify_one();
            // The connection closes when the keeper exits, everything removed: the client
            // waits for that.
            std::future::pending::<()>().await;
        }
        Request::Hold { pid } => {
            // Counted as a lease while it is cut, so the keeper does not end meanwhile.
            let _lease = LeaseCount::new(&keeper);
            let Some(resources) = ready(&keeper, &mut write).await else {
                return;
            };
            let (grant, mut leases, number) = match cut(&resources, pid).await {
                Ok(cut) => cut,
                Err(e) => {
                    let _ = reply(&mut write, &refusal(&resources, &e)).await;
                    return;
                }
            };
            // Recorded, so that a successor of this keeper holds it again.
            let record = keeper.dir.leases_dir().join(format!("{number}.json"));
            leases.push(Box::new(LeaseFile::write(
                &record,
                pid,
                &grant,
                HeldBy::Run,
            )));
            keeper.held().push(leases);
            keeper.served.fetch_add(1, Ordering::Relaxed);
            let _ = reply(&mut write, &Response::Slice(Box::new(grant))).await;
            tracing::debug!(pid, "slice held for the run");
        }
        Request::Attach { pid } => {
            let _lease = LeaseCount::new(&keeper);
            let Some(resources) = ready(&keeper, &mut write).await else {
                return;
            };
            // On an error, the leases cut so far are dropped here and give themselves back.
            let (grant, leases, number) = match cut(&resources, pid).await {
                Ok(cut) => cut,
                Err(e) => {
                    let _ = reply(&mut write, &refusal(&resources, &e)).await;
                    return;
                }
            };
            // Recorded before it is handed out, so that a successor of this keeper takes it
            // over should this keeper die while the test holds it; removed when it ends.
            let record = keeper.dir.leases_dir().join(format!("{number}.json"));
            let mut record = LeaseFile::write(&record, pid, &grant, HeldBy::Test);
            // Declared after the record, so given back before it is removed: a successor of a
            // keeper that dies in between still finds what to give back.
            let leases = leases;
            let _holder = Holder(Arc::clone(&resources), grant.slice);
            if reply(&mut write, &Response::Slice(Box::new(grant)))
                .await
                .is_ok()
            {
                keeper.served.fetch_add(1, Ordering::Relaxed);
                // The lease lasts until the test process closes the connection or dies; a
                // failing test may ask first that its slice be kept.
                let mut kept_for = None;
                line.clear();
                while matches!(reader.read_line(&mut line).await, Ok(n) if n > 0) {
                    if let Ok(Request::Keep { test }) = serde_json::from_str(&line) {
                        kept_for = Some(test);
                    }
                    line.clear();
                }
                if let Some(test) = kept_for {
                    eprintln!("drydock keeper: keeping the slice of failed test {test}");
                    record.hold_for(HeldBy::Look { test: test.clone() });
                    let mut leases = leases;
                    leases.push(Box::new(record));
                    keeper.kept().push((test, leases));
                    return;
                }
            }
            tracing::debug!(pid, "slice released");
        }
    }
}

/// A lease's record for a successor keeper (see [`super::adopt`]): removed when dropped.
pub(super) struct LeaseFile(Option<(std::path::PathBuf, LeaseRecord)>);

impl LeaseFile {
    fn write(path: &std::path::Path, pid: u32, grant: &SliceGrant, held_by: HeldBy) -> Self {
        let Some(test) = crate::identity::RunOwner::of(pid) else {
            return LeaseFile(None);
        };
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(path));
        let record = LeaseRecord {
            holder: test,
            scopes: grant
                .services
                .iter()
                .map(|s| (s.name.clone(), s.scope.clone()))
                .collect(),
            held_by,
        };
        super::adopt::write_json(path, &record);
        LeaseFile(Some((path.to_path_buf(), record)))
    }

    /// The record a keeper that died wrote, now this keeper's.
    pub(super) fn adopted(path: std::path::PathBuf, record: LeaseRecord) -> Self {
        LeaseFile(Some((path, record)))
    }

    /// Records that the slice is held by `held_by` from now on.
    fn hold_for(&mut self, held_by: HeldBy) {
        if let Some((path, record)) = &mut self.0 {
            record.held_by = held_by;
            super::adopt::write_json(path, record);
        }
    }
}

impl Drop for LeaseFile {
    fn drop(&mut self) {
        if let Some((path, _)) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How long an attach waits for a service the keeper saw go wrong (paused, restarting) to
/// come back before it is answered with what happened.
const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The environment once it is ready and its services are well; `None` (the failure answered)
/// if it failed, or a service did not come back within [`HEALTH_WAIT`].
async fn ready(
    keeper: &Keeper,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> Option<Arc<Resources>> {
    let mut phase = keeper.phase.subscribe();
    loop {
        let current = phase.borrow_and_update().clone();
        match current {
            Phase::Ready(resources) => {
                super::watch::caught_up(keeper, &resources, HEALTH_WAIT).await;
                return match keeper.healthy(HEALTH_WAIT).await {
                    Ok(()) => Some(resources),
                    Err(problem) => {
                        let _ = reply(write, &Response::Failed(problem)).await;
                        None
                    }
                };
            }
            Phase::Failed(message) => {
                let _ = reply(write, &Response::Failed(message)).await;
                return None;
            }
            Phase::Starting => {
                if phase.changed().await.is_err() {
                    return None;
                }
            }
        }
    }
}

/// A slice that could not be cut: the environment runs, this test gets no part of it. Says
/// which process holds each slice, for a lease that ran out.
fn refusal(resources: &Resources, error: &crate::Error) -> Response {
    let holders = lock(&resources.holders)
        .iter()
        .map(|(slice, pid)| format!("slice {slice} by pid {pid}"))
        .collect::<Vec<_>>();
    Response::Refused(if holders.is_empty() {
        error.to_string()
    } else {
        format!("{error}\n  slices held now: {}", holders.join(", "))
    })
}

/// Forgets a slice's holder when its lease ends.
struct Holder(Arc<Resources>, u64);

impl Drop for Holder {
    fn drop(&mut self) {
        lock(&self.0.holders).remove(&self.1);
    }
}

/// Cuts one slice for process `pid`: a lease of every service, and what the test needs to
/// reach each.
async fn cut(
    resources: &Resources,
    pid: u32,
) -> Result<(SliceGrant, Vec<Box<dyn Send + Sync>>, u64)> {
    let slice = SliceId(resources.slices.fetch_add(1, Ordering::Relaxed));
    let mut granted = Vec::new();
    let mut leases = Vec::new();
    for (name, started) in &resources.services {
        let (scope, lease) = Arc::clone(started).cut(slice).await?;
        leases.push(lease);
        granted.push(GrantedService {
            name: name.clone(),
            server: started.server_json()?,
            scope,
            container: started.container().id,
        });
    }
    lock(&resources.holders).insert(slice.number(), pid);
    let grant = SliceGrant {
        slice: slice.number(),
        instance: resources.instance.clone(),
        network: resources.network.clone(),
        services: granted,
        shortcuts: crate::fault::shortcut::known(),
    };
    Ok((grant, leases, slice.0))
}

async fn reply(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(response)?;
    line.push(b'\n');
    write.write_all(&line).await
}
