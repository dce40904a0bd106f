//! One environment per test run, shared by every test process, with a slice for each test.
//!
//! Under `cargo nextest` every test is a process of its own, so a `static` shares nothing and is
//! never dropped. drydock therefore puts the environment in a process of its own, the *keeper*:
//!
//! - the first test process of a run to call [`EnvBuilder::attach`](crate::EnvBuilder::attach)
//!   wins a file lock and re-executes its own binary in keeper mode, detached (caught before
//!   `main` by a constructor, so nothing needs installing); every other process of the run with
//!   the same spec connects to that keeper's Unix socket;
//! - each connection is a lease on one [`Slice`]; the kernel closes it when its process ends, even
//!   by SIGKILL, and the keeper takes the slice back;
//! - when no lease is held for the grace period, the keeper removes the environment and exits.
//!
//! The same works under `cargo test`, where tests are threads of one process and test binaries
//! run one after another: the run id (see [`crate::identity::run_id`]) is shared by all of them.
//!
//! ```no_run
//! use drydock::{Env, Postgres, Redis};
//!
//! async fn slice() -> drydock::Result<drydock::Slice> {
//!     Env::builder()
//!         .with_postgres(Postgres::default().migrations("migrations"))
//!         .with_redis(Redis::default())
//!         .attach()
//!         .await
//! }
//!
//! #[tokio::test]
//! async fn each_test_gets_its_own_database() -> drydock::TestResult {
//!     let slice = slice().await?;
//!     let pool = slice.postgres()?.pool().await?;
//!     // … the same tables as every other test, none of their rows …
//!     # let _ = pool;
//!     Ok(())
//! }
//! ```

mod keeper;
mod protocol;
pub(crate) mod run_dir;
mod slice;

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::{net::UnixStream, process::CommandExt},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

pub use protocol::Status;
pub use slice::Slice;

pub(crate) use keeper::{KEEPER_ENV, SPAWNER_ENV};
use protocol::{KeeperSpec, Request, Response, SliceGrant};
use run_dir::RunDir;

use crate::{
    error::{Error, Result},
    identity,
    services::Services,
    EnvBuilder,
};

/// How long a process may wait for the election lock: another process holds it only while it
/// spawns a keeper and sees its socket appear.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a freshly spawned keeper may take to listen.
const KEEPER_LISTEN_TIMEOUT: Duration = Duration::from_secs(15);
/// The shortest grace period that lets the next test process of a run attach.
const MIN_GRACE: Duration = Duration::from_millis(100);
/// Added to the services' ready bounds to bound the wait for a slice.
const SLICE_MARGIN: Duration = Duration::from_secs(120);

pub(crate) async fn attach(mut builder: EnvBuilder) -> Result<Slice> {
    builder.resolve_paths()?;
    let identity = builder.resolved_identity()?;
    let run = identity::run_id();
    keeper::ensure_linked();
    if builder.grace_period < MIN_GRACE {
        return Err(Error::Spec {
            service: "environment".into(),
            problem: format!(
                "grace_period({:?}) would end the shared environment before a test can attach",
                builder.grace_period
            ),
            fix: format!("use at least {MIN_GRACE:?} (5 s is the default)"),
        });
    }
    let dir = RunDir::new(&run, &identity)?;
    let bound = builder.ready_bounds() + SLICE_MARGIN;
    let spec = KeeperSpec {
        run: run.clone(),
        identity: identity.clone(),
        grace_period: builder.grace_period,
        services: builder.specs()?,
    };
    let span = tracing::info_span!("attach", %run, env = %identity);
    // Socket, lock and process work is blocking, and short; keep it off the async workers.
    let task_dir = dir.clone();
    let (stream, grant) = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let dir = task_dir;
        let started = Instant::now();
        let mut retried = false;
        loop {
            let stream = connect_or_spawn(&dir, &spec)?;
            match request_slice(&dir, stream, bound) {
                // A keeper that reached its grace period as we connected: start another.
                Err(Error::KeeperClosed { .. }) if !retried => retried = true,
                Ok(granted) => {
                    tracing::debug!(elapsed = ?started.elapsed(), "slice acquired");
                    return Ok(granted);
                }
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .map_err(|e| {
        Error::keeper(
            dir.path(),
            format!("could not be reached: the attach task failed: {e}"),
        )
    })??;
    // Each service's handle, from the server and scope the keeper granted.
    let mut entries = Vec::new();
    for granted in grant.services {
        let service = builder
            .services
            .iter()
            .find(|s| s.name() == granted.name)
            .ok_or_else(|| {
                Error::keeper(
                    dir.path(),
                    format!(
                        "granted a service `{}` this spec does not have",
                        granted.name
                    ),
                )
            })?;
        entries.push(service.entry(granted.server, granted.scope, granted.container)?);
    }
    Ok(Slice::new(
        stream,
        grant.instance,
        grant.network,
        Services::new(entries),
    ))
}

/// A connection to the environment's keeper, starting the keeper when there is none.
fn connect_or_spawn(dir: &RunDir, spec: &KeeperSpec) -> Result<UnixStream> {
    if let Ok(stream) = UnixStream::connect(dir.socket()) {
        return Ok(stream);
    }
    let _lock = dir.lock(ELECTION_TIMEOUT)?;
    // Whoever held the lock before may have started it.
    if let Ok(stream) = UnixStream::connect(dir.socket()) {
        return Ok(stream);
    }
    let spec_json = serde_json::to_vec_pretty(spec)
        .map_err(|e| Error::keeper(dir.path(), format!("spec cannot be written: {e}")))?;
    std::fs::write(dir.spec_file(), spec_json)
        .map_err(|e| Error::keeper_io(dir.path(), "spec cannot be written", e))?;
    let mut child = spawn_keeper(dir)?;
    let deadline = Instant::now() + KEEPER_LISTEN_TIMEOUT;
    loop {
        if let Ok(stream) = UnixStream::connect(dir.socket()) {
            return Ok(stream);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::keeper(
                dir.path(),
                format!(
                    "exited ({status}) before it listened:\n{}",
                    dir.log_tail(30)
                ),
            ));
        }
        if Instant::now() >= deadline {
            return Err(Error::keeper(
                dir.path(),
                format!("did not listen within {KEEPER_LISTEN_TIMEOUT:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Re-executes this binary as the keeper, detached: its own process group (a signal to the test's
/// group does not reach it), and no inherited pipes (nextest waits for a test's pipes to close).
fn spawn_keeper(dir: &RunDir) -> Result<std::process::Child> {
    let exe = std::env::current_exe().map_err(|e| {
        Error::keeper_io(
            dir.path(),
            "cannot be started: this executable is not found",
            e,
        )
    })?;
    let log = std::fs::File::create(dir.log_file())
        .map_err(|e| Error::keeper_io(dir.path(), "log cannot be created", e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| Error::keeper_io(dir.path(), "log cannot be opened twice", e))?;
    Command::new(exe)
        .env(KEEPER_ENV, dir.path())
        .env(SPAWNER_ENV, std::process::id().to_string())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::keeper_io(dir.path(), "cannot be started", e))
}

fn request_slice(
    dir: &RunDir,
    stream: UnixStream,
    bound: Duration,
) -> Result<(UnixStream, SliceGrant)> {
    let io = |e: std::io::Error| Error::keeper_io(dir.path(), "connection failed", e);
    let mut writer = stream.try_clone().map_err(io)?;
    let mut request = serde_json::to_vec(&Request::Attach {
        pid: std::process::id(),
    })
    .map_err(|e| Error::keeper(dir.path(), format!("request cannot be written: {e}")))?;
    request.push(b'\n');
    writer.write_all(&request).map_err(io)?;
    stream.set_read_timeout(Some(bound)).map_err(io)?;
    let mut line = String::new();
    let mut reader = BufReader::new(&stream);
    match reader.read_line(&mut line) {
        Ok(0) => {
            return Err(Error::KeeperClosed {
                dir: dir.path().to_path_buf(),
                log_tail: dir.log_tail(30),
            })
        }
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Err(Error::Timeout {
                what: format!("a slice from the keeper in {}", dir.path().display()),
                bound,
            })
        }
        Err(e) => return Err(io(e)),
    }
    stream.set_read_timeout(None).map_err(io)?;
    match serde_json::from_str::<Response>(&line) {
        Ok(Response::Slice(grant)) => Ok((stream, *grant)),
        Ok(Response::Failed(message)) => Err(Error::Shared {
            environment: environment_name(dir.path()),
            message,
        }),
        Ok(Response::Status(_)) | Err(_) => Err(Error::keeper(
            dir.path(),
            format!("answered something unexpected: {}", line.trim()),
        )),
    }
}

fn environment_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Removes run directories of this user whose keeper is gone (killed, or failed) and in which
/// nothing happened for `idle`, for `drydock prune`; returns how many.
pub fn remove_stale_run_dirs(idle: Duration) -> usize {
    run_dir::remove_stale(idle)
}

/// The state of every keeper of this user on this machine, for `drydock ls`.
pub fn keepers() -> Vec<(std::path::PathBuf, Result<Status>)> {
    let Ok(entries) = std::fs::read_dir(run_dir::base_dir()) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let dir = RunDir::from_path(entry.path());
        if !dir.socket().exists() {
            continue;
        }
        found.push((entry.path(), status(&dir)));
    }
    found
}

fn status(dir: &RunDir) -> Result<Status> {
    let io = |e: std::io::Error| Error::keeper_io(dir.path(), "does not answer", e);
    let stream = UnixStream::connect(dir.socket()).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(io)?;
    let mut writer = stream.try_clone().map_err(io)?;
    let mut request = serde_json::to_vec(&Request::Status)
        .map_err(|e| Error::keeper(dir.path(), format!("request cannot be written: {e}")))?;
    request.push(b'\n');
    writer.write_all(&request).map_err(io)?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).map_err(io)?;
    match serde_json::from_str(&line) {
        Ok(Response::Status(status)) => Ok(status),
        _ => Err(Error::keeper(
            dir.path(),
            format!("answered: {}", line.trim()),
        )),
    }
}
