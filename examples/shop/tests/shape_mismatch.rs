//! The provider answering in a shape other than `payment-api.yaml`'s: the shop fails the order
//! cleanly — a `502` naming what did not fit, the stock released, the service still up — rather
//! than panic or guess.

mod common;

use common::{charges, environment, order, TestResult, TestShop};
use drydock::{stub::Response, Slice};
use serde_json::{json, Value};

/// Places an order against `answer` and checks the clean failure; the error text.
async fn fails_cleanly(
    slice: &Slice,
    answer: Response,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let shop = TestShop::start(slice).await?;
    shop.payment.mount(charges().respond(answer)).await?;
    let (status, body) = shop.place(&order("zed", &[("helmet", 1)])).await?;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["order_status"], "failed");
    let id = body["order_id"].as_i64().expect("an id");
    let (failure,): (Option<String>,) = sqlx::query_as("SELECT failure FROM orders WHERE id = $1")
        .bind(id)
        .fetch_one(&shop.pool)
        .await?;
    assert_eq!(
        failure.as_deref(),
        body["error"].as_str(),
        "the order records why"
    );
    assert_eq!(shop.status_of(id).await?, "failed");
    assert_eq!(shop.stock_in_db("helmet").await?, 20, "stock released");
    assert_eq!(
        shop.charges().await?.len(),
        1,
        "a malformed answer is not retried"
    );
    // Still serving.
    let (health, _) = shop.get("/health").await?;
    assert_eq!(health, 200);
    Ok(body["error"].as_str().unwrap_or_default().to_owned())
}

fn charge_json(value: Value) -> Response {
    Response::status(201).json(value)
}

#[drydock::test(env = environment)]
async fn a_renamed_id_field_fails_the_order_naming_the_field(slice: &Slice) -> TestResult {
    let error = fails_cleanly(
        slice,
        charge_json(json!({"charge_id": "ch_1", "status": "succeeded", "amount_cents": 5495, "currency": "EUR"})),
    )
    .await?;
    assert!(error.starts_with("the payment provider's answer does not match its API (201): charge body: missing field `id`"), "{error}");
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_missing_status_fails_the_order(slice: &Slice) -> TestResult {
    let error = fails_cleanly(
        slice,
        charge_json(json!({"id": "ch_1", "amount_cents": 5495, "currency": "EUR"})),
    )
    .await?;
    assert!(error.contains("missing field `status`"), "{error}");
    Ok(())
}

#[drydock::test(env = environment)]
async fn an_undocumented_status_value_fails_the_order(slice: &Slice) -> TestResult {
    let error = fails_cleanly(
        slice,
        charge_json(
            json!({"id": "ch_1", "status": "pending", "amount_cents": 5495, "currency": "EUR"}),
        ),
    )
    .await?;
    assert!(error.contains("unknown variant `pending`"), "{error}");
    Ok(())
}

#[drydock::test(env = environment)]
async fn an_amount_as_a_string_fails_the_order(slice: &Slice) -> TestResult {
    let error = fails_cleanly(
        slice,
        charge_json(json!({"id": "ch_1", "status": "succeeded", "amount_cents": "54.95", "currency": "EUR"})),
    )
    .await?;
    assert!(
        error.contains("invalid type: string \"54.95\", expected i64"),
        "{error}"
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn an_html_page_instead_of_json_fails_the_order(slice: &Slice) -> TestResult {
    let error = fails_cleanly(
        slice,
        Response::status(201)
            .header("content-type", "text/html")
            .body("<html><body>Maintenance</body></html>"),
    )
    .await?;
    assert!(error.contains("charge body: expected value"), "{error}");
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_402_without_the_error_body_fails_the_order(slice: &Slice) -> TestResult {
    let error = fails_cleanly(
        slice,
        Response::status(402).json(json!({"reason": "declined"})),
    )
    .await?;
    assert!(
        error.contains("(402): error body: missing field `error`"),
        "{error}"
    );
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_429_without_retry_after_fails_the_order(slice: &Slice) -> TestResult {
    let error = fails_cleanly(slice, common::error(429, "rate_limited", "Slow down.")).await?;
    assert!(
        error.contains("429 without the documented Retry-After header"),
        "{error}"
    );
    Ok(())
}
