//! Who may drive a stub server, and where it may send requests: the admin API asks for
//! credentials (WireMock's `--admin-api-basic-auth`), stubbed endpoints stay open, and proxying
//! and recording reach only the upstreams that were configured.

mod common;

use drydock_stub::{AdminCredentials, OnMiss, Recording, Response, Stub, StubError, StubServer};
use serde_json::{json, Value};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// An upstream that answers every request with `from upstream`.
async fn upstream() -> Result<StubServer> {
    let upstream = StubServer::start().await?.verify_on_drop(false);
    upstream
        .mount(
            Stub::any()
                .path_prefix("/")
                .respond(Response::ok().body("from upstream")),
        )
        .await?;
    Ok(upstream)
}

#[tokio::test]
async fn an_in_process_servers_admin_api_asks_for_its_credentials_and_its_stubs_do_not() -> Result {
    let server = StubServer::start().await?;
    server
        .mount(Stub::get("/open").respond(Response::ok().body("served")))
        .await?;
    let client = common::client();

    let refused = client
        .get(format!("{}/__admin/mappings", server.url()))
        .send()
        .await?;
    assert_eq!(refused.status(), 401);
    assert!(refused
        .headers()
        .get("www-authenticate")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Basic")));
    let body: Value = refused.json().await?;
    let detail = body["errors"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("requires HTTP basic credentials"),
        "{detail}"
    );
    assert!(detail.contains("to fix:"), "{detail}");

    // A wrong password, or another scheme, is no better.
    let wrong = AdminCredentials::new("drydock", "guess");
    for authorization in [wrong.authorization(), "Bearer guess".to_string()] {
        let status = client
            .post(format!("{}/__admin/mappings", server.url()))
            .header("authorization", authorization)
            .body(r#"{"request": {"url": "/open"}, "response": {"status": 500}}"#)
            .send()
            .await?
            .status();
        assert_eq!(status, 401);
    }

    // With them (in the URL, as reqwest and curl take them): the admin API answers.
    let listed: Value = client
        .get(format!("{}/__admin/mappings", server.admin_url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(listed["meta"]["total"], 1);
    // Health asks for them too, as WireMock's does; the stubbed endpoint needs nothing, and its
    // stub was not replaced.
    let health = client
        .get(format!("{}/__admin/health", server.url()))
        .send()
        .await?;
    assert_eq!(health.status(), 401);
    let served = client.get(format!("{}/open", server.url())).send().await?;
    assert_eq!(served.status(), 200);
    assert_eq!(served.text().await?, "served");

    // The password stays out of the URL and of `Debug`.
    let credentials = server.admin_credentials().expect("generated");
    assert!(!server.url().contains(credentials.password()));
    assert!(!format!("{server:?} {credentials:?}").contains(credentials.password()));
    Ok(())
}

#[tokio::test]
async fn a_server_started_open_stays_open_as_wiremock_is() -> Result {
    let server = StubServer::builder()
        .admin_api_basic_auth(None)
        .start()
        .await?;
    assert_eq!(server.admin_credentials(), None);
    let status = common::client()
        .get(format!("{}/__admin/mappings", server.url()))
        .send()
        .await?
        .status();
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn a_remote_handle_sends_the_credentials_of_its_url_and_fails_clearly_without() -> Result {
    let server = StubServer::start().await?;
    let remote = StubServer::connect(&server.admin_url())
        .await?
        .verify_on_drop(false);
    remote
        .mount(Stub::get("/r").respond(Response::ok()))
        .await?;
    assert_eq!(server.stubs().await?.len(), 1);
    assert!(!remote.url().contains('@'), "{}", remote.url());

    let error = StubServer::connect(&server.url())
        .await
        .expect_err("refused without credentials");
    assert!(matches!(error, StubError::Admin { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("401"), "{text}");
    assert!(text.contains("STUB_ADMIN_URL"), "{text}");
    Ok(())
}

#[tokio::test]
async fn recording_and_proxying_reach_only_the_upstreams_configured() -> Result {
    let allowed = upstream().await?;
    let other = upstream().await?;
    let server = StubServer::builder()
        .allowed_upstreams([allowed.url()])
        .start()
        .await?
        .verify_on_drop(false);
    let admin = format!("{}/__admin", server.admin_url());
    let client = common::client();

    // Through the admin API, even with the credentials: another upstream is refused, named.
    for (path, body) in [
        (
            "/recordings/start",
            json!({"targetBaseUrl": "http://169.254.169.254"}),
        ),
        (
            "/mappings",
            json!({"request": {"urlPathPattern": "/.*"}, "response": {"proxyBaseUrl": other.url()}}),
        ),
        (
            "/on-miss",
            json!({"mode": "passThrough", "targetBaseUrl": other.url()}),
        ),
    ] {
        let method = if path == "/on-miss" { "PUT" } else { "POST" };
        let refused = client
            .request(method.parse()?, format!("{admin}{path}"))
            .body(body.to_string())
            .send()
            .await?;
        assert_eq!(refused.status(), 403, "{path}");
        let body: Value = refused.json().await?;
        let detail = body["errors"][0]["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("is not one this stub server may forward to"),
            "{detail}"
        );
        assert!(detail.contains("--allowed-upstreams"), "{detail}");
        assert!(
            detail.contains(&allowed.url()),
            "lists the allowed: {detail}"
        );
    }
    // The configured one is reached.
    let started = client
        .post(format!("{admin}/recordings/start"))
        .body(json!({"targetBaseUrl": allowed.url()}).to_string())
        .send()
        .await?;
    assert_eq!(started.status(), 200);
    let body = client
        .get(format!("{}/recorded", server.url()))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(body, "from upstream");

    // Widening needs the credentials; with them, the other upstream is reached.
    let add = json!({"origins": [other.url()]}).to_string();
    let status = client
        .post(format!("{}/__admin/upstreams", server.url()))
        .body(add.clone())
        .send()
        .await?
        .status();
    assert_eq!(status, 401);
    let listed: Value = client
        .post(format!("{admin}/upstreams"))
        .body(add)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        listed["upstreams"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    Ok(())
}

#[tokio::test]
async fn a_handle_adds_the_upstreams_its_test_configures() -> Result {
    let upstream = upstream().await?;
    let server = StubServer::builder()
        .allowed_upstreams(Vec::<String>::new())
        .start()
        .await?
        .verify_on_drop(false);
    // Remotely, through the authenticated admin API, as drydock's container handle does.
    let remote = StubServer::connect(&server.admin_url())
        .await?
        .verify_on_drop(false);
    remote
        .mount(Stub::get("/proxied").respond(Response::proxy_to(upstream.url())))
        .await?;
    let body = common::client()
        .get(format!("{}/proxied", server.url()))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(body, "from upstream");
    // In process, directly.
    server
        .on_miss(OnMiss::PassThrough {
            target_base_url: upstream.url(),
        })
        .await?;
    server
        .start_recording(Recording::new(upstream.url()))
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_open_server_with_an_allow_list_cannot_be_widened() -> Result {
    let server = StubServer::builder()
        .admin_api_basic_auth(None)
        .allowed_upstreams(["http://127.0.0.1:9"])
        .start()
        .await?;
    let refused = common::client()
        .post(format!("{}/__admin/upstreams", server.url()))
        .body(r#"{"origins": ["http://169.254.169.254"]}"#)
        .send()
        .await?;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await?;
    assert!(body["errors"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("--admin-api-basic-auth"));
    Ok(())
}
