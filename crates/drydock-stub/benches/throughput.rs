//! Start time of an in-process stub server, and requests per second with 100 stubs mounted,
//! each against wiremock-rs doing the same in the same process (the baseline).
//!
//! `cargo bench -p drydock-stub --bench throughput` (`-- --seconds 5` for longer rounds).
//! The load generator shares the machine's cores with the server, for both servers alike.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use drydock_stub::{Response, StringMatcher, Stub, StubServer};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use wiremock::{
    matchers::{header, method, path},
    Mock, MockServer, ResponseTemplate,
};

const STUBS: usize = 100;
const CONNECTIONS: usize = 32;
const STARTS: usize = 200;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p) as usize]
}

fn report(name: &str, samples: &mut [Duration]) -> Duration {
    let (p50, p95) = (percentile(samples, 0.5), percentile(samples, 0.95));
    println!(
        "  {name:<14} p50 {:>9.3} ms   p95 {:>9.3} ms",
        ms(p50),
        ms(p95)
    );
    p50
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Start, then the first request answered: what a test waits for before its first call.
async fn start_times(client: &reqwest::Client) -> (Duration, Duration) {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..STARTS {
        let started = Instant::now();
        let server = StubServer::start().await.expect("drydock-stub starts");
        client
            .get(format!("{}/", server.url()))
            .send()
            .await
            .expect("answers");
        ours.push(started.elapsed());
        drop(server);

        let started = Instant::now();
        let server = MockServer::start().await;
        client
            .get(format!("{}/", server.uri()))
            .send()
            .await
            .expect("answers");
        theirs.push(started.elapsed());
    }
    println!("start to first answer, {STARTS} servers each:");
    (
        report("drydock-stub", &mut ours),
        report("wiremock-rs", &mut theirs),
    )
}

/// Requests per second from `CONNECTIONS` keep-alive connections for `seconds`, over all
/// stubs. A bare hyper client, so the load generator costs as little of the 2 cores as it can.
async fn load(address: SocketAddr, seconds: f64) -> f64 {
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..CONNECTIONS {
        let (done, count) = (done.clone(), count.clone());
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connects");
        stream.set_nodelay(true).expect("nodelay");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        workers.push(tokio::spawn(async move {
            let mut i = worker;
            while !done.load(Ordering::Relaxed) {
                i = (i * 31 + 17) % STUBS;
                let request = hyper::Request::get(format!("/api/resource-{i}"))
                    .header("host", address.to_string())
                    .header("x-tenant", "acme")
                    .body(Empty::<Bytes>::new())
                    .expect("a request");
                let answer = sender.send_request(request).await.expect("a response");
                assert_eq!(answer.status(), 200);
                answer.into_body().collect().await.expect("a body");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    done.store(true, Ordering::Relaxed);
    let served = count.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for worker in workers {
        worker.await.expect("worker");
    }
    served as f64 / elapsed
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: f64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");
    println!(
        "drydock-stub benchmark on {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (ours, theirs) = start_times(&client).await;
    println!(
        "  ratio (wiremock-rs / drydock-stub, p50): {:.2}x",
        ms(theirs) / ms(ours)
    );
    println!(
        "  (both hand out recycled servers from a pool: same port, reset, keep-alive connections kept)"
    );

    let ours = StubServer::builder()
        .verify_on_drop(false)
        .start()
        .await
        .expect("starts");
    let theirs = MockServer::start().await;
    for i in 0..STUBS {
        let body = format!("{{\"id\": {i}}}");
        ours.mount(
            Stub::get(format!("/api/resource-{i}"))
                .header("x-tenant", StringMatcher::equal_to("acme"))
                .respond(Response::ok().body(body.clone())),
        )
        .await
        .expect("mounts");
        Mock::given(method("GET"))
            .and(path(format!("/api/resource-{i}")))
            .and(header("x-tenant", "acme"))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .mount(&theirs)
            .await;
    }
    println!("requests per second, {STUBS} stubs, {CONNECTIONS} connections, {seconds} s rounds:");
    let (mut ours_rps, mut theirs_rps) = (Vec::new(), Vec::new());
    // Alternating rounds, so drift of the machine touches both alike.
    for round in 1..=3 {
        let a = load(ours.address().expect("in process"), seconds).await;
        let b = load(*theirs.address(), seconds).await;
        println!("  round {round}: drydock-stub {a:>9.0} req/s   wiremock-rs {b:>9.0} req/s");
        ours_rps.push(a);
        theirs_rps.push(b);
        // Journals grow with every request, in both; keep rounds comparable.
        ours.clear_requests().await.expect("clears");
        theirs.reset().await;
        for i in 0..STUBS {
            Mock::given(method("GET"))
                .and(path(format!("/api/resource-{i}")))
                .and(header("x-tenant", "acme"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_string(format!("{{\"id\": {i}}}")),
                )
                .mount(&theirs)
                .await;
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (a, b) = (mean(&ours_rps), mean(&theirs_rps));
    println!(
        "  mean: drydock-stub {a:.0} req/s, wiremock-rs {b:.0} req/s, ratio {:.2}x",
        a / b
    );
}
