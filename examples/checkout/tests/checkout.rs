//! The checkout against a stub gateway: each test has its own in-process stub server.

use std::time::{Duration, Instant};

use checkout::{Charge, Checkout, PayError, ATTEMPTS};
use drydock::stub::{
    BodyPattern, Fault, Response, StringMatcher, Stub, StubServer, Times, STARTED,
};
use serde_json::json;

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

fn charge() -> Charge {
    Charge {
        amount_cents: 1999,
        currency: "EUR".into(),
        card: "tok_visa".into(),
    }
}

fn charges() -> Stub {
    Stub::post("/v1/charges")
        .header("authorization", StringMatcher::equal_to("Bearer sk_test"))
        .header("idempotency-key", StringMatcher::matches("[0-9a-f-]{36}"))
        .body(BodyPattern::json(
            json!({"amount_cents": 1999, "currency": "EUR", "card": "tok_visa"}),
        ))
}

fn succeeded() -> Response {
    Response::status(201)
        .body(r#"{"id": "ch_{{request.headers.idempotency-key}}", "status": "succeeded"}"#)
        .templated()
}

fn checkout(gateway: &StubServer) -> Checkout {
    Checkout::new(gateway.url(), "sk_test", Duration::from_millis(500))
}

#[tokio::test]
async fn charges_once() -> Result {
    let gateway = StubServer::start().await?;
    gateway
        .mount(charges().respond(succeeded()).expect(Times::Exactly(1)))
        .await?;
    let receipt = checkout(&gateway).pay(&charge()).await?;
    assert_eq!(receipt.status, "succeeded");
    let key = gateway.requests().await?[0]
        .header("idempotency-key")
        .map(String::from);
    assert_eq!(Some(receipt.id), key.map(|k| format!("ch_{k}")));
    Ok(())
}

#[tokio::test]
async fn a_dropped_connection_is_retried_with_the_same_key() -> Result {
    let gateway = StubServer::start().await?;
    gateway
        .mount(
            charges()
                .in_scenario("flaky", STARTED, Some("recovered"))
                .respond(Response::fault(Fault::ConnectionResetByPeer)),
        )
        .await?;
    gateway
        .mount(
            charges()
                .in_scenario("flaky", "recovered", None)
                .respond(succeeded())
                .expect(Times::Exactly(1)),
        )
        .await?;
    checkout(&gateway).pay(&charge()).await?;
    let keys: Vec<_> = gateway
        .requests()
        .await?
        .iter()
        .map(|r| r.header("idempotency-key").map(String::from))
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "a retry must not charge twice");
    Ok(())
}

#[tokio::test]
async fn gives_up_after_three_server_errors() -> Result {
    let gateway = StubServer::start().await?;
    gateway
        .mount(
            charges()
                .respond(Response::status(503))
                .expect(Times::Exactly(ATTEMPTS.into())),
        )
        .await?;
    let error = checkout(&gateway)
        .pay(&charge())
        .await
        .expect_err("unavailable");
    assert!(
        matches!(error, PayError::Unavailable { attempts: 3, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("503"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_decline_is_not_retried() -> Result {
    let gateway = StubServer::start().await?;
    gateway
        .mount(
            charges()
                .respond(Response::status(402).json(json!({"error": {"code": "card_declined"}})))
                .expect(Times::Exactly(1)),
        )
        .await?;
    let error = checkout(&gateway)
        .pay(&charge())
        .await
        .expect_err("declined");
    assert!(
        matches!(&error, PayError::Declined(code) if code == "card_declined"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn a_slow_gateway_times_out_on_every_attempt() -> Result {
    let gateway = StubServer::start().await?;
    gateway
        .mount(
            charges()
                .respond(succeeded().delay(Duration::from_secs(3)))
                .expect(Times::Exactly(3)),
        )
        .await?;
    let started = Instant::now();
    let error = checkout(&gateway)
        .pay(&charge())
        .await
        .expect_err("times out");
    assert!(
        error.to_string().contains("timed out") || error.to_string().contains("timeout"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}
