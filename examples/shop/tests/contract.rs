//! Contracts that keep the payment stubs honest: the provider's OpenAPI document
//! (`payment-api.yaml`) checks every stub this suite mounts, and the requests the shop sends.
//! A stub that drifts from the provider's API would make the suite pass against an API that
//! does not exist; these tests catch that, naming the stub, the operation and the field.

mod common;

use common::{charges, environment, error, order, succeeded, TestResult, TestShop};
use drydock::{
    stub::{
        contract::{OpenApi, Place, ViolationKind},
        Response, StubError,
    },
    Slice,
};
use serde_json::json;

fn spec() -> OpenApi {
    OpenApi::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/payment-api.yaml"))
        .expect("payment-api.yaml reads")
}

#[drydock::test(env = environment)]
async fn the_suites_payment_stubs_fit_the_providers_spec(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    // What the suite's tests mount, one of each kind.
    for answer in [
        error(402, "card_declined", "The card was declined."),
        error(429, "rate_limited", "Slow down.").header("Retry-After", "1"),
        error(503, "unavailable", "Try again."),
        error(400, "invalid_request", "Bad amount."),
    ] {
        shop.payment.mount(charges().respond(answer)).await?;
    }
    shop.payment.mount(charges().respond(succeeded())).await?;
    let report = shop.payment.check_against(&spec()).await?;
    assert_eq!(report.checked(), 5, "every mounted stub is checked");
    Ok(())
}

#[drydock::test(env = environment)]
async fn the_requests_the_shop_sends_fit_the_providers_spec(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.provider_accepts().await?;
    let (status, body) = shop.place(&order("ada", &[("helmet", 2)])).await?;
    assert_eq!(status, 201, "{body}");
    // The charge the shop sent, as the stub received it, against the spec's request schema,
    // parameters and required headers (`Idempotency-Key`).
    let report = shop.payment.check_received_against(&spec()).await?;
    assert!(report.checked() >= 1, "the charge request was checked");
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_stub_that_drifted_from_the_providers_spec_is_caught(slice: &Slice) -> TestResult {
    let shop = TestShop::start(slice).await?;
    // The provider renamed `amount_cents` to `amount` in a stub someone wrote from memory.
    shop.payment
        .mount(charges().respond(Response::status(201).json(json!({
            "id": "ch_1", "status": "succeeded", "amount": 5495, "currency": "EUR"
        }))))
        .await?;
    let error = shop
        .payment
        .check_against(&spec())
        .await
        .expect_err("a drifted stub must not pass the contract");
    let StubError::Contract(violations) = error else {
        panic!("expected a contract error, got: {error}");
    };
    let renamed = violations
        .iter()
        .find(|v| v.pointer() == "/amount")
        .unwrap_or_else(|| panic!("no violation at /amount: {violations}"));
    assert_eq!(renamed.kind(), ViolationKind::NotAllowed, "{violations}");
    assert_eq!(renamed.operation(), Some("POST /v1/charges"));
    assert_eq!(renamed.place(), &Place::ResponseBody(201));
    let missing = violations
        .iter()
        .find(|v| v.pointer() == "/amount_cents")
        .unwrap_or_else(|| panic!("no violation at /amount_cents: {violations}"));
    assert_eq!(missing.kind(), ViolationKind::Required, "{violations}");
    Ok(())
}

#[drydock::test(env = environment)]
async fn a_status_and_an_enum_value_the_provider_does_not_have_are_caught(
    slice: &Slice,
) -> TestResult {
    let shop = TestShop::start(slice).await?;
    shop.payment
        .mount(charges().respond(Response::status(200).json(json!({
            "id": "ch_1", "status": "succeeded", "amount_cents": 5495, "currency": "EUR"
        }))))
        .await?;
    shop.payment
        .mount(charges().respond(Response::status(201).json(json!({
            "id": "ch_2", "status": "pending", "amount_cents": 5495, "currency": "EUR"
        }))))
        .await?;
    let Err(StubError::Contract(violations)) = shop.payment.check_against(&spec()).await else {
        panic!("a 200 and a `pending` status must not pass the contract");
    };
    assert!(
        violations
            .iter()
            .any(|v| v.kind() == ViolationKind::UndeclaredStatus
                && v.place() == &Place::Response(200)),
        "{violations}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v.kind() == ViolationKind::Enum && v.pointer() == "/status"),
        "{violations}"
    );
    Ok(())
}
