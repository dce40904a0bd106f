//! The directory of one shared environment: where its keeper listens, logs, and is elected.

use std::{
    fs::{DirBuilder, File},
    os::unix::fs::{DirBuilderExt, MetadataExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// `<base>/<run>-<env>`: one per (run, spec). The base is private to the user (mode 0700).
#[derive(Clone, Debug)]
pub(crate) struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub(crate) fn new(run: &str, identity: &str) -> Result<Self> {
        // Hashed: a Unix socket path must stay under 108 bytes, whatever the run id looks like.
        let run_hash = hex::encode(&Sha256::digest(run.as_bytes())[..6]);
        let base = base_dir();
        // Only the last level is made: a missing TMPDIR or XDG_RUNTIME_DIR is a mistake to
        // report, not a tree to create.
        let parent = base.parent().unwrap_or(Path::new("/"));
        if !parent.is_dir() {
            return Err(Error::Spec {
                service: "environment".into(),
                problem: format!(
                    "the directory for shared environments' run directories, {}, does not exist",
                    parent.display()
                ),
                fix:
                    "set TMPDIR (or XDG_RUNTIME_DIR) to an existing directory of yours, or unset it"
                        .into(),
            });
        }
        let path = base.join(format!("{run_hash}-{identity}"));
        for dir in [&base, &base.join(LOGS), &path] {
            match DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::keeper_io(dir, "cannot be created", e)),
            }
            private(dir)?;
        }
        Ok(RunDir { path })
    }

    pub(crate) fn from_path(path: PathBuf) -> Self {
        RunDir { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.path.join("keeper.sock")
    }

    pub(crate) fn spec_file(&self) -> PathBuf {
        self.path.join("spec.json")
    }

    /// The keeper's pid, written once it listens: names a keeper that does not answer.
    pub(crate) fn pid_file(&self) -> PathBuf {
        self.path.join("keeper.pid")
    }

    /// The ready environment (instance and network): what a successor keeper adopts.
    pub(crate) fn ready_file(&self) -> PathBuf {
        self.path.join("ready.json")
    }

    /// One file per slice handed out (its holder, scopes and whose it is: a test's, the run's,
    /// kept for a look): what a successor keeper takes over.
    pub(crate) fn leases_dir(&self) -> PathBuf {
        self.path.join("leases")
    }

    /// The keeper's log: one per run and environment, outside the run directory (which goes
    /// when the keeper ends), appended to by every keeper of the run. See [`log_path`].
    pub(crate) fn log_file(&self) -> PathBuf {
        log_path(&self.path)
    }

    /// Takes the election lock of this environment, waiting at most `bound`.
    ///
    /// An exiting keeper removes the directory under this same lock ([`remove_if_idle`]); a
    /// lock taken on a file it unlinked meanwhile is no lock at all, so the directory is made
    /// again and the lock taken anew.
    ///
    /// [`remove_if_idle`]: Self::remove_if_idle
    pub(crate) fn lock(&self, bound: Duration) -> Result<File> {
        let deadline = Instant::now() + bound;
        loop {
            let file = self.lock_once(deadline, bound)?;
            if self.is_current(&file) {
                return Ok(file);
            }
        }
    }

    /// Whether `lock` is still the file at this directory's lock path.
    fn is_current(&self, lock: &File) -> bool {
        match (lock.metadata(), std::fs::metadata(self.path.join("lock"))) {
            (Ok(held), Ok(there)) => held.ino() == there.ino() && held.dev() == there.dev(),
            _ => false,
        }
    }

    fn lock_once(&self, deadline: Instant, bound: Duration) -> Result<File> {
        // Made again if an exiting keeper removed it since.
        match DirBuilder::new().mode(0o700).create(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::keeper_io(&self.path, "cannot be created", e)),
        }
        // Not truncated on open: the holder's pid in it names the holder to whoever waits.
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(self.path.join("lock"))
            .map_err(|e| Error::keeper_io(&self.path, "lock file cannot be opened", e))?;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    use std::io::Write;
                    let _ = file
                        .set_len(0)
                        .and_then(|()| file.write_all(std::process::id().to_string().as_bytes()));
                    return Ok(file);
                }
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Timeout {
                        what: format!(
                            "the election lock of the shared environment in {} (held by {})",
                            self.path.display(),
                            holder(&self.path.join("lock"))
                        ),
                        bound,
                    })
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::keeper_io(&self.path, "lock failed", e))
                }
            }
        }
    }

    /// Removes the directory once its keeper is done, unless another process is electing a
    /// keeper in it right now (it holds the lock); that process makes it again.
    pub(crate) fn remove_if_idle(&self) {
        let Ok(lock) = File::open(self.path.join("lock")) else {
            return;
        };
        if lock.try_lock().is_ok() && self.is_current(&lock) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }

    /// The last lines of the keeper's log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Who holds the lock at `lock`, as its pid in the file and that process's command line.
fn holder(lock: &Path) -> String {
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let Ok(pid) = text.trim().parse::<u32>() else {
        return "a process that did not write its pid".into();
    };
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let words: Vec<String> = cmdline
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            format!("pid {pid}, `{}`", words.join(" "))
        }
        Err(_) => format!("pid {pid}, which is gone: a lock of a dead process is released"),
    }
}

/// Where the keeper of the run directory `dir` logs: `<base>/logs/<run hash>-<env>.log`.
pub(crate) fn log_path(dir: &Path) -> PathBuf {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    dir.parent()
        .unwrap_or(Path::new("/"))
        .join(LOGS)
        .join(format!("{name}.log"))
}

/// The directory of the keepers' logs, under the base directory.
const LOGS: &str = "logs";

/// How long a keeper's log stays after it was last written.
pub(crate) const LOG_KEPT: Duration = Duration::from_secs(24 * 3600);

/// Removes keepers' logs nothing wrote to for `age`; returns how many.
pub fn remove_old_logs(age: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(base_dir().join(LOGS)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|a| a >= age);
        if old && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Removes run directories left by keepers that were killed or failed: no keeper answers
/// there, no process holds the election lock, and nothing changed for `idle`. A failed
/// keeper's directory (its log) stays that long for the error that names it.
pub fn remove_stale(idle: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(base_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if entry.file_name() == LOGS {
            continue;
        }
        let dir = RunDir::from_path(entry.path());
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= idle);
        if old && std::os::unix::net::UnixStream::connect(dir.socket()).is_err() {
            let before = dir.path.exists();
            dir.remove_if_idle();
            removed += usize::from(before && !dir.path.exists());
        }
    }
    removed
}

/// Refuses a directory another user owns or may write to: whoever can write there can replace
/// the keeper's socket or deny every test its environment.
fn private(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::keeper_io(dir, "cannot be read", e))?;
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(Error::Spec {
            service: "environment".into(),
            problem: format!(
                "the run directory {} is owned by uid {} with mode {:o}, not private to uid \
                 {me}: refused, since whoever may write there can replace the keeper's socket",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o777
            ),
            fix: "remove that directory (or point TMPDIR or XDG_RUNTIME_DIR elsewhere) and run \
                  again"
                .into(),
        });
    }
    Ok(())
}

/// Where every run directory lives: `$XDG_RUNTIME_DIR/drydock`, else `<tmp>/drydock-<uid>`.
pub(crate) fn base_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("drydock");
    }
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("drydock-{uid}"))
}
