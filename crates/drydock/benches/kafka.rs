//! Kafka: broker ready time, topic-slice acquisition, and the per-test latencies the
//! performance targets name — topic created and visible, a real consumer group's first message
//! after subscribing, produce-to-consume on a running consumer — each against its target.
//!
//! ```text
//! scripts/setup && . scripts/env && cargo bench -p drydock --features kafka --bench kafka
//! ```

use std::time::{Duration, Instant};

use drydock::{Env, EnvBuilder, Kafka};

const COMMAND: &str = ". scripts/env && cargo bench -p drydock --features kafka --bench kafka";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints p50/p95/max, and against `target` (a p50 bound) whether it was met.
fn report(what: &str, mut samples: Vec<Duration>, target: Option<Duration>) {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    let verdict = match target {
        Some(target) if p50 <= target => format!("  target p50 ≤ {:.0} ms: met", ms(target)),
        Some(target) => format!("  target p50 ≤ {:.0} ms: MISSED", ms(target)),
        None => String::new(),
    };
    println!(
        "{what:<48} n={:<4} p50 {:>8.2} ms  p95 {:>8.2} ms  max {:>8.2} ms{verdict}",
        samples.len(),
        ms(p50),
        ms(percentile(&samples, 0.95)),
        ms(samples[samples.len() - 1])
    );
}

fn spec() -> EnvBuilder {
    Env::builder().with_kafka(Kafka::default())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("reproduce: {COMMAND}");
    println!(
        "image: {}",
        std::env::var("DRYDOCK_IMAGE_KAFKA").unwrap_or_else(|_| "apache/kafka:3.9.1".into())
    );
    let mut ready = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let env = spec().start().await?;
        ready.push(started.elapsed());
        env.teardown().await?;
    }
    report("broker ready, from request", ready, None);

    let holder = spec().attach().await?; // the shared broker stays up throughout
    let (mut acquisitions, mut creations, mut sends) = (Vec::new(), Vec::new(), Vec::new());
    let (mut first_messages, mut round_trips, mut assigned) = (Vec::new(), Vec::new(), Vec::new());
    let (mut group_drops, mut assigned_drops, mut plain_drops) =
        (Vec::new(), Vec::new(), Vec::new());
    for i in 0..50 {
        let started = Instant::now();
        let slice = spec().attach().await?;
        let kafka = slice.kafka()?;
        let topic = kafka.create_topic("events", 1).await?;
        acquisitions.push(started.elapsed());

        // A second topic on the same slice: the creation alone, until metadata shows it.
        let started = Instant::now();
        let other = kafka.create_topic("more", 1).await?;
        creations.push(started.elapsed());

        kafka.produce(&topic, "k", b"first", &[]).await?;
        let started = Instant::now();
        kafka.produce(&other, "k", b"first", &[]).await?;
        sends.push(started.elapsed());

        // A real consumer group (subscribe: coordinator, join, sync, committed offsets), from
        // the subscription to the already-produced message.
        let started = Instant::now();
        let consumer = kafka.subscribe(&format!("group-{i}"), &[&topic])?;
        kafka.consume(&consumer, 1, Duration::from_secs(30)).await?;
        first_messages.push(started.elapsed());

        // The running consumer: from the send to its arrival.
        for n in 0..5 {
            let started = Instant::now();
            kafka
                .produce(&topic, &format!("k{n}"), b"next", &[])
                .await?;
            kafka.consume(&consumer, 1, Duration::from_secs(30)).await?;
            round_trips.push(started.elapsed());
        }

        // Dropping the group consumer: it commits, leaves its group and is gone when the drop
        // returns (rdkafka's own drop waits out a fixed 100 ms poll on top).
        let started = Instant::now();
        drop(consumer);
        group_drops.push(started.elapsed());

        // The baseline: the same consumer dropped as rdkafka drops it (no `closing` first).
        let config = kafka.consumer_config(&format!("plain-{i}"));
        let plain: drydock::rdkafka::consumer::StreamConsumer<drydock::FastStart> =
            config.create_with_context(drydock::FastStart::from_config(&config))?;
        drydock::rdkafka::consumer::Consumer::subscribe(&plain, &[&topic])?;
        kafka.consume(&plain, 1, Duration::from_secs(30)).await?;
        let started = Instant::now();
        drop(plain);
        plain_drops.push(started.elapsed());

        // Manual assignment from the beginning, for comparison.
        let started = Instant::now();
        let mut assignment = drydock::rdkafka::TopicPartitionList::new();
        assignment.add_partition_offset(&other, 0, drydock::rdkafka::Offset::Beginning)?;
        let reader = kafka.assign(&format!("reader-{i}"), &assignment).await?;
        kafka.consume(&reader, 1, Duration::from_secs(30)).await?;
        assigned.push(started.elapsed());
        let started = Instant::now();
        drop(reader);
        assigned_drops.push(started.elapsed());
    }
    let ms = Duration::from_millis;
    report("topic slice (attach + create a topic)", acquisitions, None);
    report("topic created and visible", creations, Some(ms(10)));
    report("produce (the slice's reused producer)", sends, None);
    report(
        "group consumer: subscribe to first message",
        first_messages,
        Some(ms(50)),
    );
    report(
        "produce to consume (running consumer)",
        round_trips,
        Some(ms(20)),
    );
    report("manual assign(Beginning) to first message", assigned, None);
    report(
        "group consumer dropped (committed, left)",
        group_drops,
        None,
    );
    report(
        "group consumer dropped as rdkafka drops it",
        plain_drops,
        None,
    );
    report("manually assigned consumer dropped", assigned_drops, None);
    drop(holder);
    Ok(())
}
