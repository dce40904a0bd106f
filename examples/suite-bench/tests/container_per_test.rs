//! Baseline of `scripts/bench-suite`: the same 100 tests, each starting its own four containers
//! with testcontainers-rs (PostgreSQL, Redis, Kafka, the stub) and running the 30 migrations —
//! the usual testcontainers pattern. The four start at once; each is ready when a real client
//! gets through (a login, `PING`, broker metadata, the stub's admin API), polled every 20 ms.
//! PostgreSQL gets drydock's settings (data on tmpfs, durability off), Kafka clients the settings
//! drydock hands out, so the two differ in how the services are provided, not in tuning.
//!
//! Images: `DRYDOCK_IMAGE_POSTGRES`, `DRYDOCK_IMAGE_REDIS`, `DRYDOCK_IMAGE_KAFKA` (the official
//! images without them; Kafka speaks tansu's contract, as the local stand-in image does) and
//! `drydock/stub:0.1.0`. Ports are published on 127.0.0.1 only.

mod common;

use std::{collections::HashMap, future::Future, net::TcpListener, time::Duration};

use common::{message_key, postgres_work, redis_work, stub_work, Steps, TestResult, CONSUME_BOUND};
use drydock::stub::StubServer;
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message,
};
use sqlx::Connection;
use testcontainers::{
    bollard::models::{HostConfig, PortBinding},
    core::{ContainerPort, IntoContainerPort, Mount},
    runners::AsyncRunner,
    ContainerAsync, ContainerRequest, GenericImage, ImageExt,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const READY_BOUND: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// `name:tag` from the variable, else the official image.
fn image(var: &str, official: &str) -> GenericImage {
    let reference = std::env::var(var).unwrap_or_else(|_| official.to_string());
    let (name, tag) = reference.rsplit_once(':').unwrap_or((&reference, "latest"));
    GenericImage::new(name, tag)
}

/// Publishes `ports` (container port, host port or 0 for any) on 127.0.0.1 only.
fn on_loopback(
    request: impl Into<ContainerRequest<GenericImage>>,
    ports: &[(u16, u16)],
) -> ContainerRequest<GenericImage> {
    let request: ContainerRequest<GenericImage> = request.into();
    let bindings: HashMap<String, Option<Vec<PortBinding>>> = ports
        .iter()
        .map(|(inside, outside)| {
            let host_port = if *outside == 0 {
                String::new()
            } else {
                outside.to_string()
            };
            (
                format!("{inside}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(host_port),
                }]),
            )
        })
        .collect();
    request
        .with_label("suite-bench", "container-per-test")
        .with_host_config_modifier(move |config: &mut HostConfig| {
            config.publish_all_ports = Some(false);
            config.port_bindings = Some(bindings.clone());
        })
}

/// Polls `attempt` until it succeeds, within [`READY_BOUND`].
async fn ready<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> Result<T, String> {
    let deadline = tokio::time::Instant::now() + READY_BOUND;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(format!("{what} not ready within {READY_BOUND:?}: {e}"))
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

type Started = (ContainerAsync<GenericImage>, String);

async fn postgres() -> Result<Started, Box<dyn std::error::Error + Send + Sync>> {
    let request = image("DRYDOCK_IMAGE_POSTGRES", "postgres:17-alpine")
        .with_exposed_port(5432.tcp())
        .with_env_var("POSTGRES_PASSWORD", "bench")
        .with_mount(Mount::tmpfs_mount("/var/lib/postgresql/data"))
        .with_cmd([
            "postgres",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]);
    let container = on_loopback(request, &[(5432, 0)]).start().await?;
    let port = container.get_host_port_ipv4(5432).await?;
    let url = format!("postgres://postgres:bench@127.0.0.1:{port}/postgres");
    ready("postgres", || sqlx::PgConnection::connect(&url)).await?;
    Ok((container, url))
}

async fn redis() -> Result<Started, Box<dyn std::error::Error + Send + Sync>> {
    let request = image("DRYDOCK_IMAGE_REDIS", "redis:7-alpine").with_exposed_port(6379.tcp());
    let container = on_loopback(request, &[(6379, 0)]).start().await?;
    let port = container.get_host_port_ipv4(6379).await?;
    let url = format!("redis://127.0.0.1:{port}/0");
    let client = redis::Client::open(url.as_str())?;
    ready("redis", || async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    })
    .await?;
    Ok((container, url))
}

/// The settings drydock's Kafka handles use (README, Kafka section).
fn kafka_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in [
        ("bootstrap.servers", bootstrap),
        ("fetch.wait.max.ms", "5"),
        ("linger.ms", "0"),
        ("reconnect.backoff.ms", "20"),
        ("retry.backoff.ms", "20"),
        ("socket.nagle.disable", "true"),
        ("fetch.error.backoff.ms", "20"),
        ("socket.timeout.ms", "10000"),
        ("reconnect.backoff.max.ms", "1000"),
    ] {
        config.set(key, value);
    }
    config
}

async fn kafka() -> Result<Started, Box<dyn std::error::Error + Send + Sync>> {
    // The broker advertises the host port, so it must be known before the start.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let request = image("DRYDOCK_IMAGE_KAFKA", "ghcr.io/tansu-io/tansu:0.6.0")
        .with_exposed_port(ContainerPort::Tcp(port))
        .with_env_var("LISTENER_URL", format!("tcp://0.0.0.0:{port}"))
        .with_env_var("ADVERTISED_LISTENER_URL", format!("tcp://127.0.0.1:{port}"))
        .with_env_var("STORAGE_ENGINE", "memory://tansu/")
        .with_env_var("CLUSTER_ID", "bench");
    let container = on_loopback(request, &[(port, port)]).start().await?;
    let bootstrap = format!("127.0.0.1:{port}");
    let admin: AdminClient<DefaultClientContext> = kafka_config(&bootstrap).create()?;
    let admin = std::sync::Arc::new(admin);
    ready("kafka", || {
        let admin = admin.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                admin
                    .inner()
                    .fetch_metadata(None, Duration::from_millis(500))
                    .map(|m| m.brokers().len())
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
            .and_then(|n| {
                if n > 0 {
                    Ok(())
                } else {
                    Err("no broker".into())
                }
            })
        }
    })
    .await?;
    Ok((container, bootstrap))
}

async fn stub() -> Result<Started, Box<dyn std::error::Error + Send + Sync>> {
    let request = image("DRYDOCK_IMAGE_STUB", "drydock/stub:0.1.0")
        .with_exposed_port(8080.tcp())
        .with_env_var("DRYDOCK_STUB_BIND", "0.0.0.0")
        .with_env_var("DRYDOCK_STUB_PORT", "8080");
    let container = on_loopback(request, &[(8080, 0)]).start().await?;
    let port = container.get_host_port_ipv4(8080).await?;
    let url = format!("http://127.0.0.1:{port}");
    ready("stub", || StubServer::connect(&url)).await?;
    Ok((container, url))
}

async fn in_own_containers(test: &'static str, quantity: i32) -> TestResult {
    let mut steps = Steps::start("container_per_test", test);
    let ((pg, database_url), (rd, redis_url), (kf, bootstrap), (st, stub_url)) =
        tokio::try_join!(postgres(), redis(), kafka(), stub())?;
    steps.step("containers");

    let db = sqlx::PgPool::connect(&database_url).await?;
    MIGRATOR.run(&db).await?;
    steps.step("migrate");

    postgres_work(&db, test, quantity).await?;
    steps.step("postgres");

    let mut redis = redis::Client::open(redis_url)?
        .get_connection_manager()
        .await?;
    redis_work(&mut redis, quantity).await?;
    steps.step("redis");

    let admin: AdminClient<DefaultClientContext> = kafka_config(&bootstrap).create()?;
    let topics = ["orders", "payments"];
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    for result in admin.create_topics(&new, &AdminOptions::new()).await? {
        result.map_err(|(topic, e)| format!("creating {topic}: {e}"))?;
    }
    let producer: FutureProducer = kafka_config(&bootstrap).create()?;
    for topic in topics {
        producer
            .send(
                FutureRecord::to(topic)
                    .key(&message_key(test, topic))
                    .payload(b"{\"quantity\":1}".as_slice()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    let consumer: StreamConsumer = kafka_config(&bootstrap)
        .set("group.id", "billing")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()?;
    consumer.subscribe(&topics)?;
    let mut keys = Vec::new();
    while keys.len() < 2 {
        let message = tokio::time::timeout(CONSUME_BOUND, consumer.recv()).await??;
        keys.extend(
            message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
        );
    }
    keys.sort();
    assert_eq!(
        keys,
        [message_key(test, "orders"), message_key(test, "payments")]
    );
    steps.step("kafka");

    stub_work(&StubServer::connect(&stub_url).await?, &stub_url, test).await?;
    steps.step("stub");

    // What dropping them does, awaited here so that the test's time includes it.
    drop((db, redis, consumer, producer, admin));
    tokio::try_join!(pg.rm(), rd.rm(), kf.rm(), st.rm())?;
    steps.step("teardown");
    steps.finish()
}

macro_rules! test_in_own_containers {
    ($name:ident, $quantity:expr) => {
        #[tokio::test]
        #[ignore = "a baseline for scripts/bench-suite"]
        async fn $name() -> TestResult {
            in_own_containers(concat!(module_path!(), "::", stringify!($name)), $quantity).await
        }
    };
}

hundred!(test_in_own_containers);
