//! The runtime every fault proxy of a process runs on.
//!
//! Proxies outlive the runtime of the test that made them (a `#[tokio::test]` runtime ends with
//! the test, and a blocked one would stall clients on other threads, such as librdkafka's): they
//! run on one small runtime of their own, started on first use.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

pub(crate) fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("drydock-faults")
            .enable_all()
            .build()
            // Without threads or timers this process can run no proxy, nor any test.
            .unwrap_or_else(|e| panic!("drydock: cannot start the fault proxies' runtime: {e}"))
    })
}
