//! Each matcher, priorities, scenarios and namespaces, observed through a real HTTP client.

mod common;

use drydock_stub::{BodyPattern, Response, StringMatcher, Stub, StubServer, STARTED};
use serde_json::json;

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request
        .send()
        .await
        .expect("the server answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn method_and_each_kind_of_path() -> Result {
    let server = StubServer::start().await?;
    let url = server.url();
    server
        .mount(Stub::get("/exact").respond(Response::status(201)))
        .await?;
    server
        .mount(
            Stub::any()
                .path_prefix("/files/")
                .respond(Response::status(202)),
        )
        .await?;
    server
        .mount(
            Stub::any()
                .path_regex("/users/[0-9]+")
                .respond(Response::status(203)),
        )
        .await?;
    server
        .mount(
            Stub::any()
                .url("/search?q=a")
                .respond(Response::status(204)),
        )
        .await?;
    server
        .mount(
            Stub::any()
                .url_regex("/items\\?page=[0-9]")
                .respond(Response::status(205)),
        )
        .await?;
    let c = common::client();

    assert_eq!(status(c.get(format!("{url}/exact"))).await, 201);
    assert_eq!(status(c.post(format!("{url}/exact"))).await, 404, "method");
    assert_eq!(
        status(c.get(format!("{url}/exact/more"))).await,
        404,
        "exact path"
    );
    assert_eq!(status(c.get(format!("{url}/files/a/b.txt"))).await, 202);
    assert_eq!(status(c.get(format!("{url}/file"))).await, 404, "prefix");
    assert_eq!(status(c.delete(format!("{url}/users/42"))).await, 203);
    assert_eq!(
        status(c.get(format!("{url}/users/42x"))).await,
        404,
        "regex is anchored"
    );
    assert_eq!(status(c.get(format!("{url}/search?q=a"))).await, 204);
    assert_eq!(
        status(c.get(format!("{url}/search?q=b"))).await,
        404,
        "url includes query"
    );
    assert_eq!(status(c.get(format!("{url}/items?page=3"))).await, 205);
    assert_eq!(status(c.get(format!("{url}/items?page=x"))).await, 404);
    Ok(())
}

#[tokio::test]
async fn query_parameters_headers_and_cookies() -> Result {
    let server = StubServer::start().await?;
    let url = format!("{}/q", server.url());
    server
        .mount(
            Stub::get("/q")
                .query("name", StringMatcher::equal_to("Zoë Ann"))
                .query("tag", StringMatcher::contains("blue"))
                .header("Authorization", StringMatcher::matches("Bearer [a-z0-9]+"))
                .header(
                    "x-tenant",
                    StringMatcher::equal_to("ACME").case_insensitive(),
                )
                .header("x-debug", StringMatcher::absent())
                .header("x-env", StringMatcher::does_not_match("prod.*"))
                .cookie("session", StringMatcher::present())
                .respond(Response::ok().body("matched")),
        )
        .await?;
    let c = common::client();
    let with_env = |env: &str| {
        c.get(&url)
            .query(&[("name", "Zoë Ann"), ("tag", "red"), ("tag", "light-blue")])
            .header("authorization", "Bearer abc123")
            .header("X-Tenant", "acme")
            .header("x-env", env)
            .header("cookie", "theme=dark; session=s1")
    };
    let good = || with_env("staging");
    let answer = good().send().await?;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await?, "matched");

    assert_eq!(status(good().header("x-debug", "1")).await, 404, "absent");
    assert_eq!(status(with_env("production")).await, 404, "doesNotMatch");
    // As in WireMock: one value that does not match is enough, and so is no value at all.
    assert_eq!(
        status(with_env("production").header("x-env", "staging")).await,
        200,
        "doesNotMatch, one of two values"
    );
    let wrong = c
        .get(&url)
        .query(&[("name", "Zoë Ann"), ("tag", "light-blue")])
        .header("authorization", "Basic abc")
        .header("x-tenant", "acme")
        .header("cookie", "session=s1");
    assert_eq!(status(wrong).await, 404, "regex on header");
    let no_cookie = c
        .get(&url)
        .query(&[("name", "Zoë Ann"), ("tag", "blue")])
        .header("authorization", "Bearer x")
        .header("x-tenant", "ACME");
    assert_eq!(status(no_cookie).await, 404, "cookie present");
    let other_name = c
        .get(&url)
        .query(&[("name", "Zoe Ann"), ("tag", "blue")])
        .header("authorization", "Bearer x")
        .header("x-tenant", "ACME")
        .header("cookie", "session=s1");
    assert_eq!(status(other_name).await, 404, "query equalTo");
    Ok(())
}

#[tokio::test]
async fn every_body_pattern() -> Result {
    let server = StubServer::start().await?;
    let url = server.url();
    let mount = |path: &str, pattern: BodyPattern| {
        Stub::post(path)
            .body(pattern)
            .respond(Response::ok().body("yes"))
    };
    server
        .mount(mount("/equal", BodyPattern::equal_to("hello")))
        .await?;
    server
        .mount(mount("/contains", BodyPattern::contains("needle")))
        .await?;
    server
        .mount(mount("/regex", BodyPattern::matches("id=[0-9]{3}")))
        .await?;
    server
        .mount(mount(
            "/json",
            BodyPattern::json(json!({"a": 1, "b": [1, 2]})),
        ))
        .await?;
    server
        .mount(mount(
            "/partial",
            BodyPattern::json_partial(json!({"customer": {"id": "c1"}})),
        ))
        .await?;
    server
        .mount(mount(
            "/path",
            BodyPattern::json_path("$.items[?@.sku == 'X1']"),
        ))
        .await?;
    server
        .mount(mount(
            "/path-value",
            BodyPattern::json_path_equal_to("$.total", "42.5"),
        ))
        .await?;
    server
        .mount(mount("/binary", BodyPattern::binary(&[0, 159, 146, 150])))
        .await?;
    let c = common::client();
    let post = |path: &str, body: Vec<u8>| c.post(format!("{url}{path}")).body(body);
    let cases: Vec<(&str, &[u8], u16)> = vec![
        ("/equal", b"hello", 200),
        ("/equal", b"hello ", 404),
        ("/contains", b"hay needle hay", 200),
        ("/contains", b"hay", 404),
        ("/regex", b"id=123", 200),
        ("/regex", b"id=1234", 404),
        ("/json", br#"{ "b": [1, 2.0], "a": 1 }"#, 200),
        ("/json", br#"{"a": 1, "b": [2, 1]}"#, 404),
        ("/json", br#"{"a": 1, "b": [1, 2], "c": 3}"#, 404),
        (
            "/partial",
            br#"{"customer": {"id": "c1", "name": "N"}, "x": 1}"#,
            200,
        ),
        ("/partial", br#"{"customer": {"id": "c2"}}"#, 404),
        ("/path", br#"{"items": [{"sku": "A"}, {"sku": "X1"}]}"#, 200),
        ("/path", br#"{"items": [{"sku": "A"}]}"#, 404),
        ("/path-value", br#"{"total": 42.5}"#, 200),
        ("/path-value", br#"{"total": 42}"#, 404),
        ("/binary", &[0, 159, 146, 150], 200),
        ("/binary", &[0, 159, 146], 404),
    ];
    for (path, body, expected) in cases {
        let got = status(post(path, body.to_vec())).await;
        assert_eq!(
            got,
            expected,
            "{path} with {:?}",
            String::from_utf8_lossy(body)
        );
    }
    Ok(())
}

#[tokio::test]
async fn priority_wins_and_then_the_newest() -> Result {
    let server = StubServer::start().await?;
    let url = format!("{}/thing", server.url());
    server
        .mount(Stub::get("/thing").respond(Response::ok().body("old")))
        .await?;
    server
        .mount(Stub::get("/thing").respond(Response::ok().body("new")))
        .await?;
    let c = common::client();
    assert_eq!(c.get(&url).send().await?.text().await?, "new");
    server
        .mount(
            Stub::any()
                .path_prefix("/")
                .priority(1)
                .respond(Response::status(503)),
        )
        .await?;
    assert_eq!(c.get(&url).send().await?.status(), 503);
    server
        .mount(
            Stub::get("/thing")
                .priority(1)
                .respond(Response::ok().body("important")),
        )
        .await?;
    assert_eq!(c.get(&url).send().await?.text().await?, "important");
    Ok(())
}

#[tokio::test]
async fn scenarios_move_between_states() -> Result {
    let server = StubServer::start().await?;
    let url = format!("{}/order/7", server.url());
    server
        .mount(
            Stub::get("/order/7")
                .in_scenario("order", STARTED, None)
                .respond(Response::ok().body("pending")),
        )
        .await?;
    server
        .mount(
            Stub::post("/order/7/pay")
                .in_scenario("order", STARTED, Some("paid"))
                .respond(Response::status(204)),
        )
        .await?;
    server
        .mount(
            Stub::get("/order/7")
                .in_scenario("order", "paid", None)
                .respond(Response::ok().body("paid")),
        )
        .await?;
    let c = common::client();
    assert_eq!(c.get(&url).send().await?.text().await?, "pending");
    assert_eq!(c.post(format!("{url}/pay")).send().await?.status(), 204);
    assert_eq!(c.get(&url).send().await?.text().await?, "paid");
    assert_eq!(
        c.post(format!("{url}/pay")).send().await?.status(),
        404,
        "paying applies only in the Started state"
    );
    assert_eq!(
        server.scenarios().await?.get("order").map(String::as_str),
        Some("paid")
    );
    server.reset_scenarios().await?;
    assert_eq!(c.get(&url).send().await?.text().await?, "pending");
    Ok(())
}

#[tokio::test]
async fn namespaces_keep_stubs_and_journals_apart() -> Result {
    let server = StubServer::start().await?;
    server
        .mount(Stub::get("/shared").respond(Response::ok().body("from the root")))
        .await?;
    let (a, b) = (
        server.namespace("test-a").await?,
        server.namespace("test-b").await?,
    );
    a.mount(Stub::get("/mine").respond(Response::ok().body("a")))
        .await?;
    b.mount(Stub::get("/mine").respond(Response::ok().body("b")))
        .await?;
    let c = common::client();
    assert_eq!(
        c.get(format!("{}/mine", a.url()))
            .send()
            .await?
            .text()
            .await?,
        "a"
    );
    assert_eq!(
        c.get(format!("{}/mine", b.url()))
            .send()
            .await?
            .text()
            .await?,
        "b"
    );
    // A namespace starts with the root's stubs.
    assert_eq!(
        c.get(format!("{}/shared", a.url()))
            .send()
            .await?
            .text()
            .await?,
        "from the root"
    );
    assert_eq!(
        c.get(format!("{}/mine", server.url()))
            .send()
            .await?
            .status(),
        404
    );

    assert_eq!(a.requests().await?.len(), 2);
    assert_eq!(b.requests().await?.len(), 1);
    assert_eq!(server.requests().await?.len(), 1);
    assert_eq!(
        b.requests().await?[0].url,
        "/mine",
        "urls are inside the namespace"
    );

    server.remove_namespace("test-b").await?;
    let gone = c.get(format!("{}/mine", b.url())).send().await?;
    assert_eq!(gone.status(), 404);
    assert!(gone
        .text()
        .await?
        .contains("namespace \"test-b\" does not exist"));
    // Nor does an admin call bring it back.
    let late = b.requests().await.expect_err("the namespace is gone");
    assert!(late.to_string().contains("does not exist"), "{late}");
    drop(b.verify_on_drop(false));
    Ok(())
}
