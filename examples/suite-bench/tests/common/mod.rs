//! What the suite's 100 tests do, written once and run by four harnesses (see
//! `scripts/bench-suite`), and the per-step timings each test records.

#![allow(dead_code)] // each harness uses part of this

use std::{
    fs::OpenOptions,
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

use drydock::stub::{Response, Stub, StubServer};
use serde_json::json;
use suite_bench::{cache_stock, order_count, place_order};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// How long messages may take to arrive through a consumer group.
pub const CONSUME_BOUND: Duration = Duration::from_secs(20);

/// A test's step timings. With `SUITE_BENCH_STEPS=<dir>` set, [`Steps::finish`] appends them to
/// `<dir>/<variant>.tsv` as `test<TAB>step<TAB>milliseconds` lines, which `scripts/bench-suite`
/// summarises; without it, nothing is written.
pub struct Steps {
    variant: &'static str,
    test: &'static str,
    last: Instant,
    lines: String,
}

impl Steps {
    /// Starts timing; the first line is `to body`: from the test process's start (exec, the
    /// runtime, and whatever the test attribute does before the body) to here.
    pub fn start(variant: &'static str, test: &'static str) -> Self {
        let mut steps = Steps {
            variant,
            test,
            last: Instant::now(),
            lines: String::new(),
        };
        if let Some(ms) = since_process_start() {
            steps.push("to body", ms);
        }
        steps
    }

    fn push(&mut self, step: &str, ms: f64) {
        self.lines
            .push_str(&format!("{}\t{step}\t{ms:.3}\n", self.test));
    }

    /// Records the time since the previous step (or the start) as `step`.
    pub fn step(&mut self, step: &str) {
        let now = Instant::now();
        let ms = (now - self.last).as_secs_f64() * 1000.0;
        self.push(step, ms);
        self.last = now;
    }

    /// Writes the steps out (one `write`, appended: tests run in parallel).
    pub fn finish(self) -> TestResult {
        let Some(dir) = std::env::var_os("SUITE_BENCH_STEPS") else {
            return Ok(());
        };
        let path = PathBuf::from(dir).join(format!("{}.tsv", self.variant));
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?
            .write_all(self.lines.as_bytes())?;
        Ok(())
    }
}

/// Milliseconds since this process started (`/proc`: 10 ms resolution), if known.
fn since_process_start() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 22 (starttime, in clock ticks since boot) counts from the one after the `)` of comm.
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let ticks: f64 = after_comm.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((uptime - ticks / 100.0).max(0.0) * 1000.0)
}

/// The PostgreSQL part of every test: an order placed across the migrated schema, and only this
/// test's order in the database.
pub async fn postgres_work(db: &sqlx::PgPool, test: &str, quantity: i32) -> TestResult {
    assert_eq!(order_count(db).await?, 0, "a fresh database has no orders");
    let placed = place_order(db, &format!("{test}@example.com"), quantity).await?;
    assert_eq!(placed.total_cents, 1250 * quantity, "the trigger's total");
    assert_eq!(placed.audit_rows, 2, "placed, then paid");
    assert_eq!(order_count(db).await?, 1, "only this test's order");
    Ok(())
}

/// The Redis part: stock cached, a view counted, and only this test's two keys.
pub async fn redis_work(redis: &mut redis::aio::ConnectionManager, quantity: i32) -> TestResult {
    let keys = cache_stock(redis, "ROPE-10", 100 - i64::from(quantity)).await?;
    assert_eq!(keys, 2, "only this test's keys");
    Ok(())
}

/// The stub part: a mapping mounted, then called as the system under test would call it.
pub async fn stub_work(stub: &StubServer, base_url: &str, test: &str) -> TestResult {
    stub.mount(
        Stub::get("/rates/EUR")
            .respond(Response::status(200).json(json!({"rate": 1.17, "test": test}))),
    )
    .await?;
    let answer: serde_json::Value = reqwest::get(format!("{base_url}/rates/EUR"))
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(answer["test"], test, "this test's stub answered");
    assert_eq!(stub.requests().await?.len(), 1, "only this test's request");
    Ok(())
}

/// The message keys every test produces, one to each of its two topics.
pub fn message_key(test: &str, topic: &str) -> String {
    format!("{test}/{topic}")
}

/// The 100 tests: `$test!(name, quantity)` for each, from the harness's own test macro.
#[macro_export]
macro_rules! hundred {
    ($test:ident) => {
        $crate::hundred!(@tens $test, t0, t1, t2, t3, t4, t5, t6, t7, t8, t9);
    };
    (@tens $test:ident, $($tens:ident),*) => {
        $( $crate::hundred!(@units $test, $tens); )*
    };
    (@units $test:ident, $tens:ident) => {
        mod $tens {
            #[allow(unused_imports)]
            use super::*;
            $test!(order_0, 1);
            $test!(order_1, 2);
            $test!(order_2, 3);
            $test!(order_3, 4);
            $test!(order_4, 5);
            $test!(order_5, 1);
            $test!(order_6, 2);
            $test!(order_7, 3);
            $test!(order_8, 4);
            $test!(order_9, 5);
        }
    };
}
