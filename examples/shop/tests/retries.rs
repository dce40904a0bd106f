//! The payment client's resilience under faults: timeouts, retries with one idempotency key,
//! `429` with `Retry-After`, the circuit breaker. Each fault is injected per test, at the stub
//! (its answers) or at the slice's fault proxy in front of it (the network). The tests that run
//! the same fault with retries turned off show that these tests fail if the retry code goes.

mod common;

use std::time::{Duration, Instant};

use common::{
    answer_in_turn, environment, error, eventually, idempotency_keys, order, succeeded, TestResult,
    TestShop, PAYMENT,
};
use drydock::{
    fault::Toxic,
    stub::{Fault, Response},
    Slice,
};
use serde_json::json;

/// Asserts `keys` has `n` entries, all the order's key.
fn same_key(keys: &[String], n: usize, order_key: &str) {
    assert_eq!(keys.len(), n, "{keys:?}");
    assert!(
        keys.iter().all(|k| k == order_key),
        "one key on every attempt: {keys:?} vs {order_key}"
    );
}

fn slow() -> Response {
    // Well over the test configuration's 500 ms timeout.
    succeeded().delay(Duration::from_millis(1500))
}

#[drydock::test(env = environment)]
async fn a_slow_provider_times_out_and_the_retry_is_paid(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    answer_in_turn(&shop, vec![slow(), succeeded()]).await?;
    let started = Instant::now();
    let (status, body) = shop.place(&order("t-1", &[("chalk", 1)])).await?;
    assert_eq!(status, 201, "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "the first attempt was cut at its timeout: {:?}",
        started.elapsed()
    );
    same_key(
        &idempotency_keys(&shop).await?,
        2,
        body["idempotency_key"].as_str().unwrap_or_default(),
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn without_retries_a_slow_provider_fails_the_order(slice: &Slice) -> TestResult {
    let shop = TestShop::start_with(slice, |c| c.payment.max_attempts = 1).await?;
    answer_in_turn(&shop, vec![slow(), succeeded()]).await?;
    let (status, body) = shop.place(&order("t-2", &[("chalk", 1)])).await?;
    assert_eq!(
        (status, &body["order_status"]),
        (503, &json!("pending")),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out after 500ms"),
        "{body}"
    );
    assert_eq!(shop.charges().await?.len(), 1);
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_reset_connection_is_retried_with_the_same_key(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    answer_in_turn(
        &shop,
        vec![Response::fault(Fault::ConnectionResetByPeer), succeeded()],
    )
    .await?;
    let (status, body) = shop.place(&order("t-3", &[("helmet", 1)])).await?;
    assert_eq!(status, 201, "{body}");
    same_key(
        &idempotency_keys(&shop).await?,
        2,
        body["idempotency_key"].as_str().unwrap_or_default(),
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn without_retries_a_reset_connection_fails_the_order(slice: &Slice) -> TestResult {
    let shop = TestShop::start_with(slice, |c| c.payment.max_attempts = 1).await?;
    answer_in_turn(
        &shop,
        vec![Response::fault(Fault::ConnectionResetByPeer), succeeded()],
    )
    .await?;
    let (status, body) = shop.place(&order("t-4", &[("helmet", 1)])).await?;
    assert_eq!(
        status, 503,
        "the same fault as above fails the order without retries: {body}"
    );
    assert_eq!(body["order_status"], "pending");
    let id = body["order_id"].as_i64().expect("an id");
    assert_ne!(shop.status_of(id).await?, "paid");
    Ok(())
}

#[drydock::test(env = environment)]
async fn two_5xx_then_success_is_paid_on_the_third_attempt(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    answer_in_turn(
        &shop,
        vec![
            error(500, "internal_error", "Something broke."),
            error(503, "unavailable", "Try again."),
            succeeded(),
        ],
    )
    .await?;
    let (status, body) = shop.place(&order("t-5", &[("rope-10m", 1)])).await?;
    assert_eq!(status, 201, "{body}");
    same_key(
        &idempotency_keys(&shop).await?,
        3,
        body["idempotency_key"].as_str().unwrap_or_default(),
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_provider_failing_every_attempt_leaves_the_order_pending(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    answer_in_turn(&shop, vec![error(502, "bad_gateway", "Upstream down.")]).await?;
    let (status, body) = shop.place(&order("t-6", &[("helmet", 2)])).await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["order_status"], "pending",
        "a 5xx may have charged: not released"
    );
    assert_eq!(
        body["error"],
        "the payment provider is unavailable after 3 attempt(s); last: 502 Bad Gateway: bad_gateway Upstream down."
    );
    same_key(
        &idempotency_keys(&shop).await?,
        3,
        &shop
            .status_key(body["order_id"].as_i64().unwrap_or_default())
            .await?,
    );
    assert_eq!(shop.stock_in_db("helmet").await?, 18);
    Ok(())
}

#[drydock::test(env = environment)]
async fn retry_after_is_honoured_before_the_next_attempt(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    answer_in_turn(
        &shop,
        vec![
            error(429, "rate_limited", "Slow down.").header("Retry-After", "1"),
            succeeded(),
        ],
    )
    .await?;
    let (status, body) = shop.place(&order("t-7", &[("chalk", 2)])).await?;
    assert_eq!(status, 201, "{body}");
    let charges = shop.charges().await?;
    assert_eq!(charges.len(), 2);
    let gap = charges[1].logged_date - charges[0].logged_date;
    assert!(
        gap >= 1000,
        "the retry waited the second asked for: {gap} ms"
    );
    assert!(gap < 2500, "and not much more: {gap} ms");
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_retry_after_beyond_the_limit_fails_at_once_and_releases_stock(
    slice: &Slice,
) -> TestResult {
    let shop = TestShop::start(slice).await?;
    answer_in_turn(
        &shop,
        vec![error(429, "rate_limited", "Come back tomorrow.").header("Retry-After", "86400")],
    )
    .await?;
    let started = Instant::now();
    let (status, body) = shop.place(&order("t-8", &[("chalk", 3)])).await?;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        (status, &body["order_status"]),
        (503, &json!("failed")),
        "{body}"
    );
    assert_eq!(
        body["error"],
        "the payment provider is rate limiting: Retry-After 86400s exceeds the 3s the shop waits"
    );
    assert_eq!(shop.charges().await?.len(), 1);
    assert_eq!(
        shop.stock_in_db("chalk").await?,
        50,
        "a 429 charged nothing: released"
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_client_error_is_not_retried(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    answer_in_turn(
        &shop,
        vec![error(400, "invalid_request", "currency not supported")],
    )
    .await?;
    let (status, body) = shop.place(&order("t-9", &[("chalk", 1)])).await?;
    assert_eq!(
        (status, &body["order_status"]),
        (502, &json!("failed")),
        "{body}"
    );
    assert_eq!(
        body["error"],
        "the payment provider rejected the request (400): invalid_request currency not supported"
    );
    assert_eq!(shop.charges().await?.len(), 1);
    Ok(())
}

#[drydock::test(env = environment)]
async fn resets_at_the_network_are_retried_once_the_link_heals(slice: &Slice) -> TestResult {
    // Retries far enough apart that removing the fault after the first connection is not a race.
    let shop =
        TestShop::start_with(slice, |c| c.payment.backoff = Duration::from_millis(300)).await?;
    shop.provider_accepts().await?;
    let proxy = slice.fault(PAYMENT)?;
    let before = proxy.traffic().connections;
    let resets = proxy.add(Toxic::reset_peer(Duration::ZERO))?;
    let healer = async {
        eventually(
            Duration::from_secs(5),
            "the first attempt's connection",
            || async {
                {
                    // Its connection opened and was reset (none open): the link may heal now,
                    // well before the retry 300 ms later.
                    let traffic = proxy.traffic();
                    (traffic.connections > before && traffic.open == 0).then_some(())
                }
            },
        )
        .await?;
        drop(resets);
        Ok::<_, String>(())
    };
    let body = order("t-10", &[("carabiner", 1)]);
    let (placed, healed) = tokio::join!(shop.place(&body), healer);
    healed?;
    let (status, body) = placed?;
    assert_eq!(status, 201, "{body}");
    // Whether the reset came before or after the request got through to the provider is up to
    // the network; either way the retry carried the same key, which is what lets a provider
    // that did get the first request charge once.
    let keys = idempotency_keys(&shop).await?;
    assert!(!keys.is_empty() && keys.len() <= 2, "{keys:?}");
    same_key(
        &keys,
        keys.len(),
        body["idempotency_key"].as_str().unwrap_or_default(),
    );
    assert!(
        proxy.traffic().connections >= before + 2,
        "{}",
        proxy.traffic()
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn without_retries_a_reset_at_the_network_fails_the_order(slice: &Slice) -> TestResult {
    let shop = TestShop::start_with(slice, |c| c.payment.max_attempts = 1).await?;
    shop.provider_accepts().await?;
    let resets = slice
        .fault(PAYMENT)?
        .add(Toxic::reset_peer(Duration::ZERO))?;
    let (status, body) = shop.place(&order("t-10b", &[("carabiner", 1)])).await?;
    assert_eq!(
        status, 503,
        "the fault the test above survives fails the order: {body}"
    );
    let id = body["order_id"].as_i64().expect("an id");
    assert_ne!(shop.status_of(id).await?, "paid");
    drop(resets);
    Ok(())
}

#[drydock::test(env = environment)]
async fn network_latency_beyond_the_timeout_bounds_the_request(slice: &Slice) -> TestResult {
    let shop = TestShop::start_with(slice, |c| c.payment.max_attempts = 2).await?;
    shop.provider_accepts().await?;
    let slow = slice
        .fault(PAYMENT)?
        .add(Toxic::latency(Duration::from_millis(900)))?;
    let started = Instant::now();
    let (status, body) = shop.place(&order("t-11", &[("carabiner", 1)])).await?;
    let took = started.elapsed();
    assert_eq!(
        (status, &body["order_status"]),
        (503, &json!("pending")),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_millis(2500),
        "two 500 ms attempts: {took:?}"
    );
    drop(slow);
    let (status, body) = shop.place(&order("t-11", &[("carabiner", 1)])).await?;
    assert_eq!(status, 201, "healthy again: {body}");
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_provider_that_is_down_fails_orders_fast_and_releases_them(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let outage = slice.fault(PAYMENT)?.down();
    let (status, body) = shop.place(&order("t-12", &[("helmet", 5)])).await?;
    assert_eq!(
        (status, &body["order_status"]),
        (503, &json!("failed")),
        "refused: nothing was charged: {body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("after 3 attempt(s)"),
        "{body}"
    );
    assert_eq!(shop.stock_in_db("helmet").await?, 20);
    drop(outage);
    let (status, _) = shop.place(&order("t-12", &[("helmet", 5)])).await?;
    assert_eq!(status, 201);
    assert_eq!(shop.stock_in_db("helmet").await?, 15);
    Ok(())
}

#[drydock::test(env = environment)]
async fn the_breaker_opens_after_the_threshold_and_stops_calls(slice: &Slice) -> TestResult {
    let shop = TestShop::start_with(slice, |c| {
        c.payment.max_attempts = 1;
        c.payment.breaker.failure_threshold = 3;
        c.payment.breaker.open_for = Duration::from_secs(30);
    })
    .await?;
    answer_in_turn(&shop, vec![error(500, "internal_error", "down")]).await?;
    for _ in 0..3 {
        let (status, _) = shop.place(&order("t-13", &[("chalk", 1)])).await?;
        assert_eq!(status, 503);
    }
    assert_eq!(shop.get("/health").await?.1["payment_breaker"], "open");
    // Whether the open breaker answered fast is no proof (the failing provider answers fast
    // too, and a loaded machine is slow); that it called nobody is: the journal below.
    let (status, body) = shop.place(&order("t-13", &[("chalk", 1)])).await?;
    assert_eq!(
        (status, &body["order_status"]),
        (503, &json!("failed")),
        "{body}"
    );
    assert_eq!(
        body["error"],
        "the payment provider is failing; not calling it for now (circuit open)"
    );
    assert_eq!(
        shop.charges().await?.len(),
        3,
        "the open breaker called nobody"
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn the_breaker_half_opens_and_a_good_trial_closes_it(slice: &Slice) -> TestResult {
    let shop = TestShop::start_with(slice, |c| {
        c.payment.max_attempts = 1;
        c.payment.breaker.failure_threshold = 2;
        c.payment.breaker.open_for = Duration::from_millis(400);
    })
    .await?;
    answer_in_turn(
        &shop,
        vec![
            error(500, "internal_error", "down"),
            error(500, "internal_error", "down"),
            succeeded(),
        ],
    )
    .await?;
    for _ in 0..2 {
        assert_eq!(shop.place(&order("t-14", &[("chalk", 1)])).await?.0, 503);
    }
    assert_eq!(shop.get("/health").await?.1["payment_breaker"], "open");
    eventually(Duration::from_secs(3), "half-open", || async {
        (shop.get("/health").await.ok()?.1["payment_breaker"] == "halfopen").then_some(())
    })
    .await?;
    let (status, body) = shop.place(&order("t-14", &[("chalk", 1)])).await?;
    assert_eq!(status, 201, "the trial went through: {body}");
    assert_eq!(shop.get("/health").await?.1["payment_breaker"], "closed");
    assert_eq!(shop.place(&order("t-14", &[("chalk", 1)])).await?.0, 201);
    assert_eq!(shop.charges().await?.len(), 4);
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_failed_trial_opens_the_breaker_again(slice: &Slice) -> TestResult {
    let shop = TestShop::start_with(slice, |c| {
        c.payment.max_attempts = 1;
        c.payment.breaker.failure_threshold = 2;
        c.payment.breaker.open_for = Duration::from_millis(400);
    })
    .await?;
    answer_in_turn(&shop, vec![error(500, "internal_error", "down")]).await?;
    for _ in 0..2 {
        assert_eq!(shop.place(&order("t-15", &[("chalk", 1)])).await?.0, 503);
    }
    eventually(Duration::from_secs(3), "half-open", || async {
        (shop.get("/health").await.ok()?.1["payment_breaker"] == "halfopen").then_some(())
    })
    .await?;
    let (_, trial) = shop.place(&order("t-15", &[("chalk", 1)])).await?;
    assert_eq!(
        trial["order_status"], "pending",
        "the trial reached the provider: {trial}"
    );
    let (_, refused) = shop.place(&order("t-15", &[("chalk", 1)])).await?;
    assert_eq!(
        refused["error"],
        "the payment provider is failing; not calling it for now (circuit open)"
    );
    assert_eq!(shop.charges().await?.len(), 3);
    Ok(())
}

#[drydock::test(env = environment)]
async fn rate_limiting_does_not_open_the_breaker(slice: &Slice) -> TestResult {
    let shop = TestShop::start_with(slice, |c| c.payment.breaker.failure_threshold = 1).await?;
    let limited = || error(429, "rate_limited", "Slow down.").header("Retry-After", "0");
    answer_in_turn(&shop, vec![limited(), limited(), succeeded()]).await?;
    let (status, body) = shop.place(&order("t-16", &[("chalk", 1)])).await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(shop.get("/health").await?.1["payment_breaker"], "closed");
    Ok(())
}
