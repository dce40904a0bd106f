//! Where WireMock users rely on WireMock's behaviour: reset, the journal's shape, the find and
//! near-miss endpoints, errors, scenarios, response headers and reason phrases; and the matchers
//! added for them (`urlPathTemplate`, `basicAuthCredentials`, `equalToXml`), each shown to reject
//! what it must.

mod common;

use std::path::Path;

use drydock_stub::{
    BodyPattern, RequestPattern, Response, StringMatcher, Stub, StubServer, STARTED,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

fn fixture() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wiremock"))
}

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.expect("answers").status().as_u16()
}

#[tokio::test]
async fn reset_keeps_the_stubs_of_mapping_files() -> Result {
    let server = StubServer::start().await?;
    let from_files = server.load_dir(fixture()).await?;
    server
        .mount(Stub::get("/extra").respond(Response::ok()))
        .await?;
    let c = common::client();
    c.get(format!("{}/health", server.url())).send().await?;

    server.reset().await?;
    let ids: Vec<String> = server
        .stubs()
        .await?
        .into_iter()
        .filter_map(|s| s.id)
        .collect();
    assert_eq!(ids.len(), from_files.len(), "only the file stubs: {ids:?}");
    assert!(from_files.iter().all(|id| ids.contains(id)));
    assert!(server.requests().await?.is_empty(), "the journal is reset");
    assert_eq!(status(c.get(format!("{}/health", server.url()))).await, 200);
    assert_eq!(status(c.get(format!("{}/extra", server.url()))).await, 404);

    // The same over the admin API; and a stub deleted by hand does not come back.
    let admin = format!("{}/__admin", server.admin_url());
    c.post(format!("{admin}/mappings"))
        .body(r#"{"request": {"url": "/api-only"}}"#)
        .send()
        .await?;
    c.delete(format!("{admin}/mappings/{}", from_files[0]))
        .send()
        .await?;
    assert_eq!(status(c.post(format!("{admin}/reset"))).await, 200);
    let listed: Value = c
        .get(format!("{admin}/mappings"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(listed["meta"]["total"], from_files.len() - 1);
    Ok(())
}

#[tokio::test]
async fn the_journal_is_in_wiremocks_shape() -> Result {
    let server = StubServer::start().await?.verify_on_drop(false);
    let id = server
        .mount(
            Stub::post("/orders")
                .named("create order")
                .respond(Response::status(201).body("made")),
        )
        .await?;
    let c = common::client();
    c.post(format!("{}/orders?x=1&x=2", server.url()))
        .header("x-trace", "t1")
        .header("cookie", "session=s1")
        .body("hello")
        .send()
        .await?;
    c.get(format!("{}/nothing", server.url())).send().await?;
    let admin = format!("{}/__admin", server.admin_url());

    let journal: Value = c
        .get(format!("{admin}/requests"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(journal["meta"]["total"], 2);
    assert_eq!(journal["requestJournalDisabled"], false);
    let (newest, oldest) = (&journal["requests"][0], &journal["requests"][1]);
    assert_eq!(newest["request"]["url"], "/nothing", "newest first");
    assert_eq!(newest["wasMatched"], false);
    assert_eq!(newest["responseDefinition"]["status"], 404);
    let request = &oldest["request"];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], "/orders?x=1&x=2");
    assert!(request["absoluteUrl"]
        .as_str()
        .is_some_and(|u| u.starts_with("http://127.0.0.1:") && u.ends_with("/orders?x=1&x=2")));
    assert_eq!(request["headers"]["x-trace"], "t1", "headers are an object");
    assert_eq!(request["cookies"]["session"], "s1");
    assert_eq!(request["body"], "hello");
    assert_eq!(request["bodyAsBase64"], "aGVsbG8=");
    assert_eq!(request["queryParams"]["x"]["values"], json!(["1", "2"]));
    assert!(request["loggedDateString"]
        .as_str()
        .is_some_and(|d| d.ends_with('Z')));
    assert_eq!(oldest["wasMatched"], true);
    assert_eq!(oldest["stubMapping"]["id"], id);
    assert_eq!(oldest["responseDefinition"]["status"], 201);
    assert_eq!(oldest["responseDefinition"]["body"], "made");

    let found: Value = c
        .post(format!("{admin}/requests/find"))
        .json(&json!({"method": "POST", "urlPath": "/orders"}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(found["requests"].as_array().map(Vec::len), Some(1));
    assert_eq!(found["requests"][0]["body"], "hello");
    let typed = server
        .find(
            &RequestPattern::new("POST", "/orders")
                .header("x-trace", StringMatcher::equal_to("t1")),
        )
        .await?;
    assert_eq!(typed.len(), 1);
    assert_eq!(typed[0].header("x-trace"), Some("t1"));

    let count: Value = c
        .post(format!("{admin}/requests/count"))
        .json(&json!({"method": "ANY", "urlPathPattern": "/.*"}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(count, json!({"count": 2, "requestJournalDisabled": false}));

    let near: Value = c
        .post(format!("{admin}/near-misses/request"))
        .json(&json!({"method": "POST", "url": "/order"}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(near["nearMisses"][0]["stubMapping"]["id"], id);
    assert!(near["nearMisses"][0]["matchResult"]["distance"].as_f64() > Some(0.0));
    let unmatched: Value = c
        .get(format!("{admin}/requests/unmatched/near-misses"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(unmatched["nearMisses"][0]["request"]["url"], "/nothing");

    // The Rust side reads the same journal, oldest first.
    let requests = server.requests().await?;
    assert_eq!(requests[0].url, "/orders?x=1&x=2");
    assert!(requests[0].was_matched && !requests[1].was_matched);
    assert_eq!(requests[0].stub_id.as_deref(), Some(id.as_str()));
    Ok(())
}

#[tokio::test]
async fn invalid_mappings_are_422_with_a_pointer() -> Result {
    let server = StubServer::start().await?;
    let c = common::client();
    let answer = c
        .post(format!("{}/__admin/mappings", server.admin_url()))
        .body(r#"{"request": {"headers": {"a": {"matches": "["}}}}"#)
        .send()
        .await?;
    assert_eq!(answer.status(), 422);
    let body: Value = answer.json().await?;
    assert_eq!(body["errors"][0]["code"], 10);
    assert_eq!(
        body["errors"][0]["source"]["pointer"],
        "/request/headers/a/matches"
    );
    let answer = c
        .post(format!("{}/__admin/mappings", server.admin_url()))
        .body(r#"{"request": {"bogus": 1}}"#)
        .send()
        .await?;
    assert_eq!(answer.status(), 422);
    let body: Value = answer.json().await?;
    assert_eq!(body["errors"][0]["title"], "Error parsing JSON");
    assert_eq!(body["errors"][0]["source"]["pointer"], "/request/bogus");
    Ok(())
}

#[tokio::test]
async fn answers_say_which_stub_and_keep_their_reason_phrase() -> Result {
    let server = StubServer::start().await?;
    let id = server
        .mount(
            Stub::get("/made")
                .named("made it")
                .respond(Response::status(201).status_message("Made It")),
        )
        .await?;
    let c = common::client();
    let answer = c.get(format!("{}/made", server.url())).send().await?;
    assert_eq!(answer.headers()["matched-stub-id"], id.as_str());
    assert_eq!(answer.headers()["matched-stub-name"], "made it");

    // The status line as sent: reqwest shows only the canonical reason.
    let address = server.address().expect("in process");
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(b"GET /made HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    assert!(text.starts_with("HTTP/1.1 201 Made It\r\n"), "{text}");
    Ok(())
}

#[tokio::test]
async fn methods_are_compared_as_written() -> Result {
    let server = StubServer::start().await?;
    let c = common::client();
    c.post(format!("{}/__admin/mappings", server.admin_url()))
        .body(r#"{"request": {"method": "get", "url": "/lower"}, "response": {"status": 200}}"#)
        .send()
        .await?;
    assert_eq!(status(c.get(format!("{}/lower", server.url()))).await, 404);
    Ok(())
}

#[tokio::test]
async fn does_not_match_passes_an_absent_header_or_parameter_not_an_absent_cookie() -> Result {
    let server = StubServer::start().await?;
    server
        .mount_all([
            Stub::get("/q").query("env", StringMatcher::does_not_match("prod.*")),
            Stub::get("/h").header("x-env", StringMatcher::does_not_match("prod.*")),
            Stub::get("/c").cookie("env", StringMatcher::does_not_match("prod.*")),
        ])
        .await?;
    let c = common::client();
    let url = server.url();
    assert_eq!(status(c.get(format!("{url}/q"))).await, 200);
    assert_eq!(status(c.get(format!("{url}/q?env=production"))).await, 404);
    assert_eq!(status(c.get(format!("{url}/q?env=test"))).await, 200);
    assert_eq!(status(c.get(format!("{url}/h"))).await, 200);
    assert_eq!(
        status(c.get(format!("{url}/h")).header("x-env", "prod")).await,
        404
    );
    assert_eq!(status(c.get(format!("{url}/c"))).await, 404);
    assert_eq!(
        status(c.get(format!("{url}/c")).header("cookie", "env=test")).await,
        200
    );
    Ok(())
}

#[tokio::test]
async fn body_files_work_through_the_admin_api() -> Result {
    let files = tempfile::tempdir()?;
    std::fs::write(files.path().join("order.json"), r#"{"id": 7}"#)?;
    let server = StubServer::builder().files(files.path()).start().await?;
    let c = common::client();
    let created = c
        .post(format!("{}/__admin/mappings", server.admin_url()))
        .body(r#"{"request": {"url": "/order"}, "response": {"status": 200, "bodyFileName": "order.json"}}"#)
        .send()
        .await?;
    assert_eq!(created.status(), 201);
    let body = c
        .get(format!("{}/order", server.url()))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(body, r#"{"id": 7}"#);
    let outside = c
        .post(format!("{}/__admin/mappings", server.admin_url()))
        .body(r#"{"request": {"url": "/x"}, "response": {"bodyFileName": "../secret"}}"#)
        .send()
        .await?;
    assert_eq!(outside.status(), 422);

    // Without a files directory, the error says how to give one.
    let bare = StubServer::start().await?;
    let err = bare
        .mount(serde_json::from_value(
            json!({"request": {"url": "/x"}, "response": {"bodyFileName": "order.json"}}),
        )?)
        .await
        .expect_err("no files directory");
    assert!(err.to_string().contains("files directory"), "{err}");
    Ok(())
}

#[tokio::test]
async fn scenarios_are_listed_with_their_states() -> Result {
    let server = StubServer::start().await?;
    server
        .mount_all([
            Stub::get("/order")
                .in_scenario("order", STARTED, Some("paid"))
                .respond(Response::ok().body("pending")),
            Stub::get("/order")
                .in_scenario("order", "paid", Some("shipped"))
                .respond(Response::ok().body("paid")),
        ])
        .await?;
    let c = common::client();
    c.get(format!("{}/order", server.url())).send().await?;
    let listed: Value = c
        .get(format!("{}/__admin/scenarios", server.admin_url()))
        .send()
        .await?
        .json()
        .await?;
    let scenario = &listed["scenarios"][0];
    assert_eq!(scenario["id"], "order");
    assert_eq!(scenario["name"], "order");
    assert_eq!(scenario["state"], "paid");
    assert_eq!(
        scenario["possibleStates"],
        json!(["Started", "paid", "shipped"])
    );
    assert_eq!(scenario["mappings"].as_array().map(Vec::len), Some(2));

    let set = c
        .put(format!(
            "{}/__admin/scenarios/order/state",
            server.admin_url()
        ))
        .json(&json!({"state": "Started"}))
        .send()
        .await?;
    assert_eq!(set.status(), 200);
    assert_eq!(server.scenarios().await?["order"], "Started");
    Ok(())
}

#[tokio::test]
async fn url_path_templates_bind_and_test_their_variables() -> Result {
    let server = StubServer::start().await?;
    server
        .mount(
            Stub::get("/unused")
                .path_template("/contacts/{contactId}/addresses/{addressId}")
                .path_parameter("contactId", StringMatcher::matches("[0-9]+"))
                .respond(Response::ok().body("address")),
        )
        .await?;
    let c = common::client();
    let url = server.url();
    assert_eq!(
        status(c.get(format!("{url}/contacts/12/addresses/home"))).await,
        200
    );
    assert_eq!(
        status(c.get(format!("{url}/contacts/ab/addresses/home"))).await,
        404,
        "parameter test"
    );
    assert_eq!(
        status(c.get(format!("{url}/contacts/12/addresses"))).await,
        404,
        "too short"
    );
    assert_eq!(
        status(c.get(format!("{url}/contacts/12/addresses/home/x"))).await,
        404,
        "too long"
    );
    assert_eq!(
        status(c.get(format!("{url}/contacts/12/phones/home"))).await,
        404,
        "literal"
    );
    assert_eq!(
        status(c.get(format!("{url}/contacts//addresses/home"))).await,
        404,
        "empty segment"
    );
    let err = server
        .mount(Stub::get("/x").path_parameter("id", StringMatcher::equal_to("1")))
        .await
        .expect_err("pathParameters without a template");
    assert!(err.to_string().contains("urlPathTemplate"), "{err}");
    Ok(())
}

#[tokio::test]
async fn basic_auth_credentials_must_be_exact() -> Result {
    let server = StubServer::start().await?;
    server
        .mount(
            Stub::get("/private")
                .basic_auth("ada", "s3cret")
                .respond(Response::ok()),
        )
        .await?;
    let c = common::client();
    let url = format!("{}/private", server.url());
    assert_eq!(
        status(c.get(&url).basic_auth("ada", Some("s3cret"))).await,
        200
    );
    assert_eq!(
        status(c.get(&url).basic_auth("ada", Some("wrong"))).await,
        404
    );
    assert_eq!(
        status(c.get(&url).basic_auth("bob", Some("s3cret"))).await,
        404
    );
    assert_eq!(status(c.get(&url)).await, 404);
    assert_eq!(status(c.get(&url).bearer_auth("s3cret")).await, 404);
    Ok(())
}

#[tokio::test]
async fn equal_to_xml_compares_documents_not_text() -> Result {
    let server = StubServer::start().await?;
    server
        .mount(
            Stub::post("/soap")
                .body(BodyPattern::xml(
                    r#"<order id="1" kind="book"><item>Dune</item></order>"#,
                ))
                .respond(Response::ok().body("ok")),
        )
        .await?;
    let c = common::client();
    let url = format!("{}/soap", server.url());
    let post = |body: &'static str| c.post(&url).body(body);
    assert_eq!(
        status(post(
            "<order kind=\"book\" id=\"1\">\n  <item>Dune</item>\n</order>"
        ))
        .await,
        200
    );
    assert_eq!(
        status(post(
            r#"<order id="1" kind="book"><item>Emma</item></order>"#
        ))
        .await,
        404
    );
    assert_eq!(
        status(post(
            r#"<order id="2" kind="book"><item>Dune</item></order>"#
        ))
        .await,
        404
    );
    assert_eq!(
        status(post(r#"<order id="1"><item>Dune</item></order>"#)).await,
        404
    );
    assert_eq!(
        status(post(
            r#"<order id="1" kind="book"><item>Dune</item><item/></order>"#
        ))
        .await,
        404
    );
    assert_eq!(status(post("not xml")).await, 404);
    let report = c.post(&url).body("<order/>").send().await?.text().await?;
    assert!(report.contains("equalToXml"), "{report}");
    Ok(())
}
