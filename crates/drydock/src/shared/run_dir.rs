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
        for dir in [&base, &path] {
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

    pub(crate) fn log_file(&self) -> PathBuf {
        self.path.join("keeper.log")
    }

    /// Takes the election lock of this environment, waiting at most `bound`.
    pub(crate) fn lock(&self, bound: Duration) -> Result<File> {
        let path = self.path.join("lock");
        let file = File::create(&path)
            .map_err(|e| Error::keeper_io(&self.path, "lock file cannot be opened", e))?;
        let deadline = Instant::now() + bound;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Timeout {
                        what: format!(
                            "the election lock of the shared environment in {}",
                            self.path.display()
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

    /// The last lines of the keeper's log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Refuses a directory another user owns or may write to: whoever can write there can replace
/// the keeper's socket or deny every test its environment.
fn private(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::keeper_io(dir, "cannot be read", e))?;
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(Error::keeper(
            dir,
            format!(
                "is owned by uid {} with mode {:o}, not private to uid {me}: refused; remove it \
                 (or point TMPDIR elsewhere) and run again",
                meta.uid(),
                meta.mode() & 0o777
            ),
        ));
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
