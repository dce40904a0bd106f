//! Recording against a real local upstream, replaying with the upstream stopped, secrets
//! scrubbed, and each choice for a request no recording covers.

mod common;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use bytes::Bytes;
use drydock_stub::{OnMiss, Recording, StubServer};
use http_body_util::{BodyExt, Full};
use hyper::{server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

const TOKEN: &str = "secret-token-123";

/// An exchange-rate service: it checks the bearer token, computes its answers, and sets a
/// session cookie, like the APIs recordings are made of.
struct Upstream {
    address: SocketAddr,
    calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let task = tokio::spawn(async move {
            // Connections belong to the accept task: stopping it closes them too, so a
            // stopped upstream is gone for pooled keep-alive connections as well.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let counted = counted.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        answer(request)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Upstream {
            address,
            calls,
            task,
        })
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn stop(self) -> SocketAddr {
        self.task.abort();
        self.address
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    let authorized = request
        .headers()
        .get("authorization")
        .is_some_and(|v| v == format!("Bearer {TOKEN}").as_str());
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = |status: u16, value: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("set-cookie", "session=SECRET-SESSION; HttpOnly")
            .header("x-rate-source", "upstream")
            .body(Full::new(Bytes::from(value.to_string())))
            .expect("a valid response")
    };
    if !authorized {
        return Ok(json(401, json!({"error": "missing token"})));
    }
    Ok(match (method.as_str(), path.as_str()) {
        ("GET", rate) if rate.starts_with("/rates/") => {
            let currency = &rate["/rates/".len()..];
            let value = currency.bytes().map(u32::from).sum::<u32>() as f64 / 100.0;
            json(200, json!({"currency": currency, "rate": value}))
        }
        ("POST", "/convert") => {
            let input: Value = serde_json::from_slice(&body).unwrap_or_default();
            let amount = input["amount"].as_f64().unwrap_or(0.0);
            json(200, json!({"converted": amount * 2.0, "to": input["to"]}))
        }
        _ => json(404, json!({"error": "no route"})),
    })
}

async fn call_rates(
    base: &str,
    currency: &str,
) -> std::result::Result<(u16, String), reqwest::Error> {
    let answer = common::client()
        .get(format!("{base}/rates/{currency}"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("cookie", "tracking=cookie-value")
        .header("x-signature", "sig-value")
        .header("accept", "application/json")
        .send()
        .await?;
    Ok((answer.status().as_u16(), answer.text().await?))
}

async fn call_convert(base: &str) -> std::result::Result<(u16, String), reqwest::Error> {
    let answer = common::client()
        .post(format!("{base}/convert"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("accept", "application/json")
        .body(r#"{"amount": 21, "to": "USD"}"#)
        .send()
        .await?;
    Ok((answer.status().as_u16(), answer.text().await?))
}

#[tokio::test]
async fn record_then_replay_with_the_upstream_stopped() -> Result {
    let upstream = Upstream::start().await?;
    let dir = tempfile::tempdir()?;
    let recorder = StubServer::start().await?;
    recorder
        .start_recording(
            Recording::new(upstream.url())
                .capture_header("accept")
                .capture_header("authorization")
                .scrub_header("x-signature")
                .save_to(dir.path()),
        )
        .await?;
    let live_rates = call_rates(&recorder.url(), "EUR").await?;
    let live_convert = call_convert(&recorder.url()).await?;
    assert_eq!(live_rates.0, 200, "{}", live_rates.1);
    assert!(live_rates.1.contains("\"currency\":\"EUR\""));
    assert_eq!(live_convert.1, r#"{"converted":42.0,"to":"USD"}"#);
    let recorded = recorder.stop_recording().await?;
    assert_eq!(recorded.len(), 2);
    assert_eq!(upstream.calls.load(Ordering::SeqCst), 2);

    // Secrets never reach the files: not the token, the cookies, nor the chosen header.
    let files: Vec<_> = std::fs::read_dir(dir.path())?.collect::<std::result::Result<_, _>>()?;
    assert_eq!(files.len(), 2);
    for file in &files {
        let text = std::fs::read_to_string(file.path())?;
        for secret in [
            TOKEN,
            "SECRET-SESSION",
            "cookie-value",
            "sig-value",
            "set-cookie",
        ] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into {}:\n{text}",
                file.path().display()
            );
        }
        assert!(
            text.contains("x-rate-source"),
            "ordinary headers are kept:\n{text}"
        );
    }

    let calls_before = upstream.calls.load(Ordering::SeqCst);
    let stopped = upstream.stop();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        tokio::net::TcpStream::connect(stopped).await.is_err(),
        "the upstream is really gone"
    );

    let replay = StubServer::start().await?;
    replay.load_dir(dir.path()).await?;
    assert_eq!(call_rates(&replay.url(), "EUR").await?, live_rates);
    assert_eq!(call_convert(&replay.url()).await?, live_convert);
    assert_eq!(calls_before, 2);

    // A request no recording covers fails by default, saying what is closest.
    let (status, report) = call_rates(&replay.url(), "GBP").await?;
    assert_eq!(status, 404);
    assert!(
        report.contains("Nearest stub: recorded GET /rates/EUR"),
        "{report}"
    );
    replay.clear_requests().await?;
    Ok(())
}

#[tokio::test]
async fn on_a_miss_replay_can_pass_through_or_record() -> Result {
    let upstream = Upstream::start().await?;
    let dir = tempfile::tempdir()?;
    let recorder = StubServer::start().await?;
    recorder
        .start_recording(Recording::new(upstream.url()).save_to(dir.path()))
        .await?;
    call_rates(&recorder.url(), "EUR").await?;
    recorder.stop_recording().await?;

    let replay = StubServer::start().await?;
    replay.load_dir(dir.path()).await?;
    replay
        .on_miss(OnMiss::PassThrough {
            target_base_url: upstream.url(),
        })
        .await?;
    let calls = upstream.calls.load(Ordering::SeqCst);
    assert_eq!(call_rates(&replay.url(), "EUR").await?.0, 200);
    assert_eq!(
        upstream.calls.load(Ordering::SeqCst),
        calls,
        "a recorded request is replayed"
    );
    let (status, body) = call_rates(&replay.url(), "CHF").await?;
    assert_eq!((status, body.contains("CHF")), (200, true));
    assert_eq!(
        upstream.calls.load(Ordering::SeqCst),
        calls + 1,
        "a miss passes through"
    );
    assert!(
        replay.stop_recording().await?.is_empty(),
        "passing through records nothing"
    );

    // Record what is missing, into the same directory.
    replay
        .on_miss(OnMiss::Record(
            Recording::new(upstream.url()).save_to(dir.path()),
        ))
        .await?;
    call_rates(&replay.url(), "JPY").await?;
    let added = replay.stop_recording().await?;
    assert_eq!(added.len(), 1);
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 2);

    // With the upstream gone, a pass-through miss is a 502 that says why.
    let target = upstream.url();
    upstream.stop();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    replay
        .on_miss(OnMiss::PassThrough {
            target_base_url: target,
        })
        .await?;
    let (status, body) = call_rates(&replay.url(), "SEK").await?;
    assert_eq!(status, 502);
    assert!(body.contains("forwarding to http://127.0.0.1:"), "{body}");

    let final_replay = StubServer::start().await?;
    final_replay.load_dir(dir.path()).await?;
    assert_eq!(call_rates(&final_replay.url(), "JPY").await?.0, 200);
    Ok(())
}
