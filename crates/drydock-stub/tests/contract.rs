//! Contracts: stubs, the requests a system under test sent and recorded mappings, checked against
//! a payment provider's OpenAPI document (`tests/openapi/payment-api.yaml`, 3.0; and the same API
//! as 3.1 JSON), on real stub servers over real HTTP.

mod common;

use std::path::{Path, PathBuf};

use common::client;
use drydock_stub::{
    contract::{ContractViolations, OpenApi, Place, Subject, Violation, ViolationKind},
    BodyPattern, Fault, Recording, Response, StringMatcher, Stub, StubError, StubServer,
};
use serde_json::{json, Value};

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/openapi")
        .join(name)
}

fn spec() -> OpenApi {
    OpenApi::from_path(fixture("payment-api.yaml")).expect("the fixture spec reads")
}

fn charge() -> Value {
    json!({"id": "ch_1", "status": "succeeded", "amount_cents": 1250, "currency": "EUR"})
}

fn new_charge() -> Value {
    json!({"amount_cents": 1250, "currency": "EUR", "customer_id": "cus_1", "order_id": "ord_1"})
}

fn error_body(code: &str) -> Value {
    json!({"error": {"code": code, "message": "see code"}})
}

/// The stubs of a checkout's tests, as the provider's API really answers.
fn conforming() -> Vec<Stub> {
    vec![
        Stub::post("/v1/charges")
            .named("charge succeeds")
            .header("idempotency-key", StringMatcher::present())
            .body(BodyPattern::json_partial(json!({"currency": "EUR"})))
            .respond(Response::status(201).json(charge())),
        Stub::post("/v1/charges")
            .named("card declined")
            .body(BodyPattern::json(json!({
                "amount_cents": 9999, "currency": "EUR", "customer_id": "cus_2",
                "order_id": "${json-unit.any-string}", "description": null
            })))
            .respond(Response::status(402).json(error_body("card_declined"))),
        Stub::post("/v1/charges")
            .named("rate limited")
            .header("idempotency-key", StringMatcher::equal_to("retry-me"))
            .respond(
                Response::status(429)
                    .header("Retry-After", "2")
                    .json(error_body("rate_limited")),
            ),
        Stub::get("/v1/charges/ch_1").respond(Response::ok().json(charge())),
        Stub::any()
            .method("GET")
            .path_template("/v1/charges/{id}")
            .path_parameter("id", StringMatcher::equal_to("ch_gone"))
            .respond(Response::status(404).json(error_body("not_found"))),
        Stub::any()
            .method("GET")
            .url("/v1/charges?limit=10&customer_id=cus_1")
            .respond(Response::ok().json(json!({"data": [charge()]}))),
        Stub::any()
            .method("GET")
            .path_regex("/v1/charges/ch_[a-z0-9]+")
            .priority(9)
            .respond(Response::ok().json(json!({
                "id": "ch_x", "status": "declined", "amount_cents": 1, "currency": "USD",
                "failure_reason": null
            }))),
        Stub::get("/v1/charges/ch_broken").respond(Response::fault(Fault::ConnectionResetByPeer)),
    ]
}

/// Mounts `stubs` on a fresh namespace of a new server; the check must fail.
async fn violations_of(stubs: Vec<Stub>) -> std::result::Result<ContractViolations, StubError> {
    let server = StubServer::start().await?;
    let tenant = server.namespace("drift").await?;
    tenant.mount_all(stubs).await?;
    match tenant.check_against(&spec()).await {
        Err(StubError::Contract(violations)) => Ok(violations),
        Err(other) => Err(other),
        Ok(report) => panic!("expected violations, the check passed: {report:?}"),
    }
}

fn find<'v>(
    violations: &'v ContractViolations,
    pointer: &str,
    kind: ViolationKind,
) -> &'v Violation {
    violations
        .iter()
        .find(|v| v.pointer() == pointer && v.kind() == kind)
        .unwrap_or_else(|| panic!("no {kind:?} at {pointer:?} in:\n{violations}"))
}

/// The one violation of the stub labelled so.
fn by_label<'v>(violations: &'v ContractViolations, wanted: &str) -> &'v Violation {
    let found: Vec<&Violation> = violations
        .iter()
        .filter(|v| matches!(v.subject(), Subject::Stub { label, .. } if label == wanted))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one violation of `{wanted}` in:\n{violations}"
    );
    found[0]
}

#[tokio::test]
async fn a_conforming_stub_set_passes() -> Result {
    let server = StubServer::start().await?;
    let stubs = conforming();
    let count = stubs.len();
    server.mount_all(stubs).await?;
    let report = server.check_against(&spec()).await?;
    assert_eq!(report.checked(), count);
    // The fault is no response to check: said so, not passed silently.
    assert_eq!(report.unchecked().len(), 1, "{:?}", report.unchecked());
    assert!(report.unchecked()[0].reason.contains("fault"));

    // The same set against the same API written as OpenAPI 3.1 JSON.
    let spec31 = OpenApi::from_path(fixture("payment-api-3.1.json"))?;
    assert_eq!(spec31.version(), "3.1.0");
    server.check_against(&spec31).await?;
    Ok(())
}

#[tokio::test]
async fn a_renamed_field_is_caught_naming_stub_operation_place_and_field() -> Result {
    let drifted = Stub::post("/v1/charges").named("charge succeeds").respond(
        Response::status(201)
            .json(json!({"id": "ch_1", "status": "succeeded", "amount": 1250, "currency": "EUR"})),
    );
    let violations = violations_of(vec![drifted]).await?;
    assert_eq!(violations.len(), 2, "{violations}");
    let renamed = find(&violations, "/amount", ViolationKind::NotAllowed);
    assert_eq!(renamed.operation(), Some("POST /v1/charges"));
    assert_eq!(renamed.place(), &Place::ResponseBody(201));
    match renamed.subject() {
        Subject::Stub {
            id,
            label,
            namespace,
            ..
        } => {
            assert_eq!(label, "charge succeeds");
            assert_eq!(namespace, "drift");
            assert!(id.is_some());
        }
        other => panic!("{other:?}"),
    }
    find(&violations, "/amount_cents", ViolationKind::Required);

    let text = violations.to_string();
    assert!(text.starts_with("2 contract violations against "), "{text}");
    assert!(text.contains("payment-api.yaml (OpenAPI 3.0.3)"), "{text}");
    assert!(
        text.contains(
            "stub `charge succeeds` (id "
        ) && text.contains(
            ", namespace drift): POST /v1/charges, response 201 body `/amount`: `/amount` is not allowed: additionalProperties is false"
        ),
        "{text}"
    );
    assert!(
        text.contains("response 201 body `/amount_cents`: `/amount_cents` is required"),
        "{text}"
    );
    assert!(text.contains("to fix:"), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_status_the_operation_does_not_declare_is_caught() -> Result {
    let violations = violations_of(vec![
        Stub::post("/v1/charges").respond(Response::status(500).json(error_body("boom")))
    ])
    .await?;
    assert_eq!(violations.len(), 1, "{violations}");
    let v = &violations.violations()[0];
    assert_eq!(v.kind(), ViolationKind::UndeclaredStatus);
    assert_eq!(v.place(), &Place::Response(500));
    assert!(v.message().contains("201, 402, 429"), "{}", v.message());
    Ok(())
}

#[tokio::test]
async fn a_wrong_enum_value_and_a_wrong_type_are_caught() -> Result {
    let violations = violations_of(vec![Stub::get("/v1/charges/ch_1").respond(
        Response::ok().json(json!({
            "id": "ch_1", "status": "pending", "amount_cents": "1250", "currency": "EUR",
            "failure_reason": 7
        })),
    )])
    .await?;
    assert_eq!(violations.len(), 3, "{violations}");
    let status = find(&violations, "/status", ViolationKind::Enum);
    assert_eq!(status.operation(), Some("GET /v1/charges/{id}"));
    assert!(
        status.message().contains("\"pending\""),
        "{}",
        status.message()
    );
    find(&violations, "/amount_cents", ViolationKind::Type);
    // `nullable: true` allows null, and nothing else of another type.
    find(&violations, "/failure_reason", ViolationKind::Type);
    Ok(())
}

#[tokio::test]
async fn an_undeclared_path_method_or_query_parameter_is_caught() -> Result {
    let violations = violations_of(vec![
        Stub::post("/v1/refunds").respond(Response::status(201)),
        Stub::delete("/v1/charges/ch_1").respond(Response::status(204)),
        Stub::any()
            .method("GET")
            .path_regex("/v2/charges/.*")
            .respond(Response::ok()),
        Stub::get("/v1/charges")
            .query("page", StringMatcher::equal_to("2"))
            .respond(Response::ok().json(json!({"data": []}))),
        Stub::get("/v1/charges/42").respond(Response::ok().json(charge())),
    ])
    .await?;
    assert_eq!(violations.len(), 5, "{violations}");
    let refunds = by_label(&violations, "POST /v1/refunds");
    assert_eq!(
        (refunds.kind(), refunds.place()),
        (ViolationKind::UnknownPath, &Place::Path)
    );
    assert_eq!(refunds.operation(), None);
    let delete = by_label(&violations, "DELETE /v1/charges/ch_1");
    assert_eq!(
        (delete.kind(), delete.place()),
        (ViolationKind::UnknownMethod, &Place::Method)
    );
    assert!(
        delete
            .message()
            .contains("declares GET for `/v1/charges/{id}`, not DELETE"),
        "{}",
        delete.message()
    );
    let v2 = by_label(&violations, "GET /v2/charges/.*");
    assert_eq!(v2.kind(), ViolationKind::UnknownPath);
    assert!(
        v2.message().contains("none starts with `/v2/charges/`"),
        "{}",
        v2.message()
    );
    let page = by_label(&violations, "GET /v1/charges");
    assert_eq!(
        (page.kind(), page.place()),
        (
            ViolationKind::UnknownParameter,
            &Place::Query("page".into())
        )
    );
    let id = by_label(&violations, "GET /v1/charges/42");
    assert_eq!(
        (id.kind(), id.place()),
        (
            ViolationKind::InvalidParameter,
            &Place::PathParameter("id".into())
        )
    );
    assert!(id.message().contains("\"42\""), "{}", id.message());
    Ok(())
}

#[tokio::test]
async fn response_headers_and_request_body_patterns_are_checked() -> Result {
    let violations = violations_of(vec![
        Stub::post("/v1/charges")
            .named("no retry-after")
            .respond(Response::status(429).json(error_body("rate_limited"))),
        Stub::post("/v1/charges")
            .named("retry-after not a number")
            .respond(
                Response::status(429)
                    .header("retry-after", "soon")
                    .json(error_body("rate_limited")),
            ),
        Stub::post("/v1/charges")
            .named("amount as text")
            .body(BodyPattern::json(json!({
                "amount_cents": "12.50", "currency": "EUR", "customer_id": "c", "order_id": "o"
            })))
            .respond(Response::status(201).json(charge())),
        Stub::post("/v1/charges")
            .named("no body for 402")
            .respond(Response::status(402)),
    ])
    .await?;
    assert_eq!(violations.len(), 4, "{violations}");
    let header = by_label(&violations, "no retry-after");
    assert_eq!(header.kind(), ViolationKind::MissingParameter);
    assert_eq!(
        header.place(),
        &Place::ResponseHeader(429, "Retry-After".into())
    );
    let value = by_label(&violations, "retry-after not a number");
    assert_eq!(value.kind(), ViolationKind::InvalidParameter);
    assert!(value.message().contains("\"soon\""), "{}", value.message());
    let body = by_label(&violations, "amount as text");
    assert_eq!(
        (body.pointer(), body.kind()),
        ("/amount_cents", ViolationKind::Type)
    );
    assert_eq!(body.place(), &Place::RequestBody);
    let missing = by_label(&violations, "no body for 402");
    assert_eq!(missing.kind(), ViolationKind::MissingBody);
    assert_eq!(missing.place(), &Place::ResponseBody(402));
    Ok(())
}

#[tokio::test]
async fn requests_the_system_under_test_sent_are_checked() -> Result {
    let server = StubServer::start().await?;
    let tenant = server.namespace("checkout-7").await?;
    tenant.mount_all(conforming()).await?;
    // What a lenient stub set also has: a catch-all that answers any charge.
    tenant
        .mount(
            Stub::post("/v1/charges")
                .priority(10)
                .respond(Response::status(201).json(charge())),
        )
        .await?;
    let http = client();
    // As the spec wants it.
    http.post(format!("{}/v1/charges", tenant.url()))
        .header("idempotency-key", "k1")
        .json(&new_charge())
        .send()
        .await?;
    http.get(format!("{}/v1/charges/ch_1", tenant.url()))
        .send()
        .await?;
    let report = tenant.check_received_against(&spec()).await?;
    assert_eq!(report.checked(), 2);

    // A checkout that forgot the customer and the idempotency key, and calls an endpoint the
    // provider does not have.
    tenant.clear_requests().await?;
    let mut forgetful = new_charge();
    forgetful
        .as_object_mut()
        .expect("an object")
        .remove("customer_id");
    let answer = http
        .post(format!("{}/v1/charges", tenant.url()))
        .json(&forgetful)
        .send()
        .await?;
    assert_eq!(
        answer.status(),
        201,
        "the stub answers anyway: only the contract catches it"
    );
    http.get(format!("{}/v1/charges?limit=500", tenant.url()))
        .send()
        .await?;
    http.post(format!("{}/v1/refunds", tenant.url()))
        .json(&json!({}))
        .send()
        .await?;
    let Err(StubError::Contract(violations)) = tenant.check_received_against(&spec()).await else {
        panic!("the journal breaks the contract");
    };
    assert_eq!(violations.len(), 4, "{violations}");
    let customer = find(&violations, "/customer_id", ViolationKind::Required);
    assert_eq!(customer.place(), &Place::RequestBody);
    assert_eq!(customer.operation(), Some("POST /v1/charges"));
    match customer.subject() {
        Subject::Request {
            method,
            url,
            namespace,
            ..
        } => {
            assert_eq!((method.as_str(), url.as_str()), ("POST", "/v1/charges"));
            assert_eq!(namespace, "checkout-7");
        }
        other => panic!("{other:?}"),
    }
    let key = violations
        .iter()
        .find(|v| v.kind() == ViolationKind::MissingParameter)
        .expect("the idempotency key is missing");
    assert_eq!(key.place(), &Place::RequestHeader("Idempotency-Key".into()));
    let limit = violations
        .iter()
        .find(|v| v.kind() == ViolationKind::InvalidParameter)
        .expect("limit is too large");
    assert_eq!(limit.place(), &Place::Query("limit".into()));
    assert!(violations
        .iter()
        .any(|v| v.kind() == ViolationKind::UnknownPath && v.operation().is_none()));
    let text = violations.to_string();
    assert!(
        text.contains("request POST /v1/charges (journal id ")
            && text.contains(
                "namespace checkout-7): POST /v1/charges, request body `/customer_id`: `/customer_id` is required"
            ),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn a_remote_handle_checks_through_the_admin_api() -> Result {
    // As the container's stub is driven: over HTTP, with the admin credentials.
    let server = StubServer::start().await?;
    let remote = StubServer::connect(&server.admin_url()).await?;
    remote
        .mount(
            Stub::post("/v1/charges")
                .respond(Response::status(201).json(json!({"id": "ch_1", "status": "ok"}))),
        )
        .await?;
    let Err(StubError::Contract(violations)) = remote.check_against(&spec()).await else {
        panic!("the stub breaks the contract");
    };
    find(&violations, "/status", ViolationKind::Enum);
    find(&violations, "/amount_cents", ViolationKind::Required);
    find(&violations, "/currency", ViolationKind::Required);

    client()
        .post(format!("{}/v1/charges", remote.url()))
        .header("idempotency-key", "k")
        .json(&json!({"amount_cents": 0, "currency": "eur", "customer_id": "c", "order_id": "o"}))
        .send()
        .await?;
    let Err(StubError::Contract(violations)) = remote.check_received_against(&spec()).await else {
        panic!("the request breaks the contract");
    };
    assert_eq!(violations.len(), 2, "{violations}");
    find(&violations, "/amount_cents", ViolationKind::Constraint);
    find(&violations, "/currency", ViolationKind::Constraint);
    Ok(())
}

#[tokio::test]
async fn recorded_traffic_is_checked() -> Result {
    // The "provider" has drifted from its published spec: it now says `amount`.
    let provider = StubServer::start().await?;
    provider
        .mount(
            Stub::post("/v1/charges").respond(Response::status(201).json(
                json!({"id": "ch_9", "status": "succeeded", "amount": 5, "currency": "EUR"}),
            )),
        )
        .await?;
    provider
        .mount(Stub::get("/v1/charges/ch_9").respond(Response::ok().json(
            json!({"id": "ch_9", "status": "succeeded", "amount_cents": 5, "currency": "EUR"}),
        )))
        .await?;
    let recorder = StubServer::start().await?;
    let dir = tempfile::tempdir()?;
    recorder
        .start_recording(Recording::new(provider.url()).save_to(dir.path()))
        .await?;
    let http = client();
    http.post(format!("{}/v1/charges", recorder.url()))
        .header("idempotency-key", "k")
        .json(&new_charge())
        .send()
        .await?;
    http.get(format!("{}/v1/charges/ch_9", recorder.url()))
        .send()
        .await?;
    let recorded = recorder.stop_recording().await?;
    assert_eq!(recorded.len(), 2);

    let spec = spec();
    let Err(StubError::Contract(violations)) = spec.check_mappings_dir(dir.path()) else {
        panic!("the recording breaks the contract");
    };
    assert_eq!(violations.len(), 2, "{violations}");
    let renamed = find(&violations, "/amount", ViolationKind::NotAllowed);
    match renamed.subject() {
        Subject::Stub {
            file: Some(file),
            label,
            ..
        } => {
            assert!(file.starts_with(dir.path()), "{}", file.display());
            assert_eq!(label, "recorded POST /v1/charges");
        }
        other => panic!("{other:?}"),
    }
    assert!(violations.to_string().contains("file "), "{violations}");
    // The recorded stubs as returned: the same finding; the GET alone passes.
    let post = recorded
        .iter()
        .find(|s| s.request.method.as_deref() == Some("POST"))
        .expect("a POST");
    let get = recorded
        .iter()
        .find(|s| s.request.method.as_deref() == Some("GET"))
        .expect("a GET");
    assert_eq!(
        spec.check_stub(post).expect_err("the POST drifted").len(),
        2
    );
    assert_eq!(spec.check_stub(get)?.checked(), 1);
    Ok(())
}

fn spec_error(result: std::result::Result<OpenApi, StubError>) -> String {
    match result {
        Err(e @ StubError::OpenApi { .. }) => e.to_string(),
        Err(other) => panic!("not a spec error: {other}"),
        Ok(_) => panic!("the spec was accepted"),
    }
}

#[test]
fn a_bad_spec_gives_a_clear_actionable_error() -> Result {
    let dir = tempfile::tempdir()?;

    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /v1/charges:\n    post: [unclosed\n",
    )?;
    let text = spec_error(OpenApi::from_path(&broken));
    assert!(text.contains(&broken.display().to_string()), "{text}");
    assert!(text.contains("line "), "{text}");
    assert!(text.contains("is not valid YAML"), "{text}");
    assert!(text.contains("to fix:"), "{text}");
    let Err(StubError::OpenApi { line, .. }) = OpenApi::from_path(&broken) else {
        unreachable!()
    };
    assert!(line.is_some_and(|l| l >= 5), "{line:?}");

    let dangling = dir.path().join("dangling.yaml");
    std::fs::write(
        &dangling,
        "openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths:\n  /v1/charges:\n    get:\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema: {$ref: '#/components/schemas/Chrge'}\n",
    )?;
    let text = spec_error(OpenApi::from_path(&dangling));
    assert!(
        text.contains(
            "`/paths/~1v1~1charges/get/responses/200/content/application~1json/schema/$ref`"
        ),
        "{text}"
    );
    assert!(
        text.contains("\"#/components/schemas/Chrge\" points to nothing"),
        "{text}"
    );
    assert!(text.contains("dangling.yaml, line 11: "), "{text}");

    let swagger = dir.path().join("swagger.json");
    std::fs::write(&swagger, r#"{"swagger": "2.0", "paths": {}}"#)?;
    let text = spec_error(OpenApi::from_path(&swagger));
    assert!(
        text.contains("Swagger 2.0") && text.contains("swagger2openapi"),
        "{text}"
    );

    let bad_schema = dir.path().join("bad-schema.json");
    std::fs::write(
        &bad_schema,
        r#"{"openapi": "3.1.0", "info": {"title": "x", "version": "1"}, "paths": {"/a": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "integr"}}}}}}}}}"#,
    )?;
    let text = spec_error(OpenApi::from_path(&bad_schema));
    assert!(text.contains("is not a valid schema"), "{text}");

    let text = spec_error(OpenApi::from_path(dir.path().join("missing.yaml")));
    assert!(
        text.contains("missing.yaml")
            && text.contains("cannot be read")
            && text.contains("CARGO_MANIFEST_DIR"),
        "{text}"
    );
    Ok(())
}

/// OpenAPI 3.1 (type arrays for null), a `servers` base path, a status range, and `readOnly` /
/// `writeOnly` fields: required one way only.
#[tokio::test]
async fn read_only_fields_base_paths_and_ranges_in_a_3_1_spec() -> Result {
    let spec = OpenApi::from_yaml_str(
        r##"
openapi: 3.1.0
info: {title: orders, version: "1"}
servers: [{url: "https://shop.example.com/api/"}]
paths:
  /orders:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Order"}
      responses:
        "201":
          description: made
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Order"}
        "4XX":
          description: refused
components:
  schemas:
    Id: {type: string, readOnly: true}
    Order:
      type: object
      required: [id, sku, secret]
      properties:
        id: {$ref: "#/components/schemas/Id"}
        sku: {type: [string, "null"]}
        secret: {type: string, writeOnly: true}
"##,
    )?;
    let server = StubServer::start().await?;
    server
        .mount_all([
            Stub::post("/api/orders")
                .named("made")
                .body(BodyPattern::json(json!({"sku": null, "secret": "s"})))
                .respond(Response::status(201).json(json!({"id": "o1", "sku": "a"}))),
            Stub::post("/api/orders")
                .named("refused")
                .priority(9)
                .respond(Response::status(409)),
        ])
        .await?;
    assert_eq!(server.check_against(&spec).await?.checked(), 2);
    client()
        .post(format!("{}/api/orders", server.url()))
        .json(&json!({"sku": null, "secret": "s"}))
        .send()
        .await?;
    server.check_received_against(&spec).await?;

    // One way or the other, a required field is missing, and a 409 with a body the spec
    // does not declare.
    server
        .mount(
            Stub::post("/api/orders")
                .named("drifted")
                .body(BodyPattern::json(json!({"id": "o1", "secret": "s"})))
                .respond(Response::status(201).json(json!({"sku": "a"}))),
        )
        .await?;
    server
        .mount(
            Stub::post("/api/orders")
                .named("chatty refusal")
                .priority(8)
                .respond(Response::status(409).body("no")),
        )
        .await?;
    let Err(StubError::Contract(violations)) = server.check_against(&spec).await else {
        panic!("the drifted stubs break the contract");
    };
    assert_eq!(violations.len(), 3, "{violations}");
    let sku = find(&violations, "/sku", ViolationKind::Required);
    assert_eq!(sku.place(), &Place::RequestBody);
    let id = find(&violations, "/id", ViolationKind::Required);
    assert_eq!(id.place(), &Place::ResponseBody(201));
    assert_eq!(id.operation(), Some("POST /orders"));
    let chatty = by_label(&violations, "chatty refusal");
    assert_eq!(chatty.kind(), ViolationKind::UnexpectedBody);
    Ok(())
}
