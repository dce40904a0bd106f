//! What every test of the shop shares: the environment (PostgreSQL with the shop's migrations,
//! Redis, Kafka, the payment provider's stub), a running shop wired to the test's slice, stub
//! fixtures in the shapes of `payment-api.yaml`, and bounded waiting.

#![allow(dead_code)] // each test file uses part of this

use std::{
    future::Future,
    io::Write,
    time::{Duration, Instant},
};

use drydock::{
    stub::{BodyPattern, Response, StringMatcher, Stub, StubServer},
    Env, EnvBuilder, HttpStub, Kafka, KafkaConsumer, KafkaSlice, Postgres, Received, Redis,
    Services, Slice,
};
use serde_json::{json, Value};
use shop::{config::*, Config, Shop};

pub type TestResult = drydock::TestResult;

/// The shop's dependencies, started once per run; every test gets a slice of each.
pub fn environment() -> EnvBuilder {
    Env::builder()
        .with_postgres(
            Postgres::default().migrations(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")),
        )
        .with_redis(Redis::default())
        .with_kafka(Kafka::default())
        .with_stub(HttpStub::default())
}

/// The stub service plays the payment provider: the name its fault proxy goes by.
pub const PAYMENT: &str = "stub";

/// Bounds for the tests' waits.
pub const EVENT_WAIT: Duration = Duration::from_secs(20);

/// The shop as a test runs it, and handles on everything around it.
pub struct TestShop {
    /// The running shop.
    pub shop: Shop,
    /// Its URL.
    pub url: String,
    /// An HTTP client for its API.
    pub http: reqwest::Client,
    /// The payment provider's stub (this slice's namespace), reached directly: the test's own
    /// calls to its admin API pass no fault of the slice and count in no proxy's traffic.
    pub payment: StubServer,
    /// This slice's Kafka.
    pub kafka: KafkaSlice,
    /// This slice's database, reached directly (as the Redis database and the stub's admin API
    /// below): the test's checks pass no fault of the slice and count in no proxy's traffic,
    /// which is the shop's alone.
    pub pool: sqlx::PgPool,
    /// This slice's Redis database.
    pub redis: drydock::redis::aio::ConnectionManager,
    /// The configuration the shop runs with.
    pub config: Config,
    metrics: TrafficRecorder,
}

/// The test configuration: the slice's URLs (so every fault of the slice reaches the shop),
/// short bounds, a breaker that stays out of the way unless a test is about it.
pub async fn config(slice: &Slice) -> Result<Config, Box<dyn std::error::Error + Send + Sync>> {
    let kafka = slice.kafka()?;
    let vars = slice.vars();
    let orders = kafka.create_topic("orders", 1).await?;
    let results = kafka.create_topic("payment-results", 1).await?;
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        database: DatabaseConfig {
            url: vars["DATABASE_URL"].clone(),
            max_connections: 5,
            acquire_timeout: Duration::from_secs(2),
        },
        redis: RedisConfig {
            url: vars["REDIS_URL"].clone(),
            timeout: Duration::from_millis(200),
            ttl: Duration::from_secs(60),
        },
        kafka: KafkaConfig::new(
            kafka.producer_config(),
            kafka.consumer_config("shop"),
            kafka.prefix(),
        ),
        payment: PaymentConfig {
            base_url: vars["STUB_URL"].clone(),
            api_key: "sk_test_shop".into(),
            timeout: Duration::from_millis(500),
            max_attempts: 3,
            backoff: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(3),
            breaker: BreakerConfig {
                failure_threshold: 10,
                open_for: Duration::from_secs(1),
            },
        },
    };
    config.kafka.outbox_poll = Duration::from_millis(50);
    assert_eq!(
        (
            config.kafka.orders_topic.as_str(),
            config.kafka.payment_results_topic.as_str()
        ),
        (orders.as_str(), results.as_str())
    );
    Ok(config)
}

impl TestShop {
    /// The shop with the test configuration.
    pub async fn start(
        slice: &Slice,
    ) -> Result<TestShop, Box<dyn std::error::Error + Send + Sync>> {
        TestShop::start_with(slice, |_| {}).await
    }

    /// The shop with the test configuration as `change` leaves it.
    pub async fn start_with(
        slice: &Slice,
        change: impl FnOnce(&mut Config),
    ) -> Result<TestShop, Box<dyn std::error::Error + Send + Sync>> {
        // The shop's logs in the test's output (shown when it fails), filtered by RUST_LOG.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut config = config(slice).await?;
        change(&mut config);
        let shop = Shop::start(config.clone()).await?;
        Ok(TestShop {
            url: shop.url(),
            shop,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()?,
            payment: slice.stub()?.direct().connect().await?,
            kafka: slice.kafka()?.clone(),
            pool: {
                let db = slice.postgres()?;
                db.server().direct().pool_for(db.database()).await?
            },
            redis: {
                let db = slice.redis()?;
                let client = db.server().direct().client_for_db(db.db())?;
                client.get_connection_manager().await?
            },
            config,
            metrics: TrafficRecorder::new(slice),
        })
    }

    /// `POST /orders`: the status and the JSON body.
    pub async fn place(&self, order: &Value) -> Result<(u16, Value), reqwest::Error> {
        let answer = self
            .http
            .post(format!("{}/orders", self.url))
            .json(order)
            .send()
            .await?;
        let status = answer.status().as_u16();
        Ok((status, answer.json().await?))
    }

    /// `GET path`: the status and the JSON body.
    pub async fn get(&self, path: &str) -> Result<(u16, Value), reqwest::Error> {
        let answer = self.http.get(format!("{}{path}", self.url)).send().await?;
        let status = answer.status().as_u16();
        Ok((status, answer.json().await?))
    }

    /// A product's stock in PostgreSQL.
    pub async fn stock_in_db(&self, sku: &str) -> Result<i32, sqlx::Error> {
        sqlx::query_scalar("SELECT stock FROM products WHERE sku = $1")
            .bind(sku)
            .fetch_one(&self.pool)
            .await
    }

    /// A product's stock in Redis, as the shop caches it.
    pub async fn stock_in_cache(&self, sku: &str) -> redis::RedisResult<Option<i64>> {
        let mut redis = self.redis.clone();
        redis::AsyncCommands::get(&mut redis, format!("stock:{sku}")).await
    }

    /// An order's status in PostgreSQL.
    pub async fn status_of(&self, id: i64) -> Result<String, sqlx::Error> {
        sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
    }

    /// Outbox rows not yet published.
    pub async fn unpublished(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await
    }

    /// The charge requests the provider received.
    pub async fn charges(
        &self,
    ) -> Result<Vec<drydock::stub::LoggedRequest>, drydock::stub::StubError> {
        Ok(self
            .payment
            .requests()
            .await?
            .into_iter()
            .filter(|r| r.method == "POST" && r.url.ends_with("/v1/charges"))
            .collect())
    }

    /// A consumer of the order events, from the beginning.
    pub fn order_events(&self, group: &str) -> drydock::Result<KafkaConsumer> {
        self.kafka
            .subscribe(group, &[&self.config.kafka.orders_topic])
    }

    /// Publishes a payment result, as the provider does.
    pub async fn publish_result(
        &self,
        event_id: &str,
        order_id: i64,
        status: &str,
    ) -> drydock::Result<()> {
        self.kafka
            .produce_json(
                &self.config.kafka.payment_results_topic,
                &order_id.to_string(),
                &json!({"event_id": event_id, "order_id": order_id.to_string(),
                        "charge_id": format!("ch_{order_id}"), "status": status}),
            )
            .await?;
        Ok(())
    }

    /// Mounts the provider's normal behaviour: every charge succeeds (`201`, the request's
    /// amount and currency, the idempotency key in the charge id).
    pub async fn provider_accepts(&self) -> Result<(), drydock::stub::StubError> {
        self.payment.mount(charges().respond(succeeded())).await?;
        Ok(())
    }
}

/// The charge endpoint as the shop must call it: its API key, an idempotency key, a JSON body
/// with the documented fields.
pub fn charges() -> Stub {
    Stub::post("/v1/charges")
        .header(
            "authorization",
            StringMatcher::equal_to("Bearer sk_test_shop"),
        )
        .header("idempotency-key", StringMatcher::matches("[0-9a-f-]{36}"))
        .body(BodyPattern::json_path("$.amount_cents"))
        .body(BodyPattern::json_path("$.currency"))
        .body(BodyPattern::json_path("$.customer_id"))
        .body(BodyPattern::json_path("$.order_id"))
}

/// `201` with a `Charge` in the documented shape, echoing the request.
pub fn succeeded() -> Response {
    Response::status(201)
        .header("content-type", "application/json")
        .body(
            r#"{"id": "ch_{{request.headers.idempotency-key}}", "status": "succeeded", "amount_cents": {{jsonPath request.body '$.amount_cents'}}, "currency": "{{jsonPath request.body '$.currency'}}"}"#,
        )
        .templated()
}

/// An `Error` body (`402`, `429`, `5xx`) in the documented shape.
pub fn error(status: u16, code: &str, message: &str) -> Response {
    Response::status(status).json(json!({"error": {"code": code, "message": message}}))
}

/// An order body.
pub fn order(customer: &str, lines: &[(&str, i32)]) -> Value {
    json!({
        "customer_id": customer,
        "currency": "EUR",
        "items": lines.iter().map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity})).collect::<Vec<_>>(),
    })
}

/// Polls `check` until it returns `Some`, or fails after `bound` with `what`.
pub async fn eventually<T, F, Fut>(bound: Duration, what: &str, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if started.elapsed() > bound {
            return Err(format!("{what}: not within {bound:?}"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits for the order event of `order_id` with `type`.
pub async fn wait_event(
    shop: &TestShop,
    consumer: &KafkaConsumer,
    order_id: i64,
    kind: &str,
) -> drydock::Result<Received> {
    let key = order_id.to_string();
    shop.kafka
        .wait_for(consumer, EVENT_WAIT, |m| {
            m.key_str() == Some(key.as_str()) && m.header("event-type") == Some(kind)
        })
        .await
}

/// The JSON of a received event.
pub fn event_json(message: &Received) -> Value {
    message.json().unwrap_or(Value::Null)
}

/// Writes what crossed each dependency's fault proxy during the test to
/// `$DRYDOCK_METRICS_DIR/traffic-<pid>.jsonl` when the test ends (`scripts/shop-metrics` sums
/// the files). Nothing is written without the variable.
pub struct TrafficRecorder {
    services: Services,
    test: String,
    started: Instant,
}

impl TrafficRecorder {
    /// Records `slice`'s traffic when dropped.
    pub fn new(slice: &Slice) -> Self {
        TrafficRecorder {
            services: Services::clone(slice),
            test: std::thread::current()
                .name()
                .unwrap_or("unknown")
                .to_owned(),
            started: Instant::now(),
        }
    }
}

impl Drop for TrafficRecorder {
    fn drop(&mut self) {
        let Some(dir) = std::env::var_os("DRYDOCK_METRICS_DIR") else {
            return;
        };
        let traffic: serde_json::Map<String, Value> = self
            .services
            .traffic()
            .into_iter()
            .map(|(name, t)| {
                (
                    name,
                    json!({
                        "connections": t.connections,
                        "bytes_upstream": t.bytes_upstream,
                        "bytes_downstream": t.bytes_downstream,
                        "round_trips": t.round_trips,
                        "waited_us": u64::try_from(t.waited.as_micros()).unwrap_or(u64::MAX),
                    }),
                )
            })
            .collect();
        let line = json!({
            "test": self.test,
            "elapsed_us": u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "panicking": std::thread::panicking(),
            "traffic": traffic,
        });
        let path = std::path::Path::new(&dir).join(format!("traffic-{}.jsonl", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            // One write per line: concurrent tests of a process append whole lines.
            let _ = file.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// Mounts `answers` as a sequence: the first charge gets the first, and so on; the last one
/// answers every charge after that.
pub async fn answer_in_turn(
    shop: &TestShop,
    answers: Vec<Response>,
) -> Result<(), drydock::stub::StubError> {
    let count = answers.len();
    for (i, answer) in answers.into_iter().enumerate() {
        let state = if i == 0 {
            drydock::stub::STARTED.to_owned()
        } else {
            format!("answer-{i}")
        };
        let next = (i + 1 < count).then(|| format!("answer-{}", i + 1));
        shop.payment
            .mount(
                charges()
                    .in_scenario("charges", state, next.as_deref())
                    .respond(answer),
            )
            .await?;
    }
    Ok(())
}

/// The idempotency keys of the charges received, in order.
pub async fn idempotency_keys(shop: &TestShop) -> Result<Vec<String>, drydock::stub::StubError> {
    Ok(shop
        .charges()
        .await?
        .iter()
        .map(|r| r.header("idempotency-key").unwrap_or("<none>").to_owned())
        .collect())
}

impl TestShop {
    /// An order's idempotency key, from PostgreSQL.
    pub async fn status_key(&self, id: i64) -> Result<String, sqlx::Error> {
        sqlx::query_scalar("SELECT idempotency_key FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
    }
}
