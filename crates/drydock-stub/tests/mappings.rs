//! WireMock mapping directories, and bad input (files and admin requests) rejected clearly while
//! the server keeps serving.

mod common;

use std::path::Path;

use drydock_stub::{mappings, StubError, StubServer};
use serde_json::{json, Value};

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

fn fixture() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wiremock"))
}

#[tokio::test]
async fn a_wiremock_directory_is_loaded_and_served() -> Result {
    let server = StubServer::start().await?;
    let ids = server.load_dir(fixture()).await?;
    assert_eq!(ids.len(), 4);
    assert!(ids.contains(&"8c5db8b0-2db4-4ad7-a99f-38c9b00da3f7".to_string()));
    let c = common::client();
    let url = server.url();

    let health: Value = c.get(format!("{url}/health")).send().await?.json().await?;
    assert_eq!(health, json!({"status": "UP"}));

    let created = c
        .post(format!("{url}/orders"))
        .header("content-type", "application/json")
        .body(r#"{"item": "book", "quantity": 2, "gift": true}"#)
        .send()
        .await?;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/orders/1001");
    let body: Value = created.json().await?;
    assert_eq!(
        body,
        json!({"id": 1001, "state": "created"}),
        "from __files"
    );

    let wrong = c
        .post(format!("{url}/orders"))
        .header("content-type", "application/json")
        .body(r#"{"item": 5, "quantity": 2}"#)
        .send()
        .await?;
    assert_eq!(wrong.status(), 404, "json-unit.any-string rejects a number");

    let order: Value = c
        .get(format!("{url}/orders/77?view=full"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(order, json!({"id": "77"}));
    let error = c
        .get(format!("{url}/legacy/x"))
        .send()
        .await
        .expect_err("EMPTY_RESPONSE");
    assert!(common::chain(&error).contains("closed before message completed"));
    Ok(())
}

fn write(dir: &Path, name: &str, json: &str) {
    std::fs::write(dir.join(name), json).expect("the temp dir is writable");
}

fn load_error(json: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "bad.json", json);
    match mappings::load_dir(dir.path()) {
        Ok(stubs) => panic!("{json} loaded as {stubs:?}"),
        Err(e @ StubError::Mapping { .. }) => e.to_string(),
        Err(other) => panic!("not a mapping error: {other:?}"),
    }
}

#[test]
fn unsupported_and_malformed_mappings_name_the_file_and_field() {
    let multipart =
        load_error(r#"{"request": {"method": "POST", "multipartPatterns": []}, "response": {}}"#);
    assert!(multipart.contains("bad.json"), "{multipart}");
    assert!(
        multipart.contains("`request.multipartPatterns`: unknown field `multipartPatterns`"),
        "{multipart}"
    );
    assert!(
        multipart.contains("outside the WireMock subset"),
        "{multipart}"
    );

    let xpath =
        load_error(r#"{"request": {"bodyPatterns": [{"matchesXPath": "/a"}]}, "response": {}}"#);
    assert!(
        xpath.contains("`request.bodyPatterns[0].matchesXPath`: unknown field `matchesXPath`"),
        "{xpath}"
    );

    let xml =
        load_error(r#"{"request": {"bodyPatterns": [{"equalToXml": "<a>"}]}, "response": {}}"#);
    assert!(
        xml.contains("`request.bodyPatterns[0].equalToXml` is not XML"),
        "{xml}"
    );

    let regex = load_error(r#"{"request": {"urlPathPattern": "/a/(b"}, "response": {}}"#);
    assert!(
        regex.contains("`request.urlPathPattern` is not a valid regular expression"),
        "{regex}"
    );

    let in_list = load_error(
        r#"{"mappings": [{"request": {}, "response": {}}, {"request": {}, "response": {"status": "ok"}}]}"#,
    );
    assert!(
        in_list.contains("mappings[1] `response.status`"),
        "{in_list}"
    );

    let transformer = load_error(r#"{"request": {}, "response": {"transformers": ["webhook"]}}"#);
    assert!(
        transformer.contains("`response.transformers` \"webhook\" is not supported"),
        "{transformer}"
    );

    let missing_file = load_error(r#"{"request": {}, "response": {"bodyFileName": "nope.json"}}"#);
    assert!(
        missing_file.contains("`response.bodyFileName` \"nope.json\""),
        "{missing_file}"
    );

    let not_json = load_error("{ nope");
    assert!(not_json.contains("not JSON"), "{not_json}");

    let two_operators = load_error(
        r#"{"request": {"headers": {"a": {"equalTo": "x", "contains": "y"}}}, "response": {}}"#,
    );
    assert!(
        two_operators.contains("`request.headers.a` has several operators"),
        "{two_operators}"
    );
}

#[tokio::test]
async fn bad_admin_requests_are_rejected_and_the_server_keeps_serving() -> Result {
    let server = StubServer::start().await?;
    server.load_dir(fixture()).await?;
    let c = common::client();
    let admin = format!("{}/__admin", server.admin_url());

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            c.post(format!("{admin}/mappings")).body("{not json"),
            422,
            "the body is not a valid stub mapping",
        ),
        (
            c.post(format!("{admin}/mappings"))
                .body(r#"{"request": {"urlPatern": "/x"}}"#),
            422,
            "at `request.urlPatern`: unknown field `urlPatern`",
        ),
        (
            c.post(format!("{admin}/mappings"))
                .body(r#"{"request": {"headers": {"x": {"matches": "("}}}}"#),
            422,
            "`request.headers.x.matches` is not a valid regular expression",
        ),
        (
            c.post(format!("{admin}/mappings"))
                .body(r#"{"response": {"status": 1234}}"#),
            422,
            "`response.status` 1234 is not an HTTP status",
        ),
        (
            c.post(format!("{admin}/mappings/import")).body(
                r#"{"mappings": [{"request": {"url": "/ok"}}, {"request": {"bodyPatterns": [{"matchesXPath": "/a"}]}}]}"#,
            ),
            422,
            "mappings[1] `request.bodyPatterns[0].matchesXPath`: unknown field `matchesXPath`",
        ),
        (
            c.post(format!("{admin}/mappings/import")).body(
                r#"{"mappings": [{"request": {"url": "/ok"}}, {"request": {"urlPattern": "("}}]}"#,
            ),
            422,
            "`request.urlPattern` is not a valid regular expression",
        ),
        (
            c.delete(format!("{admin}/mappings/no-such-id")),
            404,
            "no stub has id no-such-id",
        ),
        (
            c.get(format!("{admin}/nonsense")),
            404,
            "GET /__admin/nonsense is not an admin endpoint",
        ),
        (
            c.put(format!("{admin}/on-miss"))
                .body(r#"{"mode": "passThrough", "targetBaseUrl": "ftp://x"}"#),
            400,
            "`targetBaseUrl` \"ftp://x\" is not an http(s) URL",
        ),
        (
            c.post(format!("{admin}/namespaces"))
                .body(r#"{"name": "a/b"}"#),
            400,
            "`name` \"a/b\" is not a namespace name",
        ),
    ];
    for (request, status, message) in cases {
        let answer = request.send().await?;
        assert_eq!(answer.status().as_u16(), status);
        let body: Value = answer.json().await?;
        let detail = body["errors"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            detail.contains(message),
            "expected {message:?} in {detail:?}"
        );
    }
    assert_eq!(server.stubs().await?.len(), 4, "nothing half-applied");
    let health = c.get(format!("{}/health", server.url())).send().await?;
    assert_eq!(health.status(), 200, "still serving");

    // The typed API reports the same errors.
    let err = server
        .mount(serde_json::from_value(
            json!({"request": {"urlPathPattern": "["}}),
        )?)
        .await
        .expect_err("invalid regex");
    assert!(err.to_string().contains("request.urlPathPattern"), "{err}");
    Ok(())
}

#[tokio::test]
async fn the_admin_api_adds_lists_replaces_and_removes() -> Result {
    let server = StubServer::start().await?;
    let c = common::client();
    let admin = format!("{}/__admin", server.admin_url());
    let created: Value = c
        .post(format!("{admin}/mappings"))
        .body(r#"{"request": {"method": "GET", "url": "/a"}, "response": {"body": "one"}}"#)
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"].as_str().expect("an id was given").to_string();
    assert_eq!(
        c.get(format!("{}/a", server.url()))
            .send()
            .await?
            .text()
            .await?,
        "one"
    );
    c.put(format!("{admin}/mappings/{id}"))
        .body(r#"{"request": {"method": "GET", "url": "/a"}, "response": {"body": "two"}}"#)
        .send()
        .await?
        .error_for_status()?;
    assert_eq!(
        c.get(format!("{}/a", server.url()))
            .send()
            .await?
            .text()
            .await?,
        "two"
    );
    let listed: Value = c
        .get(format!("{admin}/mappings"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(listed["meta"]["total"], 1);
    let journal: Value = c
        .get(format!("{admin}/requests"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(journal["requests"].as_array().map(Vec::len), Some(2));
    c.delete(format!("{admin}/mappings/{id}"))
        .send()
        .await?
        .error_for_status()?;
    assert_eq!(
        c.get(format!("{}/a", server.url())).send().await?.status(),
        404
    );
    c.post(format!("{admin}/reset"))
        .send()
        .await?
        .error_for_status()?;
    assert!(server.requests().await?.is_empty());
    Ok(())
}
