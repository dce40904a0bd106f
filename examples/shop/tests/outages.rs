//! Partial outages: one dependency slow or gone while the others work. Redis is an
//! optimisation (the shop answers from PostgreSQL), Kafka is behind an outbox (events wait,
//! none is lost), PostgreSQL is the source of truth (requests fail cleanly with `503`, then
//! recover).

mod common;

use std::time::{Duration, Instant};

use common::{environment, eventually, order, wait_event, TestResult, TestShop, EVENT_WAIT};
use drydock::{fault::Toxic, Slice};
use serde_json::json;

#[drydock::test(env = environment)]
async fn with_redis_down_stock_is_read_from_postgres(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    let (_, warm) = shop.get("/products/helmet/stock").await?;
    assert_eq!(warm["source"], "database");
    let _outage = slice.fault("redis")?.down();
    let started = Instant::now();
    let (status, body) = shop.get("/products/helmet/stock").await?;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"sku": "helmet", "stock": 20, "source": "database"})
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn with_redis_down_orders_still_go_through(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let _outage = slice.fault("redis")?.down();
    let (status, body) = shop.place(&order("r-1", &[("rope-10m", 3)])).await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(shop.stock_in_db("rope-10m").await?, 97);
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_slow_redis_costs_at_most_its_timeout(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.get("/products/chalk/stock").await?;
    let _slow = slice
        .fault("redis")?
        .add(Toxic::latency(Duration::from_secs(3)))?;
    let started = Instant::now();
    let (_, body) = shop.get("/products/chalk/stock").await?;
    let took = started.elapsed();
    assert_eq!(body["source"], "database", "{body}");
    assert_eq!(body["stock"], 50);
    assert!(
        took < Duration::from_millis(1500),
        "cache read 200 ms + cache write 200 ms + PostgreSQL: {took:?}"
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn the_cache_comes_back_correct_after_an_outage(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let (_, cached) = shop.get("/products/carabiner/stock").await?;
    assert_eq!(cached["stock"], 500);
    assert_eq!(shop.stock_in_cache("carabiner").await?, Some(500));

    // An order while Redis is away: the cache still says 500 when it returns.
    let outage = slice.fault("redis")?.down();
    let (status, _) = shop.place(&order("r-2", &[("carabiner", 7)])).await?;
    assert_eq!(status, 201);
    drop(outage);
    assert_eq!(
        shop.stock_in_cache("carabiner").await?,
        Some(500),
        "the stale level is there"
    );

    // The shop does not serve it: the first read goes to PostgreSQL and fixes the cache.
    let (_, after) = eventually(
        Duration::from_secs(5),
        "a read after Redis is back",
        || async { shop.get("/products/carabiner/stock").await.ok() },
    )
    .await?;
    assert_eq!(after["stock"], 493, "{after}");
    let (_, again) = shop.get("/products/carabiner/stock").await?;
    assert_eq!(
        again,
        json!({"sku": "carabiner", "stock": 493, "source": "cache"})
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn with_kafka_down_orders_succeed_and_events_wait_in_the_outbox(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let outage = slice.fault("kafka")?.down();
    let started = Instant::now();
    let (status, body) = shop.place(&order("k-1", &[("chalk", 1)])).await?;
    assert_eq!(status, 201, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "orders do not wait for Kafka: {:?}",
        started.elapsed()
    );
    let id = body["id"].as_i64().expect("an id");
    assert!(
        shop.unpublished().await? >= 1,
        "the events wait in the outbox"
    );

    drop(outage);
    // The test's own consumer joins after the outage (it reads from the beginning): one that
    // lived through it would see librdkafka's transport errors, which drydock's `wait_for`
    // reports as failures.
    let events = shop.order_events("audit")?;
    wait_event(&shop, &events, id, "order.placed").await?;
    wait_event(&shop, &events, id, "order.paid").await?;
    eventually(EVENT_WAIT, "the outbox drained", || async {
        (shop.unpublished().await.ok()? == 0).then_some(())
    })
    .await?;
    Ok(())
}

#[drydock::test(env = environment)]
async fn no_event_is_lost_or_reordered_across_a_kafka_outage(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let (_, first) = shop.place(&order("k-2", &[("carabiner", 1)])).await?;
    let mut ids = vec![first["id"].as_i64().expect("an id")];
    eventually(EVENT_WAIT, "the first order's events published", || async {
        (shop.unpublished().await.ok()? == 0).then_some(())
    })
    .await?;

    let outage = slice.fault("kafka")?.down();
    for i in 0..6 {
        let (status, body) = shop
            .place(&order(&format!("k-2-{i}"), &[("carabiner", 1)]))
            .await?;
        assert_eq!(status, 201);
        ids.push(body["id"].as_i64().expect("an id"));
    }
    drop(outage);
    let events = shop.order_events("audit")?; // after the outage: see the test above
    let received = shop.kafka.consume(&events, 14, EVENT_WAIT).await?;
    let placed: Vec<i64> = received
        .iter()
        .filter(|m| m.header("event-type") == Some("order.placed"))
        .filter_map(|m| m.key_str()?.parse().ok())
        .collect();
    assert_eq!(
        placed, ids,
        "every order, those placed during the outage too, in order"
    );
    let paid = received
        .iter()
        .filter(|m| m.header("event-type") == Some("order.paid"))
        .count();
    assert_eq!(paid, 7);
    Ok(())
}

#[drydock::test(env = environment)]
async fn postgres_connection_resets_fail_requests_with_503_then_recover(
    slice: &Slice,
) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let resets = slice
        .fault("postgres")?
        .add(Toxic::reset_peer(Duration::ZERO))?;
    let (status, body) = shop.place(&order("p-1", &[("chalk", 1)])).await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({"error": "the order database is unavailable; try again"})
    );
    let (status, _) = shop.get("/orders/1").await?;
    assert_eq!(status, 503);
    assert!(
        shop.charges().await?.is_empty(),
        "no charge without a stored order"
    );

    drop(resets);
    let (_, body) = eventually(
        Duration::from_secs(10),
        "an order after PostgreSQL recovered",
        || async {
            let answer = shop.place(&order("p-1", &[("chalk", 1)])).await.ok()?;
            (answer.0 == 201).then_some(answer)
        },
    )
    .await?;
    assert_eq!(body["status"], "paid");
    Ok(())
}

#[drydock::test(env = environment)]
async fn postgres_down_fails_requests_within_the_acquire_timeout(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    let outage = slice.fault("postgres")?.down();
    let started = Instant::now();
    let (status, body) = shop.get("/products/helmet").await?;
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(
        took < Duration::from_secs(4),
        "bounded by the 2 s acquire timeout: {took:?}"
    );
    let (_, health) = shop.get("/health").await?;
    assert_eq!(health["database"], "down");
    drop(outage);
    let (_, health) = eventually(Duration::from_secs(10), "PostgreSQL back", || async {
        let answer = shop.get("/health").await.ok()?;
        (answer.1["database"] == "up").then_some(answer)
    })
    .await?;
    assert_eq!(health["database"], "up");
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_slow_postgres_slows_orders_but_they_complete(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let _slow = slice
        .fault("postgres")?
        .add(Toxic::latency(Duration::from_millis(20)))?;
    let (status, body) = shop
        .place(&order("p-2", &[("helmet", 1), ("chalk", 1)]))
        .await?;
    assert_eq!(status, 201, "{body}");
    let traffic = slice.fault("postgres")?.traffic();
    assert!(
        traffic.waited >= Duration::from_millis(20 * 10),
        "every statement waited: {traffic}"
    );
    Ok(())
}
