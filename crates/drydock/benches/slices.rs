//! Slice acquisition from a shared environment of all four services: PostgreSQL (migrated),
//! Redis, Kafka and a stub.
//!
//! ```text
//! scripts/setup && . scripts/env && cargo bench -p drydock --all-features --bench slices
//! ```
//!
//! 200 acquisitions back to back with the clone pool warm. Each is timed twice: until the
//! keeper's answer (`attach`), and until every service is usable (`usable`: a PostgreSQL pool
//! that has run a query, a Redis connection that has answered, two Kafka topics created and
//! visible, a stub mapping mounted). Then the slice is released, so the pool refills as it
//! would in a suite. Then 50 more, the services made usable one after another, for what each
//! costs alone. Targets (issue 14): attach p50 ≤ 1 ms, p95 ≤ 10 ms; usable p50 ≤ 10 ms.
//! `BENCH_GAP_MS=100` pauses between a release and the next attach, so the keeper has given the
//! last slice back (a clone dropped and another made, topics deleted) before the next attach:
//! the difference is what back-to-back attaches wait for that work on 2 cores.
//! Anchor: IntegreSQL hands out a clone in 0–1 ms.

use std::time::{Duration, Instant};

use drydock::{
    stub::{Response, Stub},
    Env, EnvBuilder, HttpStub, Kafka, Postgres, Redis,
};

const ACQUISITIONS: usize = 200;
const ALONE: usize = 50;

fn spec(migrations: &std::path::Path) -> EnvBuilder {
    Env::builder()
        .with_postgres(Postgres::default().migrations(migrations))
        .with_redis(Redis::default())
        .with_kafka(Kafka::default())
        .with_stub(HttpStub::default())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// How long each service took to become usable, from the slice's attach.
struct Usable {
    postgres: Duration,
    redis: Duration,
    kafka: Duration,
    stub: Duration,
}

impl Usable {
    /// Adds each service's time to its samples, in `print_parts`' order.
    fn record(&self, samples: &mut [Vec<Duration>; 4]) {
        for (samples, took) in
            samples
                .iter_mut()
                .zip([self.postgres, self.redis, self.kafka, self.stub])
        {
            samples.push(took);
        }
    }
}

/// What a test does before it can use each service: all at once (`together`), each part timed
/// from `attached`, so the breakdown shows which service the "usable" figure waits for; or one
/// after another, each timed alone, so it shows what each costs without the others beside it.
async fn make_usable(
    slice: &drydock::Slice,
    attached: Instant,
    together: bool,
) -> Result<Usable, Box<dyn std::error::Error>> {
    let postgres = async {
        let pool = slice.postgres()?.pool().await?;
        sqlx::query("INSERT INTO accounts (name) VALUES ('bench')")
            .execute(&pool)
            .await?;
        Ok::<_, Box<dyn std::error::Error>>((pool, attached.elapsed()))
    };
    let redis = async {
        let mut redis = slice.redis()?.connection_manager().await?;
        let _: () = redis::cmd("PING").query_async(&mut redis).await?;
        Ok(attached.elapsed())
    };
    let kafka = async {
        let kafka = slice.kafka()?;
        futures::try_join!(
            kafka.create_topic("orders", 1),
            kafka.create_topic("payments", 1)
        )?;
        Ok(attached.elapsed())
    };
    let stub = async {
        let stub = slice.stub()?.connect().await?;
        stub.mount(Stub::get("/health").respond(Response::status(200)))
            .await?;
        Ok(attached.elapsed())
    };
    let ((pool, postgres), redis, kafka, stub) = if together {
        futures::try_join!(postgres, redis, kafka, stub)?
    } else {
        // Each timed from its own start: `attached.elapsed()` minus what came before.
        let (pool, postgres) = postgres.await?;
        let before = attached.elapsed();
        let redis = redis.await? - before;
        let before = attached.elapsed();
        let kafka = kafka.await? - before;
        let before = attached.elapsed();
        let stub = stub.await? - before;
        ((pool, postgres), redis, kafka, stub)
    };
    pool.close().await;
    Ok(Usable {
        postgres,
        redis,
        kafka,
        stub,
    })
}

fn print_parts(title: &str, parts: &mut [Vec<Duration>; 4]) {
    println!("{title}:");
    for (service, samples) in ["postgres", "redis", "kafka", "stub"].iter().zip(parts) {
        samples.sort();
        println!(
            "  {service:<8} p50 {:.2} ms, p95 {:.2} ms",
            percentile(samples, 0.50).as_secs_f64() * 1000.0,
            percentile(samples, 0.95).as_secs_f64() * 1000.0,
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A run of its own, so the environment is this benchmark's alone.
    // Removed when dropped, also when the benchmark fails half-way.
    let scratch = tempfile::Builder::new()
        .prefix("drydock-bench-")
        .tempdir()?;
    let migrations = scratch.path().to_path_buf();
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

    let mut attach = Vec::with_capacity(ACQUISITIONS);
    let mut usable = Vec::with_capacity(ACQUISITIONS);
    let mut parts: [Vec<Duration>; 4] = Default::default();
    for _ in 0..ACQUISITIONS {
        let started = Instant::now();
        let slice = spec(&migrations).attach().await?;
        attach.push(started.elapsed());
        let attached = Instant::now();
        make_usable(&slice, attached, true)
            .await?
            .record(&mut parts);
        usable.push(started.elapsed());
        drop(slice);
        if let Some(ms) = std::env::var("BENCH_GAP_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (what, samples, targets) in [
        ("attach", &mut attach, "p50 <= 1 ms, p95 <= 10 ms"),
        ("usable", &mut usable, "p50 <= 10 ms"),
    ] {
        samples.sort();
        println!(
            "{what} over {ACQUISITIONS}: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms (targets: {targets})",
            ms(percentile(samples, 0.50)),
            ms(percentile(samples, 0.95)),
            ms(samples[samples.len() - 1]),
        );
    }
    print_parts(
        "usable, by service (from the attach's answer; all four at once)",
        &mut parts,
    );

    // The same services made usable one after another: what each costs alone.
    let mut alone: [Vec<Duration>; 4] = Default::default();
    for _ in 0..ALONE {
        let slice = spec(&migrations).attach().await?;
        make_usable(&slice, Instant::now(), false)
            .await?
            .record(&mut alone);
        drop(slice);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    print_parts(
        &format!("each service alone ({ALONE} slices, one service after another, 100 ms apart)"),
        &mut alone,
    );
    drop(holder);
    Ok(())
}
