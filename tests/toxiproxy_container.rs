//! Toxiproxy in a container on the environment's network, driven through its HTTP API: Redis
//! reached through it from this process and from another container, with a latency toxic.

use std::time::{Duration, Instant};

use drydock::{Env, Redis, TestResult, Toxiproxy, ToxiproxyEndpoint};
use serde_json::json;

async fn ping(address: &str, password: &str) -> TestResult<Duration> {
    let client = redis::Client::open(format!("redis://:{password}@{address}/0"))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let started = Instant::now();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    assert_eq!(pong, "PONG");
    Ok(started.elapsed())
}

#[tokio::test]
async fn redis_through_a_toxiproxy_container_gets_its_toxics() -> TestResult {
    let env = Env::builder()
        .with_redis(Redis::default())
        .with_service(Toxiproxy::default())
        .start()
        .await?;
    let toxiproxy: &ToxiproxyEndpoint = env.get::<Toxiproxy>()?;
    let password = env.redis()?.server().password().to_owned();
    let api = reqwest::Client::new();
    let version = api
        .get(format!("{}/version", toxiproxy.api_url()))
        .send()
        .await?;
    assert!(version.status().is_success());

    // A proxy in the container, to Redis by its name on the network.
    let created = api
        .post(format!("{}/proxies", toxiproxy.api_url()))
        .json(&json!({"name": "redis", "listen": "0.0.0.0:8666", "upstream": "redis:6379"}))
        .send()
        .await?;
    assert_eq!(created.status(), 201, "{}", created.text().await?);
    let through = toxiproxy.proxy_address(8666)?;
    assert!(ping(&through, &password).await? < Duration::from_millis(200));

    let toxic = api
        .post(format!("{}/proxies/redis/toxics", toxiproxy.api_url()))
        .json(&json!({"type": "latency", "stream": "downstream", "attributes": {"latency": 300}}))
        .send()
        .await?;
    assert!(toxic.status().is_success(), "{}", toxic.text().await?);
    assert!(ping(&through, &password).await? >= Duration::from_millis(300));

    // Another container on the network reaches it by name, with the toxic.
    let image = std::env::var("DRYDOCK_IMAGE_REDIS").unwrap_or_else(|_| "redis:7-alpine".into());
    let labels = std::collections::HashMap::from([(
        "drydock.instance".to_string(),
        env.instance_id().to_string(),
    )]);
    let internal = toxiproxy.internal_address(8666);
    let (host, port) = internal.rsplit_once(':').ok_or("host:port")?;
    let ran = drydock_tests::run_on_network(
        &image,
        env.network(),
        labels,
        &[
            "redis-cli",
            "-h",
            host,
            "-p",
            port,
            "--no-auth-warning",
            "-a",
            &password,
            "PING",
        ],
        Duration::from_secs(30),
    )
    .await?;
    assert!(ran.output.contains("PONG"), "{ran:?}");

    // Duplicates are refused in Toxiproxy's shape.
    let duplicate = api
        .post(format!("{}/proxies", toxiproxy.api_url()))
        .json(&json!({"name": "redis", "listen": "0.0.0.0:8667", "upstream": "redis:6379"}))
        .send()
        .await?;
    assert_eq!(duplicate.status(), 409);
    let body: serde_json::Value = duplicate.json().await?;
    assert_eq!(body["status"], 409, "{body}");
    assert!(body["error"].as_str().is_some(), "{body}");
    Ok(())
}
