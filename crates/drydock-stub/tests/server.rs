//! The server itself: expectations written as wiremock-rs writes them, the journal's bound under
//! load, and HTTPS with a CA made for the server.

mod common;

use drydock_stub::{Response, Stub, StubError, StubServer, Times};
use serde_json::Value;

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

#[tokio::test]
async fn expectations_take_counts_and_ranges() -> Result {
    let server = StubServer::start().await?;
    server
        .mount_all([
            Stub::get("/one").expect(1),
            Stub::get("/some").expect(1..=3),
            Stub::get("/many").expect(2..),
            Stub::get("/few").expect(..=1),
            Stub::get("/never").expect(Times::NEVER),
        ])
        .await?;
    let c = common::client();
    for path in ["/one", "/some", "/some", "/many", "/many", "/many"] {
        c.get(format!("{}{path}", server.url())).send().await?;
    }
    server.verify().await?;
    c.get(format!("{}/few", server.url())).send().await?;
    c.get(format!("{}/few", server.url())).send().await?;
    let Err(StubError::Verification(failure)) = server.verify().await else {
        panic!("/few was called twice");
    };
    assert_eq!(failure.failed.len(), 1);
    assert_eq!(failure.failed[0].expected, Times::AtMost(1));
    assert!(failure.to_string().contains("at most 1"), "{failure}");
    server.clear_requests().await?;
    // Cleared: /one and /many are now short of their counts; the drop check is not wanted.
    drop(server.verify_on_drop(false));
    Ok(())
}

#[tokio::test]
async fn the_journal_limit_holds_under_load() -> Result {
    const LIMIT: usize = 100;
    const TASKS: usize = 8;
    const EACH: usize = 100;
    let server = StubServer::builder()
        .max_request_journal_entries(Some(LIMIT))
        .start()
        .await?;
    server
        .mount(
            Stub::get("/load")
                .respond(Response::ok())
                .expect((TASKS * EACH) as u64),
        )
        .await?;
    let url = format!("{}/load", server.url());
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (c, url) = (common::client(), url.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                let answer = c.get(&url).send().await.expect("answers");
                assert_eq!(answer.status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let stats = server.journal_stats().await?;
    assert_eq!(stats.total, LIMIT);
    assert_eq!(stats.limit, Some(LIMIT));
    assert_eq!(stats.dropped, (TASKS * EACH - LIMIT) as u64);
    assert_eq!(server.requests().await?.len(), LIMIT);
    // Call counts are kept apart from the journal: the expectation of 800 calls holds.
    server.verify().await?;

    let meta: Value = common::client()
        .get(format!("{}/__admin/requests", server.admin_url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(meta["meta"]["total"], LIMIT);
    assert_eq!(meta["meta"]["dropped"], TASKS * EACH - LIMIT);
    Ok(())
}

/// A client that trusts only `ca`.
fn trusting(ca: &drydock_stub::CertificateAuthority) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.reqwest_certificate().expect("the CA parses"))
        .build()
        .expect("a client")
}

#[tokio::test]
async fn an_https_stub_answers_a_client_that_trusts_only_its_ca() -> Result {
    let server = StubServer::builder().https().start().await?;
    server
        .mount(Stub::get("/secure").respond(Response::ok().body("over TLS")))
        .await?;
    assert!(
        server.url().starts_with("https://127.0.0.1:"),
        "{}",
        server.url()
    );
    let ca = server.certificate_authority().expect("a CA");
    assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"));

    let answer = trusting(&ca)
        .get(format!("{}/secure", server.url()))
        .send()
        .await?;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await?, "over TLS");
    let by_name = server.url().replace("127.0.0.1", "localhost");
    assert_eq!(
        trusting(&ca)
            .get(format!("{by_name}/secure"))
            .send()
            .await?
            .status(),
        200,
        "the certificate names localhost too"
    );
    assert_eq!(server.requests().await?[0].scheme, "https");

    // Another server's CA is not this one's: the handshake fails.
    let other = StubServer::builder().https().start().await?;
    let other_ca = other.certificate_authority().expect("a CA");
    assert_ne!(other_ca, ca);
    let refused = trusting(&other_ca)
        .get(format!("{}/secure", server.url()))
        .send()
        .await
        .expect_err("untrusted certificate");
    assert!(
        common::chain(&refused).contains("certificate"),
        "{}",
        common::chain(&refused)
    );
    Ok(())
}

#[tokio::test]
async fn https_on_a_second_port_hands_out_its_ca_over_the_admin_api() -> Result {
    let server = StubServer::builder()
        .https_address("127.0.0.1:0".parse()?)
        .start()
        .await?;
    server
        .mount(Stub::get("/both").respond(Response::ok().body("either")))
        .await?;
    assert!(server.url().starts_with("http://"));
    let https = server.https_url().expect("an HTTPS address");

    // As a test would do against the container: connect over HTTP, fetch the CA, call HTTPS.
    let remote = StubServer::connect(&server.admin_url())
        .await?
        .verify_on_drop(false);
    let ca = remote
        .fetch_certificate_authority()
        .await?
        .expect("the server serves HTTPS");
    assert_eq!(Some(ca.clone()), server.certificate_authority());
    let body = trusting(&ca)
        .get(format!("{https}/both"))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(body, "either");
    let plain = common::client()
        .get(format!("{}/both", server.url()))
        .send()
        .await?;
    assert_eq!(plain.text().await?, "either");
    Ok(())
}

#[tokio::test]
async fn a_recycled_server_starts_empty() -> Result {
    let first = StubServer::start().await?;
    first
        .mount(Stub::get("/left-over").respond(Response::ok()).expect(1))
        .await?;
    let c = common::client();
    c.get(format!("{}/left-over", first.url())).send().await?;
    let address = first.address();
    drop(first);

    // The pool hands the same server back, reset. (Under nextest this test has its process to
    // itself; under `cargo test` a test on another thread may take that server first.)
    let second = StubServer::start().await?;
    if std::env::var("NEXTEST_EXECUTION_MODE").as_deref() == Ok("process-per-test") {
        assert_eq!(second.address(), address, "recycled");
    }
    assert!(second.stubs().await?.is_empty());
    assert!(second.requests().await?.is_empty());
    let answer = c.get(format!("{}/left-over", second.url())).send().await?;
    assert_eq!(answer.status(), 404, "the old stub is gone");
    second.clear_requests().await?;

    // A server with options of its own is never a pooled one.
    let own = StubServer::builder()
        .max_request_journal_entries(None)
        .start()
        .await?;
    assert_ne!(own.address(), second.address());
    Ok(())
}
