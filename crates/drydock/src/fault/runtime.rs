//! The runtime every fault proxy of a process runs on.
//!
//! Proxies outlive the runtime of the test that made them (a `#[tokio::test]` runtime ends with
//! the test, and a blocked one would stall clients on other threads, such as librdkafka's): they
//! run on one small runtime of their own, started on first use.
//!
//! One thread drives it (a current-thread runtime on a thread of its own): a proxy waits, it
//! hardly computes, and one thread saves every hop the wake-ups between worker threads cost.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle};

pub(crate) fn runtime() -> &'static Handle {
    static RUNTIME: OnceLock<Handle> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .build()
            // Without threads or timers this process can run no proxy, nor any test.
            .unwrap_or_else(|e| panic!("drydock: cannot start the fault proxies' runtime: {e}"));
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("drydock-faults".into())
            // Runs the proxies' tasks until the process ends.
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .unwrap_or_else(|e| panic!("drydock: cannot start the fault proxies' thread: {e}"));
        handle
    })
}
