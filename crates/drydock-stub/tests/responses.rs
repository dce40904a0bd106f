//! Each kind of response: status, headers, bodies, templates, delays and dribble.

mod common;

use std::time::{Duration, Instant};

use drydock_stub::{Response, Stub, StubServer};
use serde_json::json;

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

#[tokio::test]
async fn status_headers_and_each_body() -> Result {
    let server = StubServer::start().await?;
    server
        .mount(
            Stub::get("/text").respond(
                Response::status(418)
                    .header("x-one", "1")
                    .header("set-cookie", "a=1")
                    .header("set-cookie", "b=2")
                    .body("short and stout"),
            ),
        )
        .await?;
    server
        .mount(Stub::get("/json").respond(Response::ok().json(json!({"id": 7, "tags": ["a"]}))))
        .await?;
    server
        .mount(Stub::get("/bytes").respond(Response::ok().bytes(&[0, 255, 7])))
        .await?;
    let c = common::client();
    let url = server.url();

    let text = c.get(format!("{url}/text")).send().await?;
    assert_eq!(text.status(), 418);
    assert_eq!(text.headers()["x-one"], "1");
    let cookies: Vec<_> = text.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(text.text().await?, "short and stout");

    let json = c.get(format!("{url}/json")).send().await?;
    assert_eq!(json.headers()["content-type"], "application/json");
    assert_eq!(
        json.json::<serde_json::Value>().await?,
        json!({"id": 7, "tags": ["a"]})
    );

    let bytes = c.get(format!("{url}/bytes")).send().await?.bytes().await?;
    assert_eq!(bytes.as_ref(), [0, 255, 7]);
    Ok(())
}

#[tokio::test]
async fn templates_build_the_body_from_the_request() -> Result {
    let server = StubServer::start().await?;
    server
        .mount(
            Stub::any().path_regex("/users/[^/]+/orders").respond(
                Response::status(201)
                    .header("x-trace", "{{request.headers.x-trace-id}}")
                    .body(
                        "user={{request.pathSegments.[1]}} method={{request.method}} \
                         page={{request.query.page}} sku={{jsonPath request.body '$.item.sku'}} \
                         trace={{request.headers.X-Trace-Id}}",
                    )
                    .templated(),
            ),
        )
        .await?;
    let answer = common::client()
        .post(format!("{}/users/u-17/orders?page=3", server.url()))
        .header("x-trace-id", "t-9")
        .body(r#"{"item": {"sku": "SKU-1"}}"#)
        .send()
        .await?;
    assert_eq!(answer.status(), 201);
    assert_eq!(answer.headers()["x-trace"], "t-9");
    assert_eq!(
        answer.text().await?,
        "user=u-17 method=POST page=3 sku=SKU-1 trace=t-9"
    );
    Ok(())
}

async fn time_get(url: String) -> std::result::Result<Duration, reqwest::Error> {
    let started = Instant::now();
    common::client().get(url).send().await?.bytes().await?;
    Ok(started.elapsed())
}

#[tokio::test]
async fn fixed_and_random_delays() -> Result {
    let server = StubServer::start().await?;
    server
        .mount(Stub::get("/fixed").respond(Response::ok().delay(Duration::from_millis(300))))
        .await?;
    server
        .mount(Stub::get("/uniform").respond(
            Response::ok().uniform_delay(Duration::from_millis(100), Duration::from_millis(200)),
        ))
        .await?;
    server
        .mount(
            Stub::get("/lognormal")
                .respond(Response::ok().lognormal_delay(Duration::from_millis(100), 0.1)),
        )
        .await?;
    server
        .mount(Stub::get("/instant").respond(Response::ok()))
        .await?;
    let url = server.url();
    let fixed = time_get(format!("{url}/fixed")).await?;
    assert!(fixed >= Duration::from_millis(300), "fixed: {fixed:?}");
    for _ in 0..3 {
        let uniform = time_get(format!("{url}/uniform")).await?;
        assert!(
            uniform >= Duration::from_millis(100),
            "uniform: {uniform:?}"
        );
        // Beyond `upper` by a scheduling margin only.
        assert!(uniform < Duration::from_secs(3), "uniform: {uniform:?}");
        let lognormal = time_get(format!("{url}/lognormal")).await?;
        // sigma 0.1: 5 sigma below the median is still above 60 ms.
        assert!(
            lognormal >= Duration::from_millis(60),
            "lognormal: {lognormal:?}"
        );
    }
    let instant = time_get(format!("{url}/instant")).await?;
    assert!(instant < fixed, "no delay took {instant:?}");
    Ok(())
}

#[tokio::test]
async fn settings_delay_every_response() -> Result {
    let server = StubServer::start().await?;
    server
        .mount(Stub::get("/a").respond(Response::ok()))
        .await?;
    server
        .settings(serde_json::from_value(json!({"fixedDelay": 250}))?)
        .await?;
    let took = time_get(format!("{}/a", server.url())).await?;
    assert!(took >= Duration::from_millis(250), "{took:?}");
    Ok(())
}

#[tokio::test]
async fn chunked_dribble_spreads_the_body_over_time() -> Result {
    let server = StubServer::start().await?;
    let body = "0123456789".repeat(4);
    server
        .mount(
            Stub::get("/slow").respond(
                Response::ok()
                    .body(body.clone())
                    .dribble(4, Duration::from_millis(600)),
            ),
        )
        .await?;
    let started = Instant::now();
    let mut answer = common::client()
        .get(format!("{}/slow", server.url()))
        .send()
        .await?;
    assert!(answer.headers().get("content-length").is_none());
    assert_eq!(answer.headers()["transfer-encoding"], "chunked");
    let mut arrivals = Vec::new();
    let mut received = Vec::new();
    while let Some(chunk) = answer.chunk().await? {
        arrivals.push(started.elapsed());
        received.extend_from_slice(&chunk);
    }
    assert_eq!(String::from_utf8(received)?, body);
    // Three 150 ms gaps between four chunks: the last cannot arrive before 450 ms.
    let last = arrivals[arrivals.len() - 1];
    assert!(
        last >= Duration::from_millis(400),
        "the body was complete after {last:?}"
    );
    assert!(
        arrivals.len() >= 2,
        "the body came in one piece: {arrivals:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_stub_can_proxy_to_another_server() -> Result {
    let upstream = StubServer::start().await?;
    upstream
        .mount(Stub::get("/real").respond(Response::status(207).body("from upstream")))
        .await?;
    let server = StubServer::start().await?;
    server
        .mount(
            Stub::any()
                .path_prefix("/real")
                .respond(Response::proxy_to(upstream.url())),
        )
        .await?;
    let answer = common::client()
        .get(format!("{}/real", server.url()))
        .send()
        .await?;
    assert_eq!(answer.status(), 207);
    assert_eq!(answer.text().await?, "from upstream");
    Ok(())
}
