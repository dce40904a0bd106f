//! Time from request to ready: PostgreSQL alone, Redis alone, both together.
//!
//! ```text
//! scripts/setup && . scripts/env && cargo bench -p drydock --bench startup
//! ```
//!
//! Started together, the two should take about as long as the slower one, not the sum: the
//! figures printed last are those ratios, measured in the same run.

use std::time::{Duration, Instant};

use drydock::{Env, EnvBuilder, Postgres, Redis};

const ROUNDS: usize = 5;

/// A named way to describe an environment.
type Case = (&'static str, fn() -> EnvBuilder);

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
async fn main() -> drydock::Result<()> {
    let cases: [Case; 3] = [
        ("postgres", || {
            Env::builder().with_postgres(Postgres::default())
        }),
        ("redis", || Env::builder().with_redis(Redis::default())),
        ("both", || {
            Env::builder()
                .with_postgres(Postgres::default())
                .with_redis(Redis::default())
        }),
    ];
    // One unmeasured start warms the engine's caches (image layers, network setup).
    time_start(cases[2].1()).await?;

    let mut samples: [Vec<Duration>; 3] = Default::default();
    // Interleaved, so drift of the machine affects every case alike.
    for _ in 0..ROUNDS {
        for (i, (_, builder)) in cases.iter().enumerate() {
            samples[i].push(time_start(builder()).await?);
        }
    }
    println!("request to ready, {ROUNDS} rounds each, in ms:   median      min      max");
    let mut medians = [Duration::ZERO; 3];
    for (i, (name, _)) in cases.iter().enumerate() {
        let (min, max) = (
            samples[i].iter().min().copied().unwrap_or_default(),
            samples[i].iter().max().copied().unwrap_or_default(),
        );
        medians[i] = median(samples[i].clone());
        println!(
            "  {name:<39} {:>8} {:>8} {:>8}",
            medians[i].as_millis(),
            min.as_millis(),
            max.as_millis()
        );
    }
    let [postgres, redis, both] = medians;
    println!(
        "both / slower of the two = {:.2}   both / sum of the two = {:.2}",
        both.as_secs_f64() / postgres.max(redis).as_secs_f64(),
        both.as_secs_f64() / (postgres + redis).as_secs_f64(),
    );
    Ok(())
}
