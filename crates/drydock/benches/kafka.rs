//! Kafka: broker ready time, topic-slice acquisition, first-message latency of a new group.
//!
//! ```text
//! scripts/setup && . scripts/env && cargo bench -p drydock --bench kafka
//! ```

use std::time::{Duration, Instant};

use drydock::{Env, EnvBuilder, Kafka};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what:<44} n={:<4} p50 {:>8.2} ms  p95 {:>8.2} ms  max {:>8.2} ms",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.95)),
        ms(samples[samples.len() - 1])
    );
}

fn spec() -> EnvBuilder {
    Env::builder().with_kafka(Kafka::default())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut ready = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let env = spec().start().await?;
        ready.push(started.elapsed());
        env.teardown().await?;
    }
    report("broker ready, from request", ready);

    let holder = spec().attach().await?; // the shared broker stays up throughout
    let mut acquisitions = Vec::new();
    let mut first_messages = Vec::new();
    for i in 0..50 {
        let started = Instant::now();
        let slice = spec().attach().await?;
        let kafka = slice.kafka()?;
        let topic = kafka.create_topic("events", 1).await?;
        acquisitions.push(started.elapsed());

        kafka.produce(&topic, "k", b"first", &[]).await?;
        let started = Instant::now();
        let consumer = kafka.subscribe(&format!("group-{i}"), &[&topic])?;
        kafka.consume(&consumer, 1, Duration::from_secs(30)).await?;
        first_messages.push(started.elapsed());
    }
    report("topic slice (attach + create a topic)", acquisitions);
    report("first message of a new consumer group", first_messages);
    drop(holder);
    Ok(())
}
