//! Kafka: a real Kafka-protocol broker in a container, topics of each test's own.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use drydock::{Env, Error, Kafka, KafkaFlavour, KafkaServer, KafkaSlice};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn broker() -> drydock::Result<Env> {
    Env::builder().with_kafka(Kafka::default()).start().await
}

#[tokio::test]
async fn produce_and_consume_keep_keys_and_headers_across_partitions() -> TestResult {
    let env = broker().await?;
    let kafka = env.kafka()?.slice();
    let topic = kafka.create_topic("orders", 3).await?;
    let producer = kafka.producer()?;
    let mut partitions = BTreeSet::new();
    for i in 0..12 {
        let (key, payload) = (format!("key-{i}"), format!("order {i}"));
        let record = rdkafka::producer::FutureRecord::to(&topic)
            .key(&key)
            .payload(&payload)
            .partition(i % 3)
            .headers(
                rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                    key: "trace",
                    value: Some(&format!("t-{i}")),
                }),
            );
        let delivery = producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
        partitions.insert(delivery.partition);
    }
    assert_eq!(partitions, BTreeSet::from([0, 1, 2]));

    let consumer = kafka.subscribe("reader", &[&topic])?;
    let received = kafka
        .consume(&consumer, 12, Duration::from_secs(30))
        .await?;
    let mut seen = BTreeSet::new();
    for message in &received {
        let key = message.key_str().ok_or("a message without key")?;
        let i: i32 = key.trim_start_matches("key-").parse()?;
        assert_eq!(message.partition, i % 3, "{key} on its partition");
        assert_eq!(message.header("trace"), Some(format!("t-{i}").as_str()));
        assert_eq!(
            message.payload.as_deref(),
            Some(format!("order {i}").as_bytes())
        );
        seen.insert(i);
    }
    assert_eq!(seen.len(), 12, "every message once: {received:?}");
    Ok(())
}

#[tokio::test]
async fn json_helpers_round_trip() -> TestResult {
    let env = broker().await?;
    let kafka = env.kafka()?.slice();
    let topic = kafka.create_topic("events", 1).await?;
    kafka
        .produce_json(
            &topic,
            "e-1",
            &serde_json::json!({"kind": "created", "n": 1}),
        )
        .await?;
    let consumer = kafka.subscribe("reader", &[&topic])?;
    let message = kafka
        .wait_for(&consumer, Duration::from_secs(20), |m| {
            m.key_str() == Some("e-1")
        })
        .await?;
    let value: serde_json::Value = message.json()?;
    assert_eq!(value["kind"], "created");
    Ok(())
}

#[tokio::test]
async fn a_consumer_group_of_two_shares_the_partitions() -> TestResult {
    use rdkafka::consumer::Consumer;

    let env = broker().await?;
    let kafka = env.kafka()?.slice();
    let topic = kafka.create_topic("work", 4).await?;
    let first = kafka.subscribe("workers", &[&topic])?;
    let second = kafka.subscribe("workers", &[&topic])?;
    // Both members poll until the group has settled on an assignment that covers all partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (a, b) = loop {
        let _ = tokio::time::timeout(Duration::from_millis(200), first.recv()).await;
        let _ = tokio::time::timeout(Duration::from_millis(200), second.recv()).await;
        let partitions = |c: &drydock::KafkaConsumer| -> BTreeSet<i32> {
            c.assignment()
                .map(|a| a.elements().iter().map(|e| e.partition()).collect())
                .unwrap_or_default()
        };
        let (a, b) = (partitions(&first), partitions(&second));
        if !a.is_empty() && !b.is_empty() && a.len() + b.len() == 4 {
            break (a, b);
        }
        assert!(
            Instant::now() < deadline,
            "no shared assignment: {a:?} / {b:?}"
        );
    };
    assert!(a.is_disjoint(&b), "{a:?} and {b:?} overlap");
    assert_eq!(a.union(&b).count(), 4);

    for i in 0..4 {
        kafka.produce(&topic, &format!("k{i}"), b"job", &[]).await?;
    }
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut by = (0, 0);
    while got < 4 && Instant::now() < deadline {
        tokio::select! {
            Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), first.recv()) => { by.0 += 1; got += 1; }
            Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), second.recv()) => { by.1 += 1; got += 1; }
            else => {}
        }
    }
    assert_eq!(got, 4, "received {by:?}");
    Ok(())
}

#[tokio::test]
async fn waiting_for_a_message_that_never_comes_lists_what_arrived() -> TestResult {
    let env = broker().await?;
    let kafka = env.kafka()?.slice();
    let topic = kafka.create_topic("noise", 1).await?;
    kafka.produce(&topic, "other", b"not it", &[]).await?;
    let consumer = kafka.subscribe("reader", &[&topic])?;
    let bound = Duration::from_secs(5);
    let started = Instant::now();
    let outcome = kafka
        .wait_for(&consumer, bound, |m| m.key_str() == Some("wanted"))
        .await;
    let elapsed = started.elapsed();
    let Err(error) = outcome else {
        panic!("found a message that was never sent");
    };
    let message = error.to_string();
    assert!(matches!(error, Error::NoMessage { .. }), "{message}");
    assert!(message.contains("key=other payload=not it"), "{message}");
    assert!(elapsed < bound + Duration::from_secs(2), "took {elapsed:?}");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_broker_is_a_clear_error_not_a_hang() -> TestResult {
    // Nothing listens on port 1 of loopback.
    let kafka: KafkaSlice = KafkaServer::external("127.0.0.1:1").slice();
    let started = Instant::now();
    let produced = kafka.produce(&kafka.topic("t"), "k", b"v", &[]).await;
    let created = kafka.create_topic("t", 1).await;
    let elapsed = started.elapsed();
    for outcome in [produced.map(|_| ()), created.map(|_| ())] {
        let Err(error) = outcome else {
            panic!("an unreachable broker accepted a request");
        };
        assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    }
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    Ok(())
}

#[tokio::test]
async fn parallel_slices_of_a_shared_broker_stay_isolated() -> TestResult {
    let spec = Env::builder()
        .with_kafka(Kafka::default())
        .grace_period(Duration::from_secs(2));
    let (a, b) = tokio::join!(spec.clone().attach(), spec.attach());
    let (a, b) = (a?, b?);
    assert_eq!(a.instance_id(), b.instance_id(), "one broker");
    let (ka, kb) = (a.kafka()?, b.kafka()?);
    assert_ne!(ka.topic("events"), kb.topic("events"));
    let (ta, tb) = tokio::try_join!(ka.create_topic("events", 2), kb.create_topic("events", 2))?;
    ka.produce(&ta, "from-a", b"a", &[]).await?;
    kb.produce(&tb, "from-b", b"b", &[]).await?;
    let ca = ka.subscribe("reader", &[&ta])?;
    let cb = kb.subscribe("reader", &[&tb])?;
    let (ra, rb) = tokio::try_join!(
        ka.consume(&ca, 1, Duration::from_secs(20)),
        kb.consume(&cb, 1, Duration::from_secs(20))
    )?;
    assert_eq!(ra[0].key_str(), Some("from-a"));
    assert_eq!(rb[0].key_str(), Some("from-b"));
    // Nothing more arrives for either: the other's message is on another topic.
    let more = ka.consume(&ca, 1, Duration::from_secs(2)).await;
    assert!(matches!(more, Err(Error::NoMessage { .. })), "{more:?}");
    Ok(())
}

#[tokio::test]
async fn the_tansu_flavour_serves_through_its_own_contract() -> TestResult {
    let env = Env::builder()
        .with_kafka(Kafka::flavour(KafkaFlavour::Tansu))
        .start()
        .await?;
    let server = env.kafka()?;
    assert_eq!(
        server.internal_bootstrap_servers(),
        None,
        "tansu serves one listener"
    );
    let kafka = server.slice();
    let topic = kafka.create_topic("t", 2).await?;
    kafka.produce(&topic, "k", b"tansu", &[]).await?;
    let consumer = kafka.subscribe("reader", &[&topic])?;
    let received = kafka.consume(&consumer, 1, Duration::from_secs(20)).await?;
    assert_eq!(received[0].payload.as_deref(), Some(&b"tansu"[..]));
    Ok(())
}

#[tokio::test]
async fn the_apache_flavour_advertises_a_listener_for_the_network() -> TestResult {
    let env = broker().await?;
    let server = env.kafka()?;
    let internal = server
        .internal_bootstrap_servers()
        .ok_or("no in-network listener")?;
    assert!(internal.starts_with(env.network()), "{internal}");
    assert!(internal.ends_with(":9093"), "{internal}");
    assert!(server.bootstrap_servers().starts_with("127.0.0.1:"));
    assert_eq!(
        env.vars()
            .get("KAFKA_BOOTSTRAP_SERVERS")
            .map(String::as_str),
        Some(server.bootstrap_servers())
    );
    Ok(())
}

#[tokio::test]
async fn a_released_slice_takes_its_topics_with_it() -> TestResult {
    let spec = Env::builder()
        .with_kafka(Kafka::default())
        .grace_period(Duration::from_secs(2));
    let observer = spec.clone().attach().await?;
    let slice = spec.attach().await?;
    let topic = slice.kafka()?.create_topic("temporary", 2).await?;
    let topics =
        |slice: &drydock::Slice| -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
            let admin = slice.kafka()?.admin()?;
            let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(5))?;
            Ok(metadata
                .topics()
                .iter()
                .map(|t| t.name().to_string())
                .collect())
        };
    assert!(topics(&observer)?.contains(&topic), "created");
    drop(slice);
    let deadline = Instant::now() + Duration::from_secs(20);
    while topics(&observer)?.contains(&topic) {
        assert!(Instant::now() < deadline, "{topic} outlived its slice");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_group_rejoining_resumes_at_its_committed_offsets() -> TestResult {
    use rdkafka::consumer::{CommitMode, Consumer};

    let env = broker().await?;
    let kafka = env.kafka()?.slice();
    let topic = kafka.create_topic("ledger", 2).await?;
    let producer = kafka.producer()?;
    for i in 0..8 {
        let key = format!("k{i}");
        let record = rdkafka::producer::FutureRecord::to(&topic)
            .key(&key)
            .payload("entry")
            .partition(i % 2);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    // The first member reads every message but commits only the first two of each partition
    // (no auto-commit, which would commit what it read on close). It is built as a user builds
    // their own consumer: drydock's settings, one changed, and the `FastStart` context.
    let mut config = kafka.consumer_config("auditors");
    config.set("enable.auto.commit", "false");
    let first: rdkafka::consumer::StreamConsumer<drydock::FastStart> =
        config.create_with_context(drydock::FastStart::from_config(&config))?;
    first.subscribe(&[&topic])?;
    kafka.consume(&first, 8, Duration::from_secs(20)).await?;
    let mut commit = rdkafka::TopicPartitionList::new();
    for partition in 0..2 {
        commit.add_partition_offset(&topic, partition, rdkafka::Offset::Offset(2))?;
    }
    first.commit(&commit, CommitMode::Sync)?;
    assert_eq!(
        first
            .committed(Duration::from_secs(10))?
            .elements()
            .iter()
            .map(|e| e.offset())
            .collect::<Vec<_>>(),
        vec![rdkafka::Offset::Offset(2); 2]
    );
    // As a user ends a consumer of their own: `closing` first, so the drop returns once the
    // consumer has left the group instead of after rdkafka's fixed 100 ms.
    first.context().closing();
    drop(first);

    // A new member of the same group starts where the group committed, not at the beginning
    // (auto.offset.reset is earliest): offsets 2 and 3 of each partition, nothing before, and
    // nothing more.
    let second = kafka.subscribe("auditors", &[&topic])?;
    let resumed = kafka.consume(&second, 4, Duration::from_secs(20)).await?;
    let got: BTreeSet<(i32, i64)> = resumed.iter().map(|m| (m.partition, m.offset)).collect();
    assert_eq!(
        got,
        BTreeSet::from([(0, 2), (0, 3), (1, 2), (1, 3)]),
        "{resumed:?}"
    );
    let more = kafka.consume(&second, 1, Duration::from_secs(1)).await;
    assert!(matches!(more, Err(Error::NoMessage { .. })), "{more:?}");

    // A group that never committed starts at the beginning of each partition.
    let fresh = kafka.subscribe("newcomers", &[&topic])?;
    let from_start = kafka.consume(&fresh, 8, Duration::from_secs(20)).await?;
    assert_eq!(
        from_start.iter().filter(|m| m.offset == 0).count(),
        2,
        "{from_start:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_dropped_consumer_has_committed_and_left_when_the_drop_returns() -> TestResult {
    // drydock's consumer drop skips rdkafka's fixed 100 ms wait, but must still return only
    // after the close: the final auto-commit done, the group left. Each round's new member of
    // the same group therefore starts after what the last one read, never before it.
    let env = broker().await?;
    let kafka = env.kafka()?.slice();
    let topic = kafka.create_topic("roster", 1).await?;
    for round in 0..4 {
        let key = format!("k{round}");
        kafka.produce(&topic, &key, b"entry", &[]).await?;
        let consumer = kafka.subscribe("roster", &[&topic])?;
        let read = kafka.consume(&consumer, 1, Duration::from_secs(20)).await?;
        assert_eq!(
            read[0].key_str(),
            Some(key.as_str()),
            "round {round}: the new member resumes where the last one's close committed"
        );
        drop(consumer);
    }
    Ok(())
}

#[tokio::test]
async fn a_manual_assignment_reads_from_the_beginning_without_a_group() -> TestResult {
    let env = broker().await?;
    let kafka = env.kafka()?.slice();
    let topic = kafka.create_topic("archive", 2).await?;
    for partition in 0..2 {
        let record = rdkafka::producer::FutureRecord::to(&topic)
            .key("k")
            .payload("old")
            .partition(partition);
        kafka
            .producer()?
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    // Only partition 1, from its beginning: the message on partition 0 never arrives.
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 1, rdkafka::Offset::Beginning)?;
    let reader = kafka.assign("archivist", &assignment).await?;
    let got = kafka.consume(&reader, 1, Duration::from_secs(20)).await?;
    assert_eq!((got[0].partition, got[0].offset), (1, 0));
    let more = kafka.consume(&reader, 1, Duration::from_secs(1)).await;
    assert!(matches!(more, Err(Error::NoMessage { .. })), "{more:?}");
    Ok(())
}

#[tokio::test]
async fn a_consumer_dropped_after_its_slice_still_leaves_at_once() -> TestResult {
    // The consumer keeps its route to the broker past the slice, so its close (commit, leave
    // the group) is answered; without it, librdkafka waits seconds for a broker it cannot reach.
    let slice = Env::builder().with_kafka(Kafka::default()).attach().await?;
    let kafka = slice.kafka()?;
    let topic = kafka.create_topic("late", 1).await?;
    kafka.produce(&topic, "k", b"v", &[]).await?;
    let consumer = kafka.subscribe("late", &[&topic])?;
    kafka.consume(&consumer, 1, Duration::from_secs(20)).await?;
    drop(slice);
    // On a thread of its own, so that a drop that hangs fails the test instead of hanging it.
    let (dropped, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(consumer);
        let _ = dropped.send(());
    });
    let bound = Duration::from_secs(2);
    assert!(
        done.recv_timeout(bound).is_ok(),
        "the consumer dropped after its slice was not closed within {bound:?}"
    );
    Ok(())
}
