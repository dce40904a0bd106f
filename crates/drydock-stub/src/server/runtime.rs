//! The runtime in-process servers run on: one per process, on threads of its own, so starting a
//! server costs a bound socket and a spawned task, not a thread and a runtime.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

static SHARED: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The shared runtime: two worker threads (a test's own server rarely needs more; a busy one can
/// ask for threads of its own with `StubServerBuilder::threads`). It lives as long as the process.
pub(crate) fn shared() -> Result<Handle, String> {
    SHARED
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("drydock-stub")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map(|runtime| runtime.handle().clone())
        .map_err(Clone::clone)
}
