//! The reaper: what removes an environment whose owner died without removing it.
//!
//! An owned [`Env`](crate::Env) removes its containers when dropped, and a keeper when it
//! ends; a process killed by SIGKILL (or dying while it starts an environment) does neither. So
//! each process that starts environments has a reaper: a child process — the same binary,
//! re-executed and caught by a constructor, as the keeper is, so nothing is installed or pulled
//! — in a process group of its own (a Ctrl-C or a runner killing the test's group spares it).
//! The owner tells it, over the child's stdin, which instances it is making (`watch <label
//! filter>`) and which it removed (`done <label filter>`); when stdin closes — the kernel closes it whatever way the owner ended —
//! the reaper removes every instance still watched, by label, and exits.
//!
//! `DRYDOCK_REAPER=off` turns it off (a killed process's containers then stay, for a look
//! inside, until `drydock prune`).
//!
//! [`Watch`] is the owner's side for one instance: created before the first resource exists,
//! [`Watch::removed`] once the instance is gone. A watch dropped otherwise leaves the instance
//! to the reaper, at the latest when the process ends.

use std::{
    io::{BufRead, Write},
    process::{ChildStdin, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::Duration,
};

/// The environment variable that turns a binary into a reaper: the owner's pid.
const REAPER_ENV: &str = "DRYDOCK_REAPER_FOR";
/// The most a reaper spends removing what its owner left.
const REAP_BOUND: Duration = Duration::from_secs(60);
/// When the second pass looks again (see [`reap`]).
const SECOND_PASS_AFTER: Duration = Duration::from_secs(2);

#[ctor::ctor(unsafe)]
#[allow(unsafe_code)]
fn reaper_entry() {
    let Ok(owner) = std::env::var(REAPER_ENV) else {
        return;
    };
    // Only a child spawned as a reaper is one (a variable left in a shell is ignored).
    if owner == std::os::unix::process::parent_id().to_string() {
        std::process::exit(reap(std::io::stdin().lock()));
    }
}

/// Reads `watch <instance>` / `done <instance>` lines until the owner is gone, then removes
/// what is still watched.
///
/// A keeper's reaper is told its run directory (`successor <dir>`): when the keeper dies with
/// its environment still there, the reaper starts a successor keeper, which adopts the
/// environment and the slices tests hold of it, instead of removing it from under them. Only
/// when no successor can be started is the environment removed.
fn reap(lines: impl BufRead) -> i32 {
    let mut watched: Vec<String> = Vec::new();
    let mut successor: Option<std::path::PathBuf> = None;
    for line in lines.lines() {
        let Ok(line) = line else { break };
        match line.split_once(' ') {
            Some(("watch", instance)) => watched.push(instance.to_owned()),
            Some(("done", instance)) => watched.retain(|w| w != instance),
            Some(("successor", dir)) => successor = Some(dir.into()),
            _ => {}
        }
    }
    if watched.is_empty() {
        return 0;
    }
    if let Some(dir) = successor {
        if crate::shared::succeed(&dir) {
            return 0;
        }
    }
    // Twice: a request the owner sent just before it died (a container being created) is
    // carried out by the engine after the first pass has listed what exists.
    let mut failed = 0;
    for pass in 0..2 {
        if pass > 0 {
            std::thread::sleep(SECOND_PASS_AFTER);
        }
        for instance in &watched {
            if crate::docker::remove_labelled_blocking(instance.clone(), REAP_BOUND).is_err() {
                failed = 1;
            }
        }
    }
    failed
}

/// This process's reaper: its stdin, once spawned; `None` if it could not be.
fn reaper() -> &'static Mutex<Option<ChildStdin>> {
    static REAPER: OnceLock<Mutex<Option<ChildStdin>>> = OnceLock::new();
    REAPER.get_or_init(|| {
        if std::env::var("DRYDOCK_REAPER").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
            return Mutex::new(None);
        }
        let spawned = std::env::current_exe().and_then(|exe| {
            use std::os::unix::process::CommandExt;
            Command::new(exe)
                .env(REAPER_ENV, std::process::id().to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
        });
        match spawned {
            // The child is never waited for: it outlives this process by design.
            Ok(mut child) => Mutex::new(child.stdin.take()),
            Err(e) => {
                eprintln!(
                    "drydock: no reaper for this process ({e}): if it is killed, \
                     `drydock prune` removes what it started"
                );
                Mutex::new(None)
            }
        }
    })
}

fn tell(line: &str) {
    if let Ok(mut stdin) = reaper().lock() {
        if let Some(pipe) = stdin.as_mut() {
            // A reaper that died cannot be told; the next `drydock prune` does its work.
            let _ = writeln!(pipe, "{line}").and_then(|()| pipe.flush());
        }
    }
}

/// This process is the keeper of the run directory `dir`: see [`reap`].
pub(crate) fn successor(dir: &std::path::Path) {
    tell(&format!("successor {}", dir.display()));
}

/// The owner's side of one instance: see the [module](self).
#[derive(Debug)]
pub(crate) struct Watch {
    instance: String,
}

impl Watch {
    /// Starts watching the instance whose resources `instance` (a `label=value` filter)
    /// selects, before its first resource is made.
    pub(crate) fn new(instance: &str) -> Watch {
        // The constructor's object file must be linked into every binary that starts one.
        std::hint::black_box(reaper_entry as fn());
        tell(&format!("watch {instance}"));
        Watch {
            instance: instance.to_owned(),
        }
    }

    /// The instance was removed: the reaper forgets it.
    pub(crate) fn removed(self) {
        tell(&format!("done {}", self.instance));
    }
}
