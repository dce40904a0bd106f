//! Time from request to ready: each service alone, all four together, and PostgreSQL with 30
//! migrations.
//!
//! ```text
//! scripts/setup && . scripts/env && cargo bench -p drydock --all-features --bench startup
//! ```
//!
//! Started together, the four should take about as long as the slowest one, not the sum: the
//! ratio printed last is measured in the same run (issue 14's target: ≤ 1.2× the slowest), as
//! is an environment with 30 migrations (target: ready in ≤ 1.5 s).

use std::time::{Duration, Instant};

use drydock::{Env, EnvBuilder, HttpStub, Kafka, Postgres, Redis};

const ROUNDS: usize = 5;

/// A named way to describe an environment.
type Case = (&'static str, Box<dyn Fn() -> EnvBuilder>);

/// 30 small schema steps, the shape of a real application's history.
fn write_migrations(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for n in 1..=30 {
        let sql = match n % 3 {
            1 => format!(
                "CREATE TABLE t{n} (id bigserial PRIMARY KEY, name text NOT NULL, \
                 created_at timestamptz NOT NULL DEFAULT now());"
            ),
            2 => format!(
                "ALTER TABLE t{} ADD COLUMN note{n} text; CREATE INDEX t{}_name_{n} ON t{} (name);",
                n - 1,
                n - 1,
                n - 1
            ),
            _ => format!(
                "INSERT INTO t{} (name) SELECT 'row ' || g FROM generate_series(1, 100) g;",
                n - 2
            ),
        };
        std::fs::write(dir.join(format!("{n:03}_step.sql")), sql)?;
    }
    Ok(())
}

async fn time_start(builder: EnvBuilder) -> drydock::Result<Duration> {
    let started = Instant::now();
    let env = builder.start().await?;
    let elapsed = started.elapsed();
    env.teardown().await?;
    Ok(elapsed)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Removed when dropped, also when the benchmark fails half-way.
    let scratch = tempfile::Builder::new()
        .prefix("drydock-bench-")
        .tempdir()?;
    let migrations = scratch.path().to_path_buf();
    write_migrations(&migrations)?;
    let migrated = migrations.clone();
    let cases: Vec<Case> = vec![
        (
            "postgres",
            Box::new(|| Env::builder().with_postgres(Postgres::default())),
        ),
        (
            "redis",
            Box::new(|| Env::builder().with_redis(Redis::default())),
        ),
        (
            "kafka",
            Box::new(|| Env::builder().with_kafka(Kafka::default())),
        ),
        (
            "stub",
            Box::new(|| Env::builder().with_stub(HttpStub::default())),
        ),
        (
            "all four",
            Box::new(|| {
                Env::builder()
                    .with_postgres(Postgres::default())
                    .with_redis(Redis::default())
                    .with_kafka(Kafka::default())
                    .with_stub(HttpStub::default())
            }),
        ),
        (
            "postgres, 30 migrations",
            Box::new(move || {
                Env::builder().with_postgres(Postgres::default().migrations(&migrated))
            }),
        ),
    ];
    // One unmeasured start warms the engine's caches (image layers, network setup).
    time_start(cases[4].1()).await?;

    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    // Interleaved, so drift of the machine affects every case alike.
    for _ in 0..ROUNDS {
        for (i, (_, builder)) in cases.iter().enumerate() {
            samples[i].push(time_start(builder()).await?);
        }
    }
    println!("request to ready, {ROUNDS} rounds each, in ms:   median      min      max");
    let mut medians = Vec::new();
    for (i, (name, _)) in cases.iter().enumerate() {
        let (min, max) = (
            samples[i].iter().min().copied().unwrap_or_default(),
            samples[i].iter().max().copied().unwrap_or_default(),
        );
        medians.push(median(samples[i].clone()));
        println!(
            "  {name:<39} {:>8} {:>8} {:>8}",
            medians[i].as_millis(),
            min.as_millis(),
            max.as_millis()
        );
    }
    let slowest = medians[..4].iter().max().copied().unwrap_or_default();
    println!(
        "all four / slowest single = {:.2} (target <= 1.2)   30 migrations: {} ms (target <= 1500)",
        medians[4].as_secs_f64() / slowest.as_secs_f64(),
        medians[5].as_millis()
    );
    Ok(())
}
