//! `scripts/run-example checkout`: a checkout charging a card against an in-process stub of the
//! payment gateway whose first answer is a dropped connection. No Docker needed.

use std::time::Duration;

use checkout::{Charge, Checkout};
use drydock::stub::{
    BodyPattern, Fault, Response, StringMatcher, Stub, StubServer, Times, STARTED,
};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = std::time::Instant::now();
    let gateway = StubServer::start().await?;
    println!(
        "stub gateway at {} in {:?}",
        gateway.url(),
        started.elapsed()
    );
    let charges = || {
        Stub::post("/v1/charges")
            .header("authorization", StringMatcher::equal_to("Bearer sk_test"))
            .body(BodyPattern::json_partial(json!({"currency": "EUR"})))
            .in_scenario("flaky", STARTED, Some("recovered"))
    };
    gateway
        .mount(charges().respond(Response::fault(Fault::ConnectionResetByPeer)))
        .await?;
    gateway
        .mount(
            charges()
                .in_scenario("flaky", "recovered", None)
                .respond(
                    Response::status(201)
                        .body(r#"{"id": "ch_{{request.headers.idempotency-key}}", "status": "succeeded"}"#)
                        .templated(),
                )
                .expect(Times::Exactly(1)),
        )
        .await?;

    let checkout = Checkout::new(gateway.url(), "sk_test", Duration::from_secs(2));
    let charge = Charge {
        amount_cents: 4200,
        currency: "EUR".into(),
        card: "tok_visa".into(),
    };
    let receipt = checkout.pay(&charge).await?;
    println!("charged: {} ({})", receipt.id, receipt.status);
    for request in gateway.requests().await? {
        println!(
            "  gateway saw {} {} idempotency-key={} answered={}",
            request.method,
            request.url,
            request.header("idempotency-key").unwrap_or("-"),
            request.was_matched
        );
    }
    gateway.verify().await?;
    println!("expectations met");
    Ok(())
}
