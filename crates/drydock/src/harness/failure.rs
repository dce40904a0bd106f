//! A failing test's report: what its dependencies were, how to reach them, what crossed each
//! boundary and what each container said while the test ran.

use std::time::{Duration, SystemTime};

use crate::Services;

/// How many lines of each container's log a report shows.
const LOG_LINES: usize = 30;
/// The most the report waits for the engine and the services' own answers (a stub's journal).
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The report of a failing test on `services` (a [`Slice`](crate::Slice) or an
/// [`Env`](crate::Env)), with each container's log since `since` (when the slice was cut).
///
/// Per service: its handle (the slice's database, Redis db, topic prefix, stub namespace), how
/// to connect (`psql …`, `redis-cli …`), what the service itself has to say (a stub's
/// unmatched requests and their near misses), the traffic through its fault proxies, and the
/// last lines of its container's log. Passwords are masked unless `DRYDOCK_SHOW_SECRETS=1`.
///
/// `#[drydock::test]` prints it when a test fails, and a [`Slice`](crate::Slice) dropped by a
/// panicking test prints it too, so plain `#[tokio::test]` and rstest tests get it as well.
///
/// ```no_run
/// # async fn demo(slice: drydock::Slice) {
/// let cut = std::time::SystemTime::now();
/// // … the test …
/// eprintln!("{}", drydock::harness::explain(&slice, cut).await);
/// # }
/// ```
pub async fn explain(services: &Services, since: SystemTime) -> String {
    let mut text = String::from("──── drydock: the failing test's dependencies ────\n");
    let engine = tokio::time::timeout(REPORT_TIMEOUT, crate::docker::Engine::connect()).await;
    for entry in services.entries() {
        text.push_str(&format!(
            "{} ({}): {}\n",
            entry.name, entry.kind, entry.debug
        ));
        for line in &entry.diagnose {
            text.push_str(&format!("  {line}\n"));
        }
        match tokio::time::timeout(REPORT_TIMEOUT, (entry.explain)()).await {
            Ok(lines) => {
                for line in lines {
                    text.push_str(&format!("  {line}\n"));
                }
            }
            Err(_) => text.push_str(&format!(
                "  (its own report did not come within {REPORT_TIMEOUT:?})\n"
            )),
        }
        for proxy in &entry.proxies {
            text.push_str(&format!(
                "  traffic via {} → {}: {}\n",
                proxy.listen_addr(),
                proxy.upstream(),
                proxy.traffic()
            ));
        }
        let log = match &engine {
            Ok(Ok(engine)) => {
                crate::docker::log_tail_since(engine, &entry.container, LOG_LINES, Some(since))
                    .await
            }
            _ => "(no Docker engine answered: no container log)".to_owned(),
        };
        text.push_str(&format!(
            "  --- {}'s log since the slice was cut (last {LOG_LINES} lines) ---\n",
            entry.name
        ));
        for line in log.lines() {
            text.push_str(&format!("  | {line}\n"));
        }
    }
    text.push_str("──── end of drydock's report ────");
    text
}

/// Prints the report of a slice dropped while its test panics, from a thread of its own (a
/// destructor cannot wait on the test's runtime), within [`REPORT_TIMEOUT`] and a margin.
pub(crate) fn explain_on_panic(services: &Services, since: SystemTime) {
    std::thread::scope(|scope| {
        let printed = scope.spawn(|| {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let report = runtime.block_on(async {
                tokio::time::timeout(REPORT_TIMEOUT * 2, explain(services, since)).await
            });
            if let Ok(report) = report {
                eprintln!("{report}");
            }
        });
        let _ = printed.join();
    });
}
