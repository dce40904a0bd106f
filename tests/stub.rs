//! The stub server as a container: driven from the test, called from another container on the
//! environment's network, and sliced into namespaces in a shared environment.

use std::{collections::HashMap, path::Path, time::Duration};

use drydock::{
    stub::{Response, StringMatcher, Stub, Times},
    Env, HttpStub,
};
use drydock_tests::run_on_network;
use serde_json::{json, Value};

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

fn mappings() -> &'static Path {
    // drydock-stub's own WireMock fixture: mappings/, __files/, templates, a fault.
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/drydock-stub/tests/wiremock"
    ))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client")
}

/// The stub image: it carries curl, so it doubles as the caller.
fn stub_image() -> String {
    std::env::var("DRYDOCK_IMAGE_STUB").unwrap_or_else(|_| "drydock/stub:0.1.0".into())
}

#[tokio::test]
async fn a_container_on_the_network_calls_the_stub_by_name() -> Result {
    let env = Env::builder()
        .with_stub(HttpStub::default().mappings(mappings()))
        .start()
        .await?;
    let endpoint = env.stub()?;
    assert!(
        endpoint.url().starts_with("http://127.0.0.1:"),
        "{}",
        endpoint.url()
    );
    let stubs = endpoint.connect().await?;
    stubs
        .mount(
            Stub::get("/quotes/EUR")
                .header("user-agent", StringMatcher::contains("curl"))
                .respond(Response::ok().json(json!({"quote": 1.08})))
                .expect(Times::Exactly(1)),
        )
        .await?;

    // From this process: the spec's WireMock mappings are served.
    let health: Value = client()
        .get(format!("{}/health", endpoint.url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(health, json!({"status": "UP"}));

    // From a container on the environment's network, by the stub's container name.
    let labels = HashMap::from([
        (
            "drydock.instance".to_string(),
            env.instance_id().to_string(),
        ),
        ("drydock.run".to_string(), env.run_id().to_string()),
    ]);
    let url = format!("{}/quotes/EUR", endpoint.internal_url());
    let ran = run_on_network(
        &stub_image(),
        env.network(),
        labels,
        &["curl", "-sS", "--max-time", "10", &url],
        Duration::from_secs(60),
    )
    .await?;
    assert_eq!(ran.exit_code, 0, "curl {url}: {}", ran.output);
    assert_eq!(ran.output.trim(), r#"{"quote":1.08}"#);

    let journal = stubs.requests().await?;
    let call = journal
        .iter()
        .find(|r| r.url == "/quotes/EUR")
        .expect("journalled");
    assert!(call.was_matched);
    stubs.verify().await?;
    Ok(())
}

#[tokio::test]
async fn slices_of_a_shared_stub_never_see_each_other() -> Result {
    let spec = || {
        Env::builder()
            .with_stub(HttpStub::default().mappings(mappings()))
            .grace_period(Duration::from_secs(1))
    };
    let (a, b) = tokio::try_join!(spec().attach(), spec().attach())?;
    assert_eq!(a.instance_id(), b.instance_id(), "one server");
    let (ea, eb) = (a.stub()?, b.stub()?);
    assert_ne!(ea.namespace(), eb.namespace());
    let (sa, sb) = (ea.connect().await?, eb.connect().await?);
    sa.mount(Stub::get("/whoami").respond(Response::ok().body("a")))
        .await?;
    sb.mount(Stub::get("/whoami").respond(Response::ok().body("b")))
        .await?;

    let c = client();
    assert_eq!(
        c.get(format!("{}/whoami", ea.url()))
            .send()
            .await?
            .text()
            .await?,
        "a"
    );
    assert_eq!(
        c.get(format!("{}/whoami", eb.url()))
            .send()
            .await?
            .text()
            .await?,
        "b"
    );
    // Each starts with the spec's mappings.
    assert_eq!(
        c.get(format!("{}/health", eb.url())).send().await?.status(),
        200
    );
    assert_eq!(sa.requests().await?.len(), 1);
    assert_eq!(sb.requests().await?.len(), 2);
    assert_eq!(a.vars()["STUB_URL"], ea.url());

    // A released slice takes its namespace with it (asked of the server itself: the slice's
    // proxy ends with the slice).
    let gone = eb.direct().url();
    drop(sb);
    drop(b);
    let mut status = 0;
    for _ in 0..50 {
        status = c
            .get(format!("{gone}/whoami"))
            .send()
            .await?
            .status()
            .as_u16();
        if status == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404, "the namespace of a released slice is removed");
    assert_eq!(
        c.get(format!("{}/whoami", ea.url()))
            .send()
            .await?
            .text()
            .await?,
        "a"
    );
    Ok(())
}

#[tokio::test]
async fn bad_mappings_fail_before_anything_starts() -> Result {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("broken.json"),
        r#"{"request": {"method": "POST", "url": "/x", "multipartPatterns": [{}]}, "response": {}}"#,
    )?;
    let started = std::time::Instant::now();
    let error = Env::builder()
        .with_stub(HttpStub::default().mappings(dir.path()))
        .start()
        .await
        .expect_err("the mapping is outside the supported subset");
    let message = error.to_string();
    assert!(message.contains("broken.json"), "{message}");
    assert!(message.contains("multipartPatterns"), "{message}");
    // Checked while reading the spec: no engine call, so nothing was created to be left behind.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

/// The stub container serves HTTPS when asked: a client that trusts only the CA the endpoint
/// hands out gets the stubbed answer — from this process, through the slice's fault proxy, in
/// the slice's namespace, and from a container by name — and a client that trusts the usual
/// roots does not.
#[tokio::test]
async fn an_https_stub_answers_a_client_that_trusts_only_its_ca() -> Result {
    let spec = || {
        Env::builder()
            .with_stub(HttpStub::default().https())
            .grace_period(Duration::from_secs(1))
    };
    let slice = spec().attach().await?;
    let endpoint = slice.stub()?;
    let https = endpoint.https_url().ok_or("no HTTPS URL")?;
    assert!(https.starts_with("https://127.0.0.1:"), "{https}");
    assert!(https.contains("/__ns/"), "the slice's namespace: {https}");
    assert_eq!(
        slice.vars().get("STUB_HTTPS_URL"),
        Some(&https),
        "the system under test reads it"
    );
    endpoint
        .connect()
        .await?
        .mount(Stub::get("/secure").respond(Response::ok().body("over tls")))
        .await?;

    let ca = endpoint
        .certificate_authority()
        .await?
        .ok_or("an HTTPS stub has a CA")?;
    let trusting = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.reqwest_certificate()?)
        .build()?;
    let answer = trusting.get(format!("{https}/secure")).send().await?;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await?, "over tls");

    // The usual roots do not know this CA.
    let untrusting = reqwest::Client::builder().no_proxy().build()?;
    assert!(
        untrusting
            .get(format!("{https}/secure"))
            .send()
            .await
            .is_err(),
        "a client without the stub's CA was served"
    );

    // From a container on the network, by name, with the CA in a file.
    let internal = endpoint
        .internal_https_url()
        .ok_or("no internal HTTPS URL")?;
    let script = format!(
        "printf '%s' '{}' > /tmp/ca.pem && curl -sS --max-time 10 --cacert /tmp/ca.pem {internal}/secure",
        ca.pem()
    );
    let labels = HashMap::from([
        (
            "drydock.instance".to_string(),
            slice.instance_id().to_string(),
        ),
        ("drydock.run".to_string(), slice.run_id().to_string()),
    ]);
    let ran = run_on_network(
        &stub_image(),
        slice.network(),
        labels,
        &["sh", "-c", &script],
        Duration::from_secs(60),
    )
    .await?;
    assert_eq!(ran.exit_code, 0, "{}", ran.output);
    assert!(ran.output.contains("over tls"), "{}", ran.output);
    Ok(())
}

/// The container forwards (proxy stubs, pass-through, recording) only to upstreams the test
/// configured: those of `allow_upstream`, and those its handle adds; anything else is refused
/// with 403 naming the upstream and the setting, also to a caller holding the credentials.
#[tokio::test]
async fn the_stub_container_forwards_only_to_upstreams_the_test_configured() -> Result {
    let env = Env::builder()
        .with_stub(HttpStub::default().allow_upstream("http://payments.invalid:8080"))
        .start()
        .await?;
    let endpoint = env.stub()?;
    let c = client();
    let admin = format!("{}/__admin", endpoint.admin_url());
    let listed: Value = c
        .get(format!("{admin}/upstreams"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        listed,
        json!({"upstreams": ["http://payments.invalid:8080"]})
    );

    let start = |target: &str| {
        c.post(format!("{admin}/recordings/start"))
            .body(json!({ "targetBaseUrl": target }).to_string())
            .send()
    };
    assert_eq!(start("http://payments.invalid:8080").await?.status(), 200);
    let refused = start("http://169.254.169.254").await?;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await?;
    let detail = body["errors"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("upstream http://169.254.169.254 is not one"),
        "{detail}"
    );
    assert!(detail.contains("allow_upstream"), "{detail}");

    // The test's handle adds what it configures, through the authenticated admin API.
    let stubs = endpoint.connect().await?.verify_on_drop(false);
    stubs
        .mount(Stub::get("/rates").respond(Response::proxy_to("http://rates.invalid")))
        .await?;
    let listed: Value = c
        .get(format!("{admin}/upstreams"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        listed,
        json!({"upstreams": ["http://payments.invalid:8080", "http://rates.invalid"]})
    );
    // Without the credentials, nothing of that.
    let status = c
        .get(format!("{}/__admin/upstreams", endpoint.url()))
        .send()
        .await?
        .status();
    assert_eq!(status, 401);

    // An upstream that is no URL is refused before anything starts.
    let error = Env::builder()
        .with_stub(HttpStub::default().allow_upstream("payments:8080"))
        .start()
        .await
        .expect_err("not an http(s) URL");
    let message = error.to_string();
    assert!(
        message.contains("allow_upstream(\"payments:8080\")"),
        "{message}"
    );
    assert!(message.contains("to fix"), "{message}");
    Ok(())
}

/// The contract checks work on the container's stub: its stubs and journal are read through the
/// admin API, per slice namespace, and the request checked is one another container sent.
#[tokio::test]
async fn a_container_stub_is_checked_against_the_providers_openapi_spec() -> Result {
    use drydock::stub::{
        contract::{OpenApi, Place, Subject, ViolationKind},
        StubError,
    };
    let spec = OpenApi::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/drydock-stub/tests/openapi/payment-api.yaml"
    ))?;
    let env = Env::builder()
        .with_stub(HttpStub::default())
        .grace_period(Duration::from_secs(1))
        .attach()
        .await?;
    let endpoint = env.stub()?;
    let namespace = endpoint.namespace().unwrap_or_default().to_string();
    assert!(!namespace.is_empty(), "an attached slice has a namespace");
    let payments = endpoint.connect().await?;
    let charge = json!({"id": "ch_1", "status": "succeeded", "amount_cents": 5, "currency": "EUR"});
    payments
        .mount(Stub::post("/v1/charges").respond(Response::status(201).json(charge)))
        .await?;
    assert_eq!(payments.check_against(&spec).await?.checked(), 1);

    // A drifted stub: the namespace's stubs are read from the container.
    payments
        .mount(
            Stub::get("/v1/charges/ch_1")
                .named("drifted")
                .respond(Response::ok().json(json!({"id": "ch_1", "status": "refunded"}))),
        )
        .await?;
    let Err(StubError::Contract(violations)) = payments.check_against(&spec).await else {
        panic!("the drifted stub breaks the contract");
    };
    let status = violations
        .iter()
        .find(|v| v.pointer() == "/status")
        .expect("the status is reported");
    assert_eq!(status.kind(), ViolationKind::Enum);
    assert!(
        matches!(status.subject(), Subject::Stub { label, namespace: ns, .. } if label == "drifted" && *ns == namespace),
        "{violations}"
    );

    // The system under test, in a container, forgets the order id.
    let labels = HashMap::from([
        (
            "drydock.instance".to_string(),
            env.instance_id().to_string(),
        ),
        ("drydock.run".to_string(), env.run_id().to_string()),
    ]);
    let url = format!("{}/v1/charges", endpoint.internal_url());
    let body = r#"{"amount_cents": 5, "currency": "EUR", "customer_id": "cus_1"}"#;
    let ran = run_on_network(
        &stub_image(),
        env.network(),
        labels,
        &[
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-H",
            "content-type: application/json",
            "-H",
            "idempotency-key: k1",
            "-d",
            body,
            &url,
        ],
        Duration::from_secs(60),
    )
    .await?;
    assert_eq!(ran.exit_code, 0, "curl {url}: {}", ran.output);
    let Err(StubError::Contract(violations)) = payments.check_received_against(&spec).await else {
        panic!("the request breaks the contract");
    };
    assert_eq!(violations.len(), 1, "{violations}");
    let missing = &violations.violations()[0];
    assert_eq!(
        (missing.pointer(), missing.kind(), missing.place()),
        ("/order_id", ViolationKind::Required, &Place::RequestBody)
    );
    assert_eq!(missing.operation(), Some("POST /v1/charges"));
    Ok(())
}
