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
/// How many keepers may be lost under one attach before it gives up (so may the slice bound
/// run out): a keeper killed now and then, even while it starts the environment, is survived
/// by trying its replacement; one that dies at every start is reported.
const ATTACH_ATTEMPTS: u32 = 20;
/// How long a keeper may take to answer `Status`. It answers from its accept loop, whatever its
/// environment is doing, so a longer silence is a hung (or stopped) keeper.
const STATUS_BOUND: Duration = Duration::from_secs(3);
/// How often an attach waiting for its slice checks that the keeper still answers, so a keeper
/// that hangs meanwhile costs seconds, not the whole slice bound.
const STATUS_EVERY: Duration = Duration::from_secs(2);
/// How long an attach waits for its slice before it first checks that the keeper answers: a
/// ready keeper answers within milliseconds, so this is about as soon as a hung one is noticed.
const FIRST_STATUS_AFTER: Duration = Duration::from_millis(500);
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
    crate::fault::shortcut::learn_granted(&connected.grant.shortcuts);
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
    let (stream, grant) = match ask_listening_keeper(&dir, mode).await {
        Some(granted) => granted?,
        // Only a keeper to start needs the whole spec: a listening one has it.
        None => {
            let spec = KeeperSpec {
                run: run.clone(),
                identity: identity.clone(),
                grace_period: builder.grace_period,
                owner: owner.clone(),
                max_idle,
                services: builder.specs()?,
            };
            let bound = builder.ready_bounds() + SLICE_MARGIN;
            let span = tracing::info_span!("attach", %run, env = %identity);
            attach_the_long_way(&dir, spec, bound, mode, span).await?
        }
    };
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

/// A slice however the keeper is: none yet (one is started), still starting the environment
/// (waited for, bounded by `bound`), hung (replaced), lost under the request (its replacement
/// is asked).
async fn attach_the_long_way(
    dir: &RunDir,
    spec: KeeperSpec,
    bound: Duration,
    mode: Mode,
    span: tracing::Span,
) -> Result<(UnixStream, SliceGrant)> {
    // Socket, lock and process work is blocking, and short; keep it off the async workers.
    let task_dir = dir.clone();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let dir = task_dir;
        let started = Instant::now();
        let mut lost = 0;
        loop {
            let stream = connect_or_spawn(&dir, &spec)?;
            match request_slice(&dir, stream, bound, mode) {
                Ok(granted) => {
                    tracing::debug!(elapsed = ?started.elapsed(), "slice acquired");
                    return Ok(granted);
                }
                // A keeper that ended, died or hung as we attached: its replacement (started
                // by the next `connect_or_spawn`, or already by its reaper) adopts the
                // environment, so trying again costs little.
                Err(Attempt::Lost(e)) => {
                    lost += 1;
                    if lost >= ATTACH_ATTEMPTS || started.elapsed() >= bound {
                        return Err(Error::KeeperLost {
                            dir: dir.path().to_path_buf(),
                            attempts: lost,
                            waited: started.elapsed(),
                            last: Box::new(e),
                        });
                    }
                    tracing::info!(error = %e, lost, "keeper lost mid-attach; trying its replacement");
                    std::thread::sleep(Duration::from_millis(50) * lost);
                }
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
    })
    .await
    .map_err(|e| {
        Error::keeper(
            dir.path(),
            format!("could not be reached: the attach task failed: {e}"),
        )
    })?
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

/// A slice from a keeper that listens and answers at once — the common case, once the
/// environment runs — without a hop to a blocking thread. `None` when there is no answer within
/// [`FIRST_STATUS_AFTER`] (no keeper, one still starting the environment, or a hung one): the
/// caller then takes the way that starts, waits for and replaces keepers.
async fn ask_listening_keeper(
    dir: &RunDir,
    mode: Mode,
) -> Option<Result<(UnixStream, SliceGrant)>> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(dir.socket()).await.ok()?;
    let request = match request_line(dir, mode) {
        Ok(request) => request,
        Err(Attempt::Failed(e) | Attempt::Lost(e)) => return Some(Err(e)),
    };
    stream.write_all(&request).await.ok()?;
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(&mut stream);
    match tokio::time::timeout(FIRST_STATUS_AFTER, reader.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => {}
        // Closed, reset, or slow: the way that copes with those tries again.
        _ => return None,
    }
    drop(reader);
    let grant = match grant_of(dir, &line) {
        Ok(grant) => grant,
        Err(Attempt::Failed(e) | Attempt::Lost(e)) => return Some(Err(e)),
    };
    // The slice is held by this connection, as a blocking socket, from here on.
    let stream = stream.into_std().and_then(|stream| {
        stream.set_nonblocking(false)?;
        Ok(stream)
    });
    Some(
        stream.map(|stream| (stream, grant)).map_err(|e| {
            Error::keeper_io(dir.path(), "connection cannot be kept for the slice", e)
        }),
    )
}

/// A connection to the environment's keeper, starting the keeper when there is none.
///
/// A keeper that listens is asked for the slice at once: an attach costs one round trip. One
/// that accepts and does not answer (hung, or stopped) is found by [`request_slice`]'s status
/// requests and replaced (see [`replace_hung`]).
fn connect_or_spawn(dir: &RunDir, spec: &KeeperSpec) -> Result<UnixStream> {
    if let Ok(stream) = UnixStream::connect(dir.socket()) {
        return Ok(stream);
    }
    let _lock = dir.lock(ELECTION_TIMEOUT)?;
    // Whoever held the lock before may have started it, or the keeper hung.
    match probe(dir) {
        Probe::Answers => {
            if let Ok(stream) = UnixStream::connect(dir.socket()) {
                return Ok(stream);
            }
        }
        Probe::Hung => replace_hung(dir),
        Probe::Absent => {}
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

/// Starts a successor for the keeper of `dir`, which died with its environment ready: called
/// by that keeper's reaper. True when a keeper answers there now (this one's, or one a test
/// started meanwhile), so the environment is left to it; false when there is nothing to adopt
/// (the keeper was ending, or never ready) or no keeper could be started.
pub(crate) fn succeed(dir: &Path) -> bool {
    let dir = RunDir::from_path(dir.to_path_buf());
    if !dir.ready_file().exists() || !dir.spec_file().exists() {
        return false;
    }
    let Ok(_lock) = dir.lock(ELECTION_TIMEOUT) else {
        return false;
    };
    match probe(&dir) {
        Probe::Answers => return true,
        Probe::Hung => replace_hung(&dir),
        Probe::Absent => {}
    }
    // Checked again under the lock: a keeper that ended cleanly meanwhile removed it.
    if !dir.ready_file().exists() {
        return false;
    }
    let Ok(mut child) = spawn_keeper(&dir) else {
        return false;
    };
    let deadline = Instant::now() + KEEPER_LISTEN_TIMEOUT;
    while Instant::now() < deadline {
        if UnixStream::connect(dir.socket()).is_ok() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
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

/// How one attempt to get a slice ended, when it did not get one.
enum Attempt {
    /// The keeper went away (closed, reset, hung) before it answered: a replacement may serve.
    Lost(Error),
    /// The keeper answered with a failure, or the attempt failed for good.
    Failed(Error),
}

fn request_slice(
    dir: &RunDir,
    stream: UnixStream,
    bound: Duration,
    mode: Mode,
) -> std::result::Result<(UnixStream, SliceGrant), Attempt> {
    let io = |e: std::io::Error| Error::keeper_io(dir.path(), "connection failed", e);
    // Decided by the error's kind: these are a keeper that died or ended under the request.
    let lost_or_failed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::UnexpectedEof => Attempt::Lost(closed(dir)),
        _ => Attempt::Failed(io(e)),
    };
    let mut writer = stream.try_clone().map_err(|e| Attempt::Failed(io(e)))?;
    writer
        .write_all(&request_line(dir, mode)?)
        .map_err(lost_or_failed)?;
    stream
        .set_read_timeout(Some(FIRST_STATUS_AFTER))
        .map_err(|e| Attempt::Failed(io(e)))?;
    let deadline = Instant::now() + bound;
    let mut line = String::new();
    let mut reader = BufReader::new(&stream);
    loop {
        match reader.read_line(&mut line) {
            Ok(0) => return Err(Attempt::Lost(closed(dir))),
            Ok(_) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if Instant::now() >= deadline {
                    return Err(Attempt::Failed(Error::Timeout {
                        what: format!(
                            "a slice from the keeper in {} (it answered status requests \
                             meanwhile; its log: {})",
                            dir.path().display(),
                            dir.log_file().display()
                        ),
                        bound,
                    }));
                }
                // Still starting the environment, or hung? A status request tells.
                let keeper_pid = || std::fs::read_to_string(dir.pid_file()).ok();
                let pid_probed = keeper_pid();
                match probe(dir) {
                    Probe::Answers => {
                        stream
                            .set_read_timeout(Some(STATUS_EVERY))
                            .map_err(|e| Attempt::Failed(io(e)))?;
                    }
                    Probe::Absent => return Err(Attempt::Lost(closed(dir))),
                    Probe::Hung => {
                        let _lock = dir.lock(ELECTION_TIMEOUT).map_err(Attempt::Failed)?;
                        // The same keeper, and none started since: no second wait. Another
                        // may have been started while this one waited for the lock.
                        if keeper_pid() == pid_probed || matches!(probe(dir), Probe::Hung) {
                            replace_hung(dir);
                        }
                        return Err(Attempt::Lost(Error::keeper(
                            dir.path(),
                            format!(
                                "stopped answering status requests (within {STATUS_BOUND:?}) \
                                 while this test waited for its slice"
                            ),
                        )));
                    }
                }
            }
            Err(e) => return Err(lost_or_failed(e)),
        }
    }
    stream
        .set_read_timeout(None)
        .map_err(|e| Attempt::Failed(io(e)))?;
    Ok((stream, grant_of(dir, &line)?))
}

/// The request that asks for a slice, as one line.
fn request_line(dir: &RunDir, mode: Mode) -> std::result::Result<Vec<u8>, Attempt> {
    let pid = std::process::id();
    let mut request = serde_json::to_vec(&match mode {
        Mode::Attach => Request::Attach { pid },
        Mode::Hold => Request::Hold { pid },
    })
    .map_err(|e| {
        Attempt::Failed(Error::keeper(
            dir.path(),
            format!("request cannot be written: {e}"),
        ))
    })?;
    request.push(b'\n');
    Ok(request)
}

/// The slice in the keeper's answer `line`, or the failure it answered.
fn grant_of(dir: &RunDir, line: &str) -> std::result::Result<SliceGrant, Attempt> {
    match serde_json::from_str::<Response>(line) {
        Ok(Response::Slice(grant)) => Ok(*grant),
        Ok(Response::Failed(message)) => Err(Attempt::Failed(Error::Shared {
            environment: environment_name(dir.path()),
            message: format!(
                "{message}\n  the keeper's log: {}",
                dir.log_file().display()
            ),
        })),
        Ok(Response::Refused(message)) => Err(Attempt::Failed(Error::SliceUnavailable {
            environment: environment_name(dir.path()),
            message,
            log: dir.log_file(),
        })),
        Ok(Response::Status(_) | Response::Stopping) | Err(_) => {
            Err(Attempt::Failed(Error::keeper(
                dir.path(),
                format!("answered something unexpected: {}", line.trim()),
            )))
        }
    }
}

fn closed(dir: &RunDir) -> Error {
    Error::KeeperClosed {
        dir: dir.path().to_path_buf(),
        log_tail: dir.log_tail(30),
    }
}

/// What a status request found at the keeper's socket.
enum Probe {
    /// A keeper that answers.
    Answers,
    /// Nothing listens, or it closed without answering (it is ending).
    Absent,
    /// Something accepted and did not answer within [`STATUS_BOUND`], or answered nonsense.
    Hung,
}

fn probe(dir: &RunDir) -> Probe {
    let Ok(stream) = UnixStream::connect(dir.socket()) else {
        return Probe::Absent;
    };
    match status_on(stream, STATUS_BOUND) {
        Ok(_) => Probe::Answers,
        Err(StatusFailure::Timeout) | Err(StatusFailure::Garbled) => Probe::Hung,
        Err(StatusFailure::Closed) => Probe::Absent,
    }
}

enum StatusFailure {
    Timeout,
    Closed,
    Garbled,
}

/// One status round trip on `stream`, bounded by `bound`.
fn status_on(stream: UnixStream, bound: Duration) -> std::result::Result<Status, StatusFailure> {
    let timed_out = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    };
    stream
        .set_read_timeout(Some(bound))
        .and_then(|()| stream.set_write_timeout(Some(bound)))
        .map_err(|_| StatusFailure::Closed)?;
    let mut request = serde_json::to_vec(&Request::Status).map_err(|_| StatusFailure::Garbled)?;
    request.push(b'\n');
    if let Err(e) = (&stream).write_all(&request) {
        return Err(if timed_out(&e) {
            StatusFailure::Timeout
        } else {
            StatusFailure::Closed
        });
    }
    let mut line = String::new();
    match BufReader::new(&stream).read_line(&mut line) {
        Ok(0) => Err(StatusFailure::Closed),
        Ok(_) => match serde_json::from_str(&line) {
            Ok(Response::Status(status)) => Ok(status),
            _ => Err(StatusFailure::Garbled),
        },
        Err(e) if timed_out(&e) => Err(StatusFailure::Timeout),
        Err(_) => Err(StatusFailure::Closed),
    }
}

/// Replaces what listens at the keeper's socket and does not answer, under the election lock:
/// the socket is removed, so the keeper spawned next binds a fresh one. The hung process is
/// killed only if it is this environment's drydock keeper and runs as this user (its pid file,
/// `/proc/<pid>` owned by this uid, `DRYDOCK_KEEPER_DIR` naming this directory); either way the
/// test's stderr and the keeper's log say what was done to which pid.
fn replace_hung(dir: &RunDir) {
    let recorded = std::fs::read_to_string(dir.pid_file())
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok());
    let done = match recorded {
        Some(pid) if is_our_keeper(pid, dir) => match kill(pid) {
            Ok(()) => format!(
                "killed it (SIGKILL: it runs as this user and is this environment's drydock \
                 keeper, pid {pid})"
            ),
            Err(e) => format!("could not kill it (pid {pid}: {e}); its socket is replaced"),
        },
        Some(pid) => format!(
            "left it running: pid {pid} (from its pid file) is not this environment's drydock \
             keeper of this user; its socket is replaced"
        ),
        None => "left it running: no keeper pid file names it (not a drydock keeper); its \
                 socket is replaced"
            .to_string(),
    };
    let who = recorded.map_or_else(|| "unknown pid".to_string(), |p| format!("pid {p}"));
    let message = format!(
        "drydock: the keeper of {} ({who}) accepted a connection and did not answer a status \
         request within {STATUS_BOUND:?} (hung or stopped): {done}; starting another, which \
         adopts its environment",
        dir.path().display()
    );
    eprintln!("{message}");
    tracing::warn!("{message}");
    if let Ok(mut log) = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.log_file())
    {
        let _ = writeln!(
            log,
            "{message} (said by test process {})",
            std::process::id()
        );
    }
    let _ = std::fs::remove_file(dir.socket());
}

/// Whether `pid` is a drydock keeper of `dir` running as this user.
fn is_our_keeper(pid: u32, dir: &RunDir) -> bool {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let theirs = std::fs::metadata(format!("/proc/{pid}"))
        .map(|m| m.uid())
        .ok();
    if me.is_none() || me != theirs {
        return false;
    }
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let wanted = format!("{KEEPER_ENV}={}", dir.path().display());
    environ
        .split(|b| *b == 0)
        .any(|var| var == wanted.as_bytes())
}

#[cfg(target_os = "linux")]
fn kill(pid: u32) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::other("not a pid"))?;
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).map_err(Into::into)
}

#[cfg(not(target_os = "linux"))]
fn kill(_: u32) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "killing a hung keeper is done on Linux only",
    ))
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
    let pid = std::fs::read_to_string(dir.pid_file()).unwrap_or_default();
    status_on(stream, STATUS_BOUND).map_err(|failure| {
        let what = match failure {
            StatusFailure::Timeout => {
                format!("did not answer within {STATUS_BOUND:?} (hung or stopped)")
            }
            StatusFailure::Closed => "closed the connection without answering (ending)".into(),
            StatusFailure::Garbled => "answered something that is not a keeper's status".into(),
        };
        Error::keeper(dir.path(), format!("(pid {}) {what}", pid.trim()))
    })
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
