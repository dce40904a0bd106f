//! The keeper: the process that owns a shared environment for one run.
//!
//! It is the test binary itself, re-executed with `DRYDOCK_KEEPER_DIR` set and caught by a
//! constructor before the test harness's `main` runs (a test harness owns `main`, so a
//! constructor is the one way in that needs nothing installed). It starts the services
//! ([`serve`]), hands one slice to each connection and takes it back when the connection closes
//! ([`lease`]), and removes everything after the grace period with no lease.

mod adopt;
mod lease;
mod serve;
mod watch;

use std::path::PathBuf;

use super::run_dir::RunDir;

/// The environment variable that turns a test binary into a keeper: the run directory.
pub(crate) const KEEPER_ENV: &str = "DRYDOCK_KEEPER_DIR";
/// The pid of the process that spawned the keeper: a keeper is only ever its spawner's child,
/// so a `DRYDOCK_KEEPER_DIR` left in a shell's environment does not turn every test binary
/// (and nextest's `--list`) into a keeper.
pub(crate) const SPAWNER_ENV: &str = "DRYDOCK_KEEPER_SPAWNER";

#[ctor::ctor(unsafe)]
#[allow(unsafe_code)]
fn keeper_entry() {
    let Some(dir) = std::env::var_os(KEEPER_ENV) else {
        return;
    };
    let spawner = std::env::var(SPAWNER_ENV).ok();
    if spawner.as_deref() == Some(&std::os::unix::process::parent_id().to_string()) {
        std::process::exit(run(PathBuf::from(dir)));
    }
    eprintln!(
        "drydock: ignoring {KEEPER_ENV}={} (this process was not spawned as a keeper)\n  \
         to fix: unset it in your shell",
        dir.to_string_lossy()
    );
}

/// Referenced from `attach`, so the linker keeps the object file that holds the constructor.
pub(crate) fn ensure_linked() {
    std::hint::black_box(keeper_entry as fn());
}

fn run(dir: PathBuf) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("drydock keeper: no runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(serve::serve(RunDir::from_path(dir))) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("drydock keeper: {e}");
            1
        }
    }
}
