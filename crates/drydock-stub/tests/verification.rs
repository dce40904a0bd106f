//! Expected call counts, the journal, and the report for a request no stub matched.

mod common;

use drydock_stub::{BodyPattern, Response, StringMatcher, Stub, StubError, StubServer, Times};
use serde_json::json;

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

#[tokio::test]
async fn exactly_at_least_at_most_never() -> Result {
    let server = StubServer::start().await?;
    let c = common::client();
    let url = server.url();
    server
        .mount(
            Stub::get("/exactly")
                .respond(Response::ok())
                .expect(Times::Exactly(2)),
        )
        .await?;
    server
        .mount(
            Stub::get("/at-least")
                .respond(Response::ok())
                .expect(Times::AtLeast(1)),
        )
        .await?;
    server
        .mount(
            Stub::get("/at-most")
                .respond(Response::ok())
                .expect(Times::AtMost(1)),
        )
        .await?;
    server
        .mount(
            Stub::get("/never")
                .respond(Response::ok())
                .expect(Times::NEVER),
        )
        .await?;
    for path in ["/exactly", "/exactly", "/at-least", "/at-least", "/at-most"] {
        c.get(format!("{url}{path}")).send().await?;
    }
    server.verify().await?;

    c.get(format!("{url}/at-most")).send().await?;
    c.get(format!("{url}/never")).send().await?;
    c.get(format!("{url}/exactly")).send().await?;
    let Err(StubError::Verification(failure)) = server.verify().await else {
        panic!("verification must fail");
    };
    let broken: Vec<(String, u64)> = failure
        .failed
        .iter()
        .map(|f| (f.stub.clone(), f.calls))
        .collect();
    // In matching order: the newest stub first.
    assert_eq!(
        broken,
        [
            ("GET /never".to_string(), 1),
            ("GET /at-most".to_string(), 2),
            ("GET /exactly".to_string(), 3)
        ]
    );
    let report = failure.to_string();
    assert!(report.contains("GET /never (id "), "{report}");
    assert!(
        report.contains("expected never call(s), received 1"),
        "{report}"
    );
    server.reset().await?;
    Ok(())
}

#[tokio::test]
async fn the_journal_and_counting_by_pattern() -> Result {
    let server = StubServer::start().await?;
    let id = server
        .mount(Stub::post("/events").respond(Response::status(202)))
        .await?;
    let c = common::client();
    for n in 0..3 {
        c.post(format!("{}/events?n={n}", server.url()))
            .header("x-source", if n == 0 { "a" } else { "b" })
            .body(format!(r#"{{"n": {n}}}"#))
            .send()
            .await?;
    }
    c.get(format!("{}/nothing", server.url())).send().await?;
    let journal = server.requests().await?;
    assert_eq!(journal.len(), 4);
    assert_eq!(journal[1].url, "/events?n=1");
    assert_eq!(journal[1].header("X-Source"), Some("b"));
    assert_eq!(journal[1].body, r#"{"n": 1}"#);
    assert_eq!(journal[1].stub_id.as_deref(), Some(id.as_str()));
    assert!(!journal[3].was_matched);
    let from_b = Stub::post("/events").header("x-source", StringMatcher::equal_to("b"));
    assert_eq!(server.count(&from_b.request).await?, 2);
    server.clear_requests().await?;
    assert!(server.requests().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_failed_verification_shows_the_nearest_stub_and_the_diff() -> Result {
    let server = StubServer::start().await?;
    server
        .mount(Stub::get("/health").respond(Response::ok()))
        .await?;
    server
        .mount(
            Stub::post("/payments")
                .named("create payment")
                .header("x-api-key", StringMatcher::equal_to("k-1"))
                .body(BodyPattern::json(json!({"amount": 10, "currency": "EUR"})))
                .respond(Response::status(201))
                .expect(Times::Exactly(1)),
        )
        .await?;
    let answer = common::client()
        .post(format!("{}/payments", server.url()))
        .header("x-api-key", "k-1")
        .body(r#"{"amount": 12, "currency": "EUR", "note": "x"}"#)
        .send()
        .await?;
    assert_eq!(answer.status(), 404);
    let miss = answer.text().await?;
    assert!(miss.starts_with("No stub matched POST /payments"), "{miss}");
    assert!(miss.contains("Nearest stub: create payment"), "{miss}");

    let Err(error) = server.verify().await else {
        panic!("verification must fail")
    };
    let report = error.to_string();
    let expected = [
        "create payment (id ",
        "expected exactly 1 call(s), received 0",
        "1 request(s) matched no stub:",
        "No stub matched POST /payments",
        "Nearest stub: create payment",
        "1 of 4 checks failed",
        "ok   header x-api-key  \"k-1\"",
        "FAIL body",
        "$.amount: expected 10, got 12",
        "$.note: not expected (got \"x\")",
    ];
    for line in expected {
        assert!(report.contains(line), "missing {line:?} in:\n{report}");
    }
    let unmatched = server.unmatched().await?;
    assert_eq!(unmatched.len(), 1);
    assert_eq!(unmatched[0].near_misses[0].stub, "create payment");
    server.reset().await?;
    Ok(())
}

#[tokio::test]
#[should_panic(expected = "expected exactly 1 call(s), received 0")]
async fn dropping_the_server_verifies() {
    let server = StubServer::start().await.expect("starts");
    server
        .mount(
            Stub::get("/must-call")
                .respond(Response::ok())
                .expect(Times::Exactly(1)),
        )
        .await
        .expect("mounts");
    drop(server);
}

#[tokio::test]
async fn dropping_a_satisfied_server_is_quiet() -> Result {
    let server = StubServer::start().await?;
    server
        .mount(
            Stub::get("/called")
                .respond(Response::ok())
                .expect(Times::Exactly(1)),
        )
        .await?;
    common::client()
        .get(format!("{}/called", server.url()))
        .send()
        .await?;
    drop(server);
    Ok(())
}

#[tokio::test]
async fn a_remote_handle_verifies_on_drop_without_stalling_its_runtime() -> Result {
    let server = StubServer::start().await?;
    let remote = StubServer::connect(&server.admin_url()).await?;
    remote
        .mount(
            Stub::get("/x")
                .respond(Response::ok())
                .expect(Times::Exactly(1)),
        )
        .await?;
    common::client()
        .get(format!("{}/x", server.url()))
        .send()
        .await?;
    // Leaves a pooled connection driven by this (current-thread) runtime, which the drop blocks.
    remote.requests().await?;
    let started = std::time::Instant::now();
    drop(remote);
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "the drop took {took:?}"
    );
    Ok(())
}

#[tokio::test]
#[should_panic(expected = "expected exactly 1 call(s), received 0")]
async fn a_remote_handle_panics_on_drop_when_unmet() {
    let server = StubServer::start().await.expect("starts");
    let remote = StubServer::connect(&server.admin_url())
        .await
        .expect("connects");
    remote
        .mount(
            Stub::get("/never-called")
                .respond(Response::ok())
                .expect(Times::Exactly(1)),
        )
        .await
        .expect("mounts");
    drop(remote);
}
