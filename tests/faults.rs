//! Faults on real dependencies, per test: a slice's PostgreSQL, Redis and Kafka reached through
//! proxies of its own, while other tests on the same shared servers see nothing.

use std::time::{Duration, Instant};

use drydock::{fault::Toxic, Env, EnvBuilder, Kafka, Postgres, Redis, TestResult};
use rdkafka::producer::FutureRecord;

const GRACE: Duration = Duration::from_secs(2);

fn shared() -> EnvBuilder {
    Env::builder()
        .with_postgres(Postgres::default())
        .with_redis(Redis::default())
        .grace_period(GRACE)
}

/// The application code under test: retries a query on connection errors, with a short pause.
async fn with_retries(pool: &sqlx::PgPool, attempts: u32) -> Result<(i32, u32), sqlx::Error> {
    let mut failures = 0;
    loop {
        match sqlx::query_scalar::<_, i32>("SELECT 41 + 1")
            .fetch_one(pool)
            .await
        {
            Ok(answer) => return Ok((answer, failures)),
            Err(_) if failures + 1 < attempts => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[tokio::test]
async fn a_retry_loop_survives_resets_of_its_own_slice_and_recovers() -> TestResult {
    let slice = shared().attach().await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(slice.postgres()?.connect_options())
        .await?;
    assert_eq!(with_retries(&pool, 1).await?.0, 42);

    // Every connection is reset at once while the toxic is in place.
    let resets = slice
        .fault("postgres")?
        .add(Toxic::reset_peer(Duration::ZERO))?;
    let failed = with_retries(&pool, 3).await;
    assert!(failed.is_err(), "resets reach the application: {failed:?}");

    // Removed after a moment, as a flaky network recovers: the retry loop gets through.
    let remover = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(resets);
    });
    let (answer, failures) = with_retries(&pool, 100).await?;
    remover.await?;
    assert_eq!(answer, 42);
    assert!(failures > 0, "it had to retry");
    Ok(())
}

#[tokio::test]
async fn a_fault_in_one_slice_leaves_a_concurrent_slice_untouched() -> TestResult {
    let (faulty, healthy) = tokio::try_join!(shared().attach(), shared().attach())?;
    assert_eq!(
        faulty.instance_id(),
        healthy.instance_id(),
        "the same shared servers"
    );
    let _down = faulty.fault("postgres")?.down();
    let _slow = faulty
        .fault("redis")?
        .add(Toxic::latency(Duration::from_secs(2)))?;

    let started = Instant::now();
    let pool = healthy.postgres()?.pool().await?;
    let answer: i32 = sqlx::query_scalar("SELECT 7").fetch_one(&pool).await?;
    let mut redis = healthy.redis()?.connection_manager().await?;
    let pong: String = redis::cmd("PING").query_async(&mut redis).await?;
    assert_eq!((answer, pong.as_str()), (7, "PONG"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let refused = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_with(faulty.postgres()?.connect_options())
        .await;
    assert!(refused.is_err(), "the faulty slice's own link is down");
    Ok(())
}

#[tokio::test]
async fn a_redis_timeout_fault_fails_a_command_within_the_clients_deadline() -> TestResult {
    let slice = shared().attach().await?;
    let client = slice.redis()?.client()?;
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_millis(500)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut conn)
        .await?;

    let _stuck = slice.fault("redis")?.add(Toxic::timeout(Duration::ZERO))?;
    let started = Instant::now();
    let outcome: redis::RedisResult<String> =
        redis::cmd("GET").arg("k").query_async(&mut conn).await;
    let took = started.elapsed();
    assert!(outcome.is_err(), "{outcome:?}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
    Ok(())
}

fn kafka() -> EnvBuilder {
    Env::builder()
        .with_kafka(Kafka::default())
        .grace_period(GRACE)
}

#[tokio::test]
async fn kafka_latency_delays_every_connection_the_client_opens() -> TestResult {
    let slice = kafka().attach().await?;
    let kafka = slice.kafka()?;
    let topic = kafka.create_topic("slow", 1).await?;
    kafka.produce(&topic, "warm", b"up", &[]).await?;
    let proxy = slice.fault("kafka")?;
    let before = proxy.traffic();

    let _slow = proxy.add(Toxic::latency(Duration::from_millis(300)))?;
    let started = Instant::now();
    kafka
        .produce(&topic, "k", b"through the proxy", &[])
        .await?;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    // A fresh client: bootstrap, then the broker connection Metadata names — the proxy, too.
    let producer = kafka.producer()?;
    let started = Instant::now();
    producer
        .send(
            FutureRecord::to(&topic).key("k2").payload("fresh"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "two round trips at least: {:?}",
        started.elapsed()
    );
    let after = proxy.traffic();
    assert!(
        after.connections >= before.connections + 2,
        "{before} → {after}"
    );
    Ok(())
}

#[tokio::test]
async fn a_producer_with_retries_delivers_after_the_link_comes_back() -> TestResult {
    let slice = kafka().attach().await?;
    let kafka = slice.kafka()?;
    let topic = kafka.create_topic("outage", 1).await?;
    kafka.produce(&topic, "before", b"1", &[]).await?;

    let down = slice.fault("kafka")?.down();
    let restorer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(down);
    });
    // The slice's producer retries within its 10 s delivery bound.
    kafka.produce(&topic, "during", b"2", &[]).await?;
    restorer.await?;
    let consumer = kafka.subscribe("check", &[&topic])?;
    let received = kafka.consume(&consumer, 2, Duration::from_secs(20)).await?;
    let keys: Vec<_> = received.iter().filter_map(|m| m.key_str()).collect();
    assert_eq!(keys, ["before", "during"]);
    Ok(())
}

#[tokio::test]
async fn a_consumer_waits_through_a_broker_outage_for_its_message() -> TestResult {
    let slice = kafka().attach().await?;
    let kafka = slice.kafka()?;
    let topic = kafka.create_topic("outage", 1).await?;
    kafka.produce(&topic, "before", b"1", &[]).await?;
    let consumer = kafka.subscribe("reader", &[&topic])?;
    kafka.consume(&consumer, 1, Duration::from_secs(20)).await?;

    // The broker unreachable for 2 s: the consumer's connections are cut and refused, and
    // librdkafka reports that (transport failure, all brokers down) while it reconnects.
    let down = slice.fault("kafka")?.down();
    let producer = kafka.clone();
    let (topic_name, started) = (topic.clone(), std::time::Instant::now());
    let restorer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(down);
        producer.produce(&topic_name, "after", b"2", &[]).await
    });
    // A wait that ends inside the outage says what the consumer went through.
    let during = kafka.consume(&consumer, 1, Duration::from_secs(1)).await;
    match &during {
        Err(e @ drydock::Error::NoMessage { reported, .. }) => assert!(
            !reported.is_empty() && e.to_string().contains("reported meanwhile"),
            "{e}"
        ),
        other => panic!("expected no message, with what the consumer reported: {other:?}"),
    }
    // Waiting through the outage: what librdkafka reports meanwhile is not the end of it.
    let received = kafka.consume(&consumer, 1, Duration::from_secs(20)).await?;
    assert_eq!(received[0].key_str(), Some("after"));
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    restorer.await??;
    Ok(())
}

#[tokio::test]
async fn owned_postgres_restarted_mid_test_the_pool_reconnects_and_the_schema_is_back() -> TestResult
{
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("1_items.sql"),
        "CREATE TABLE items (name text);",
    )?;
    let env = Env::builder()
        .with_postgres(Postgres::default().migrations(dir.path()))
        .start()
        .await?;
    let pool = env.postgres()?.pool().await?;
    sqlx::query("INSERT INTO items VALUES ('before')")
        .execute(&pool)
        .await?;
    let url = env.postgres()?.url();

    env.outage("postgres")?.restart().await?;
    // Same handle and URL; the container came back on another port behind the proxy.
    assert_eq!(env.postgres()?.url(), url);
    let mut answer = None;
    for _ in 0..20 {
        // The pool finds its old connections dead and opens new ones.
        match sqlx::query_scalar::<_, i64>("SELECT count(*) FROM items")
            .fetch_one(&pool)
            .await
        {
            Ok(n) => {
                answer = Some(n);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(answer, Some(0), "the schema again, the rows gone (tmpfs)");
    Ok(())
}

#[tokio::test]
async fn owned_redis_paused_stops_answering_and_unpaused_answers_again() -> TestResult {
    let env = Env::builder().with_redis(Redis::default()).start().await?;
    let mut redis = env.redis()?.connection_manager().await?;
    let _: () = redis::cmd("SET")
        .arg("kept")
        .arg("yes")
        .query_async(&mut redis)
        .await?;
    let outage = env.outage("redis")?;
    outage.pause().await?;
    let frozen = tokio::time::timeout(
        Duration::from_secs(2),
        redis::cmd("PING").query_async::<String>(&mut redis),
    )
    .await;
    // No answer: our bound or the client's own response timeout ran out.
    assert!(
        !matches!(frozen, Ok(Ok(_))),
        "a paused server answered: {frozen:?}"
    );
    outage.unpause().await?;
    let kept: String = redis::cmd("GET")
        .arg("kept")
        .query_async(&mut redis)
        .await?;
    assert_eq!(kept, "yes", "pause keeps the data");
    Ok(())
}

#[tokio::test]
async fn a_container_on_the_network_reaches_redis_through_the_slices_proxy() -> TestResult {
    let slice = shared().attach().await?;
    let route = slice.network_route("redis").await?;
    let (host, port) = route.rsplit_once(':').ok_or("host:port")?;
    let image = std::env::var("DRYDOCK_IMAGE_REDIS").unwrap_or_else(|_| "redis:7-alpine".into());
    let labels = std::collections::HashMap::from([(
        "drydock.instance".to_string(),
        slice.instance_id().to_string(),
    )]);
    let password = slice.redis()?.server().password().to_owned();
    let ping = [
        "redis-cli",
        "-h",
        host,
        "-p",
        port,
        "--no-auth-warning",
        "-a",
        &password,
        "PING",
    ];
    let ran = drydock_tests::run_on_network(
        &image,
        slice.network(),
        labels.clone(),
        &ping,
        Duration::from_secs(30),
    )
    .await?;
    assert!(ran.output.contains("PONG"), "{ran:?}");

    // The slice's faults reach the container too.
    let proxy = slice.fault("redis")?;
    let before = proxy.traffic().connections;
    let _down = proxy.down();
    let ran = drydock_tests::run_on_network(
        &image,
        slice.network(),
        labels,
        &ping,
        Duration::from_secs(30),
    )
    .await?;
    assert!(
        !ran.output.contains("PONG"),
        "through a downed link: {ran:?}"
    );
    assert!(before >= 1, "the first call went through the proxy");
    Ok(())
}

/// On this machine the engine's bridge is local: a proxy, an owned environment's or a shared
/// slice's (from the keeper's shortcuts), connects to the container itself, not through the
/// published port, and what it forwards arrives.
#[tokio::test]
async fn proxies_reach_containers_at_their_bridge_address() -> TestResult {
    let owned = Env::builder().with_redis(Redis::default()).start().await?;
    let slice = shared().attach().await?;
    for (what, proxy, redis) in [
        ("owned", owned.fault("redis")?, owned.redis()?),
        ("slice", slice.fault("redis")?, slice.redis()?),
    ] {
        let (upstream, connects_to) = (proxy.upstream(), proxy.connects_to());
        assert!(upstream.starts_with("127.0.0.1:"), "{what}: {upstream}");
        assert!(
            !connects_to.starts_with("127.") && connects_to.ends_with(":6379"),
            "{what}: connects to {connects_to}, upstream {upstream}"
        );
        let mut connection = redis.connection_manager().await?;
        let pong: String = redis::cmd("PING").query_async(&mut connection).await?;
        assert_eq!(pong, "PONG", "{what}");
        assert!(
            proxy.traffic().bytes_downstream > 0,
            "{what}: through the proxy"
        );
    }
    owned.teardown().await?;
    Ok(())
}
