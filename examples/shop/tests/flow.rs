//! One order through all four dependencies: a row in PostgreSQL, the stock in Redis, events on
//! Kafka, a charge at the provider — and payment results coming back over Kafka.

mod common;

use std::time::Duration;

use common::{environment, event_json, eventually, order, wait_event, TestResult, TestShop};
use drydock::Slice;
use serde_json::json;

#[drydock::test(env = environment)]
async fn an_order_reaches_postgres_redis_kafka_and_the_provider(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let events = shop.order_events("audit")?;
    let (status, body) = shop
        .place(&order("ada", &[("rope-10m", 2), ("chalk", 1)]))
        .await?;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().expect("an id");
    let key = body["idempotency_key"].as_str().expect("a key").to_owned();

    // PostgreSQL: the order, paid, and the stock taken.
    let (status, total, charge): (String, i64, Option<String>) =
        sqlx::query_as("SELECT status, total_cents, charge_id FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(&shop.pool)
            .await?;
    assert_eq!((status.as_str(), total), ("paid", 2 * 8900 + 1999));
    assert_eq!(charge, Some(format!("ch_{key}")));
    assert_eq!(shop.stock_in_db("rope-10m").await?, 98);
    assert_eq!(shop.stock_in_db("chalk").await?, 49);

    // Redis: the new levels.
    assert_eq!(shop.stock_in_cache("rope-10m").await?, Some(98));
    assert_eq!(shop.stock_in_cache("chalk").await?, Some(49));

    // Kafka: placed, then paid, keyed by the order.
    let placed = wait_event(&shop, &events, id, "order.placed").await?;
    assert_eq!(
        event_json(&placed),
        json!({"type": "order.placed", "order_id": id, "customer_id": "ada", "currency": "EUR",
               "total_cents": 2 * 8900 + 1999,
               "items": [{"sku": "chalk", "quantity": 1, "unit_price_cents": 1999},
                         {"sku": "rope-10m", "quantity": 2, "unit_price_cents": 8900}]})
    );
    let paid = wait_event(&shop, &events, id, "order.paid").await?;
    assert_eq!(
        event_json(&paid),
        json!({"type": "order.paid", "order_id": id, "charge_id": format!("ch_{key}"),
               "amount_cents": 2 * 8900 + 1999, "currency": "EUR"})
    );

    // The provider: one charge, the documented body, the order's idempotency key.
    let charges = shop.charges().await?;
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].header("idempotency-key"), Some(key.as_str()));
    assert_eq!(
        charges[0].header("authorization"),
        Some("Bearer sk_test_shop")
    );
    let sent: serde_json::Value = serde_json::from_str(&charges[0].body)?;
    assert_eq!(
        sent,
        json!({"amount_cents": 2 * 8900 + 1999, "currency": "EUR", "customer_id": "ada",
               "order_id": id.to_string()})
    );
    // The outbox is drained.
    eventually(Duration::from_secs(5), "outbox drained", || async {
        (shop.unpublished().await.ok()? == 0).then_some(())
    })
    .await?;
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_decline_is_published_as_order_declined(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.payment
        .mount(common::charges().respond(common::error(402, "insufficient_funds", "Not enough.")))
        .await?;
    let events = shop.order_events("audit")?;
    let (_, body) = shop.place(&order("bob", &[("helmet", 1)])).await?;
    let id = body["order_id"].as_i64().expect("an id");
    wait_event(&shop, &events, id, "order.placed").await?;
    let declined = wait_event(&shop, &events, id, "order.declined").await?;
    assert_eq!(
        event_json(&declined)["reason"],
        "payment declined: insufficient_funds"
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn every_order_event_is_published_once_in_order(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let events = shop.order_events("audit")?;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, body) = shop
            .place(&order(&format!("c{i}"), &[("carabiner", 1)]))
            .await?;
        assert_eq!(status, 201);
        ids.push(body["id"].as_i64().expect("an id"));
    }
    let received = shop.kafka.consume(&events, 10, common::EVENT_WAIT).await?;
    let seen: Vec<(String, String)> = received
        .iter()
        .map(|m| {
            (
                m.key_str().unwrap_or_default().to_owned(),
                m.header("event-type").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = ids
        .iter()
        .flat_map(|id| {
            [
                (id.to_string(), "order.placed".to_owned()),
                (id.to_string(), "order.paid".to_owned()),
            ]
        })
        .collect();
    assert_eq!(seen, expected);
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_refund_from_the_provider_refunds_the_order_and_restocks(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let events = shop.order_events("audit")?;
    let (_, body) = shop.place(&order("cy", &[("helmet", 3)])).await?;
    let id = body["id"].as_i64().expect("an id");
    assert_eq!(shop.stock_in_db("helmet").await?, 17);

    shop.publish_result("evt-1", id, "refunded").await?;
    let refunded = wait_event(&shop, &events, id, "order.refunded").await?;
    assert_eq!(event_json(&refunded)["reason"], "refunded by the provider");
    assert_eq!(shop.status_of(id).await?, "refunded");
    assert_eq!(shop.stock_in_db("helmet").await?, 20);
    assert_eq!(shop.stock_in_cache("helmet").await?, Some(20));
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_redelivered_payment_result_is_applied_once(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let (_, body) = shop.place(&order("dee", &[("chalk", 5)])).await?;
    let id = body["id"].as_i64().expect("an id");
    shop.publish_result("evt-7", id, "refunded").await?;
    shop.publish_result("evt-7", id, "refunded").await?;
    // A later, distinct result shows both copies were consumed before it.
    shop.publish_result("evt-8", id, "succeeded").await?;
    eventually(
        common::EVENT_WAIT,
        "both distinct results applied",
        || async {
            let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM applied_payment_results")
                .fetch_one(&shop.pool)
                .await
                .ok()?;
            (applied == 2).then_some(())
        },
    )
    .await?;
    let refunds: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE payload->>'type' = 'order.refunded'")
            .fetch_one(&shop.pool)
            .await?;
    assert_eq!(refunds, 1);
    assert_eq!(
        shop.stock_in_db("chalk").await?,
        50,
        "restocked once, not twice"
    );
    assert_eq!(
        shop.status_of(id).await?,
        "refunded",
        "a success after a refund changes nothing"
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn an_unknown_outcome_is_settled_by_the_providers_result(slice: &Slice) -> TestResult {
    let shop = TestShop::start_with(slice, |c| c.payment.max_attempts = 1).await?;
    shop.payment
        .mount(common::charges().respond(drydock::stub::Response::fault(
            drydock::stub::Fault::ConnectionResetByPeer,
        )))
        .await?;
    let events = shop.order_events("audit")?;
    let (status, body) = shop.place(&order("eve", &[("rope-10m", 1)])).await?;
    assert_eq!(
        (status, &body["order_status"]),
        (503, &json!("pending")),
        "{body}"
    );
    let id = body["order_id"].as_i64().expect("an id");
    assert_eq!(
        shop.stock_in_db("rope-10m").await?,
        99,
        "kept while the outcome is unknown"
    );

    shop.publish_result("evt-late", id, "succeeded").await?;
    let paid = wait_event(&shop, &events, id, "order.paid").await?;
    assert_eq!(event_json(&paid)["charge_id"], format!("ch_{id}"));
    assert_eq!(shop.status_of(id).await?, "paid");
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_failed_result_for_a_pending_order_releases_it(slice: &Slice) -> TestResult {
    let shop = TestShop::start_with(slice, |c| c.payment.max_attempts = 1).await?;
    shop.payment
        .mount(common::charges().respond(drydock::stub::Response::fault(
            drydock::stub::Fault::EmptyResponse,
        )))
        .await?;
    let (_, body) = shop.place(&order("fay", &[("helmet", 4)])).await?;
    let id = body["order_id"].as_i64().expect("an id");
    assert_eq!(shop.stock_in_db("helmet").await?, 16);
    shop.publish_result("evt-f", id, "failed").await?;
    eventually(common::EVENT_WAIT, "the order failed", || async {
        (shop.status_of(id).await.ok()? == "failed").then_some(())
    })
    .await?;
    assert_eq!(shop.stock_in_db("helmet").await?, 20);
    Ok(())
}
