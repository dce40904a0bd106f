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
//! - the keeper lives as long as the run: while the process of the run lives (`cargo test` or
//!   `cargo nextest run`, found among the test's ancestors; see [`crate::identity::run_owner`]),
//!   and the grace period after it is gone and the last lease ended. With no such process (a
//!   test binary run by hand, or `DRYDOCK_RUN_ID` with no `DRYDOCK_RUN_OWNER`), the grace period
//!   after the last lease. In every case it ends after `DRYDOCK_MAX_IDLE` (1 h) with no lease.
//!
//! The same works under `cargo test`, where tests are threads of one process and test binaries
//! run one after another: the run id (see [`crate::identity::run_id`]) is shared by all of them,
//! and the environment stays across the gaps between binaries (a build, a slow binary with no
//! drydock test), however long.
//!
//! The keeper's log is kept per run and environment, after the keeper ends (a day), under
//! `$XDG_RUNTIME_DIR/drydock/logs/` (else `$TMPDIR/drydock-<uid>/logs/`); errors name it.
//!
//! [`hold`] and [`down`] are `drydock up` and `drydock down`: an environment started before the
//! tests (a nextest setup script), its variables exported to them.
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
    os::unix::{fs::OpenOptionsExt, net::UnixStream, process::CommandExt},
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

/// How long a keeper stays with no lease at most, unless `DRYDOCK_MAX_IDLE` says otherwise.
const DEFAULT_MAX_IDLE: Duration = Duration::from_secs(3600);
/// How long `drydock down` waits for a keeper to remove its environment.
const DOWN_TIMEOUT: Duration = Duration::from_secs(120);

/// What a slice is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A test's, held by its connection.
    Attach,
    /// `drydock up`'s, held by the keeper until `drydock down` or the end of the run.
    Hold,
}

pub(crate) async fn attach(builder: EnvBuilder) -> Result<Slice> {
    let connected = connect(builder, Mode::Attach).await?;
    // Each service's handle, from the server and scope the keeper granted.
    let mut entries = Vec::new();
    let mut direct = Vec::new();
    for granted in &connected.grant.services {
        let service = connected.service(&granted.name)?;
        entries.push(service.entry(
            granted.server.clone(),
            granted.scope.clone(),
            granted.container.clone(),
        )?);
        direct.extend(service.direct_vars(granted.server.clone(), granted.scope.clone())?);
    }
    Ok(Slice::new(
        connected.stream,
        slice::Granted {
            run: connected.run,
            instance: connected.grant.instance,
            network: connected.grant.network,
            direct,
        },
        Services::new(entries),
    ))
}

/// An environment [`hold`] keeps for the run: what `drydock up` exports to the tests.
#[derive(Debug)]
#[non_exhaustive]
pub struct Held {
    /// The run it belongs to (`DRYDOCK_RUN_ID` for the tests).
    pub run: String,
    /// The process whose life is the run's (`DRYDOCK_RUN_OWNER` for the tests), if any.
    pub owner: Option<u32>,
    /// The spec's identity.
    pub identity: String,
    /// The instance (its `drydock.instance` label).
    pub instance: String,
    /// What a system under test reads, reaching the servers directly (no fault proxy: the
    /// process that asked ends): `DATABASE_URL`, `REDIS_URL`, …, of the slice the keeper holds.
    pub vars: std::collections::BTreeMap<String, String>,
    /// The keeper's log.
    pub log: std::path::PathBuf,
}

/// Starts (or finds) the environment `builder` describes for this run and has its keeper hold a
/// slice of it after this process ends, until [`down`] or the end of the run: `drydock up`.
///
/// The run's process is the one [`identity::run_owner`] finds, else this process's parent (the
/// shell or script that runs `drydock up`). Tests attaching with the same spec in the same run
/// (`DRYDOCK_RUN_ID`, `DRYDOCK_RUN_OWNER` exported to them) get slices of this environment.
pub async fn hold(builder: EnvBuilder) -> Result<Held> {
    let connected = connect(builder, Mode::Hold).await?;
    let mut vars = std::collections::BTreeMap::new();
    for granted in &connected.grant.services {
        let service = connected.service(&granted.name)?;
        vars.extend(service.direct_vars(granted.server.clone(), granted.scope.clone())?);
    }
    Ok(Held {
        run: connected.run,
        owner: connected.owner.map(|o| o.pid),
        identity: connected.identity,
        instance: connected.grant.instance,
        vars,
        log: connected.dir.log_file(),
    })
}

/// A slice granted by the keeper, before it is a [`Slice`] or a [`Held`].
struct Connected {
    builder: EnvBuilder,
    dir: RunDir,
    run: String,
    identity: String,
    owner: Option<identity::RunOwner>,
    stream: UnixStream,
    grant: SliceGrant,
}

impl Connected {
    fn service(&self, name: &str) -> Result<&dyn crate::service::AnyService> {
        self.builder
            .services
            .iter()
            .find(|s| s.name() == name)
            .map(|s| &**s)
            .ok_or_else(|| {
                Error::keeper(
                    self.dir.path(),
                    format!("granted a service `{name}` this spec does not have"),
                )
            })
    }
}

async fn connect(mut builder: EnvBuilder, mode: Mode) -> Result<Connected> {
    builder.resolve_paths()?;
    let identity = builder.resolved_identity()?;
    let run = identity::run_id();
    let owner = match mode {
        Mode::Attach => identity::run_owner(),
        Mode::Hold => identity::run_owner().or_else(identity::RunOwner::parent),
    };
    let max_idle = max_idle()?;
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
        owner: owner.clone(),
        max_idle,
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
            match request_slice(&dir, stream, bound, mode) {
                // A keeper that ended as we connected: start another.
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
    Ok(Connected {
        builder,
        dir,
        run,
        identity,
        owner,
        stream,
        grant,
    })
}

/// `DRYDOCK_MAX_IDLE` (`90`, `90s`, `30m`, `2h`), else an hour.
fn max_idle() -> Result<Duration> {
    let Ok(text) = std::env::var("DRYDOCK_MAX_IDLE") else {
        return Ok(DEFAULT_MAX_IDLE);
    };
    parse_duration(&text).ok_or_else(|| Error::Spec {
        service: "environment".into(),
        problem: format!("DRYDOCK_MAX_IDLE={text:?} is not a duration"),
        fix: "give seconds, minutes or hours, more than zero: `90`, `90s`, `30m`, `2h`; or unset \
              it (an hour)"
            .into(),
    })
}

/// `90`, `90s`, `30m`, `2h`: more than zero.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    let n: u64 = number.parse().ok().filter(|n| *n > 0)?;
    Some(Duration::from_secs(n.checked_mul(unit)?))
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
    // Appended to: an earlier keeper's lines of this run stay.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.log_file())
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
    mode: Mode,
) -> Result<(UnixStream, SliceGrant)> {
    let io = |e: std::io::Error| Error::keeper_io(dir.path(), "connection failed", e);
    let mut writer = stream.try_clone().map_err(io)?;
    let pid = std::process::id();
    let mut request = serde_json::to_vec(&match mode {
        Mode::Attach => Request::Attach { pid },
        Mode::Hold => Request::Hold { pid },
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
                what: format!(
                    "a slice from the keeper in {} (its log: {})",
                    dir.path().display(),
                    dir.log_file().display()
                ),
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
            message: format!(
                "{message}\n  the keeper's log: {}",
                dir.log_file().display()
            ),
        }),
        Ok(Response::Refused(message)) => Err(Error::SliceUnavailable {
            environment: environment_name(dir.path()),
            message,
            log: dir.log_file(),
        }),
        Ok(Response::Status(_) | Response::Stopping) | Err(_) => Err(Error::keeper(
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

/// Removes keepers' logs nothing wrote to for `age`, for `drydock prune`; returns how many.
pub fn remove_old_logs(age: Duration) -> usize {
    run_dir::remove_old_logs(age)
}

/// Ends the shared environments of run `run` (of every spec, or only of spec `identity`) and
/// waits until each keeper has removed its environment and exited: `drydock down`. Returns what
/// each keeper said of itself before it ended; none when no keeper of the run runs.
pub fn down(run: &str, identity: Option<&str>) -> Result<Vec<Status>> {
    let mut ended = Vec::new();
    for (path, status) in keepers() {
        let Ok(status) = status else { continue };
        if status.run != run || identity.is_some_and(|i| i != status.identity) {
            continue;
        }
        let dir = RunDir::from_path(path);
        let io = |e: std::io::Error| Error::keeper_io(dir.path(), "did not take `down`", e);
        let stream = match UnixStream::connect(dir.socket()) {
            Ok(stream) => stream,
            // Ended meanwhile.
            Err(_) => continue,
        };
        let mut writer = stream.try_clone().map_err(io)?;
        let mut request = serde_json::to_vec(&Request::Down)
            .map_err(|e| Error::keeper(dir.path(), format!("request cannot be written: {e}")))?;
        request.push(b'\n');
        writer.write_all(&request).map_err(io)?;
        stream.set_read_timeout(Some(DOWN_TIMEOUT)).map_err(io)?;
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        // `Stopping`, then nothing until the keeper exits and the kernel closes the socket.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Error::Timeout {
                        what: format!(
                            "the keeper {} removing the environment in {} (its log: {})",
                            status.pid,
                            dir.path().display(),
                            dir.log_file().display()
                        ),
                        bound: DOWN_TIMEOUT,
                    })
                }
                Err(e) => return Err(io(e)),
            }
        }
        ended.push(status);
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_idle_takes_seconds_minutes_hours() {
        let parsed: Vec<_> = ["90", "90s", " 30m ", "2h", "0", "1d", "", "m", "-5s"]
            .iter()
            .map(|t| parse_duration(t).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            parsed,
            [
                Some(90),
                Some(90),
                Some(1800),
                Some(7200),
                None,
                None,
                None,
                None,
                None
            ]
        );
    }
}
