//! Sums what `scripts/shop-metrics` gathered from repeated runs of the shop's suite: each run's
//! nextest log (which tests passed on their first and only try) and the traffic every test
//! recorded at its dependencies' fault proxies (`DRYDOCK_METRICS_DIR`, see
//! `tests/common/mod.rs`). Prints the pass rate and a table: dependency, round trips, bytes,
//! time waited, share.
//!
//! `cargo run -p shop --bin shop-metrics -- <dir>` where `<dir>` holds `run-<i>.log` and
//! `run-<i>/traffic-*.jsonl`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

#[derive(Default)]
struct Sum {
    round_trips: u64,
    bytes: u64,
    connections: u64,
    waited: Duration,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: shop-metrics <dir with run-<i>.log and run-<i>/>")?,
    );
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort_by_key(|p| run_number(p));

    println!("runs of the shop's suite (cargo nextest, no retries):");
    let (mut passed_all, mut ran_all) = (0, 0);
    let mut failed_tests = BTreeSet::new();
    for log in &logs {
        let text = std::fs::read_to_string(log)?;
        // nextest prints a failed test twice (as it ends and in the summary): count names.
        let (mut passed, mut failed) = (BTreeSet::new(), BTreeSet::new());
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let name = line.rsplit(' ').next().unwrap_or_default().to_owned();
            match words.next() {
                Some("PASS") => {
                    passed.insert(name);
                }
                Some("FAIL" | "TIMEOUT" | "SIGSEGV" | "SIGABRT" | "SIGKILL" | "LEAK-FAIL") => {
                    failed.insert(name);
                }
                _ => {}
            }
        }
        let (passed, failed): (usize, Vec<String>) = (passed.len(), failed.into_iter().collect());
        let ran = passed + failed.len();
        println!(
            "  run {}: {passed}/{ran} passed on the first try{}",
            run_number(log),
            if failed.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", failed.join(", "))
            }
        );
        passed_all += passed;
        ran_all += ran;
        failed_tests.extend(failed);
    }
    if ran_all > 0 {
        println!(
            "first-run pass rate: {passed_all}/{ran_all} = {:.1} % over {} run(s); {} test(s) ever failed",
            100.0 * passed_all as f64 / ran_all as f64,
            logs.len(),
            failed_tests.len()
        );
    }

    let mut sums: BTreeMap<String, Sum> = BTreeMap::new();
    let (mut tests, mut test_time) = (0u64, Duration::ZERO);
    for run in std::fs::read_dir(&dir)?.filter_map(|e| e.ok().map(|e| e.path())) {
        if !run.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&run)?.filter_map(|e| e.ok().map(|e| e.path())) {
            for line in std::fs::read_to_string(&file)?.lines() {
                let record: serde_json::Value = serde_json::from_str(line)?;
                tests += 1;
                test_time += Duration::from_micros(record["elapsed_us"].as_u64().unwrap_or(0));
                let Some(traffic) = record["traffic"].as_object() else {
                    continue;
                };
                for (dependency, t) in traffic {
                    let sum = sums.entry(dependency.clone()).or_default();
                    let n = |k: &str| t[k].as_u64().unwrap_or(0);
                    sum.round_trips += n("round_trips");
                    sum.connections += n("connections");
                    sum.bytes += n("bytes_upstream") + n("bytes_downstream");
                    sum.waited += Duration::from_micros(n("waited_us"));
                }
            }
        }
    }
    let total_wait: Duration = sums.values().map(|s| s.waited).sum();
    println!(
        "\ntraffic at the fault proxies, {tests} test execution(s), {:.1} s of test time (from the shop's start to the test's end):",
        test_time.as_secs_f64()
    );
    println!(
        "{:<12} | {:>11} | {:>11} | {:>12} | {:>11} | {:>6}",
        "dependency", "connections", "round trips", "bytes", "time waited", "share"
    );
    println!("{}", "-".repeat(80));
    for (dependency, s) in &sums {
        let share = if total_wait.is_zero() {
            0.0
        } else {
            100.0 * s.waited.as_secs_f64() / total_wait.as_secs_f64()
        };
        println!(
            "{dependency:<12} | {:>11} | {:>11} | {:>12} | {:>10.2}s | {share:>5.1}%",
            s.connections,
            s.round_trips,
            human_bytes(s.bytes),
            s.waited.as_secs_f64()
        );
    }
    println!(
        "{:<12} | {:>11} | {:>11} | {:>12} | {:>10.2}s | 100.0%",
        "all",
        sums.values().map(|s| s.connections).sum::<u64>(),
        sums.values().map(|s| s.round_trips).sum::<u64>(),
        human_bytes(sums.values().map(|s| s.bytes).sum()),
        total_wait.as_secs_f64()
    );
    println!(
        "\n\"time waited\" sums, per round trip, the time from a request's first byte to its answer's \
first byte at the proxy: what the dependency made its caller wait, including injected faults \
(latency, timeouts) and overlapping waits of concurrent requests. Kafka's includes consumers' \
long-polling fetches."
    );
    Ok(())
}

fn run_number(path: &Path) -> u32 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("run-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
