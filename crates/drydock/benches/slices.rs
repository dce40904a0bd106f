//! Slice acquisition from a shared environment: a fresh migrated database and a Redis database.
//!
//! ```text
//! scripts/setup && . scripts/env && cargo bench -p drydock --bench slices
//! ```
//!
//! 200 acquisitions with the clone pool warm. Each is followed by what a test does at least
//! (connect, one query) before the slice is released, so the pool refills as it would in a suite.
//! Target: p50 ≤ 5 ms, p95 ≤ 25 ms. Anchor: IntegreSQL hands out a clone in 0–1 ms.

use std::time::{Duration, Instant};

use drydock::{Env, EnvBuilder, Postgres, Redis};

const ACQUISITIONS: usize = 200;

fn spec(migrations: &std::path::Path) -> EnvBuilder {
    Env::builder()
        .with_postgres(Postgres::default().migrations(migrations))
        .with_redis(Redis::default())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A run of its own, so the environment is this benchmark's alone.
    let migrations = std::env::temp_dir().join(format!("drydock-bench-{}", std::process::id()));
    std::fs::create_dir_all(&migrations)?;
    for (name, sql) in [
        ("1_accounts.sql", "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL);"),
        ("2_orders.sql", "CREATE TABLE orders (id bigserial PRIMARY KEY, account bigint REFERENCES accounts, item text);"),
        ("3_index.sql", "CREATE INDEX orders_by_account ON orders (account);"),
    ] {
        std::fs::write(migrations.join(name), sql)?;
    }

    let started = Instant::now();
    let holder = spec(&migrations).attach().await?; // keeps the environment up throughout
    println!(
        "environment ready (first attach) in {} ms",
        started.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // let the clone pool fill

    let mut samples = Vec::with_capacity(ACQUISITIONS);
    for _ in 0..ACQUISITIONS {
        let started = Instant::now();
        let slice = spec(&migrations).attach().await?;
        samples.push(started.elapsed());
        let pool = slice.postgres()?.pool().await?;
        sqlx::query("INSERT INTO accounts (name) VALUES ('bench')")
            .execute(&pool)
            .await?;
        pool.close().await;
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "slice acquisition over {ACQUISITIONS}: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms \
         (targets: p50 <= 5 ms, p95 <= 25 ms)",
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.95)),
        ms(samples[samples.len() - 1]),
    );
    drop(holder);
    std::fs::remove_dir_all(&migrations)?;
    Ok(())
}
