//! What a fault proxy costs when it adds no fault: drydock's [`FaultProxy`] beside a direct
//! connection and beside noxious's proxy core (a Rust port of Toxiproxy), on the same loopback
//! path to the same servers.
//!
//! ```text
//! . scripts/env && cargo bench -p drydock --bench fault_proxy
//! ```
//!
//! (a) Added latency per round trip, p50 and p99: 64-byte exchanges with an echo server, and —
//! when Docker is there — `SELECT 1` on PostgreSQL and `PING` on Redis of an owned environment
//! (all three paths to the same container). (b) Bulk throughput: 1 GiB from the client to a
//! sink. Paths take turns, a round each, so that noise from the rest of the machine spreads
//! over all of them. Targets: p50 overhead ≤ 50 µs, throughput ≥ 90 % of direct, and better
//! than noxious on both.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    time::{Duration, Instant},
};

use drydock::{fault::FaultProxy, Env, Postgres, Redis};
use noxious::{
    proxy::{ProxyConfig, ProxyRunner, Runner, Toxics},
    signal::{Close, Stop},
};
use sqlx::{Connection, Executor, PgConnection};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    runtime::Runtime,
};

type BenchResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Exchanges per path per round, and rounds.
const EXCHANGES: usize = 2_000;
const ROUNDS: usize = 10;
const BULK: usize = 1 << 30;
const BULK_ROUNDS: usize = 9;
/// Bytes per round from a real server, and the size of the Redis value read.
const SERVICE_BULK: usize = 256 << 20;
const REDIS_VALUE: usize = 16 << 20;

const PATHS: [&str; 3] = ["direct", "drydock", "noxious"];

/// An upstream and the three ways to it.
struct Paths {
    addresses: [String; 3],
    _drydock: FaultProxy,
    _noxious: noxious::signal::Stopper,
}

/// Starts drydock's and noxious's proxies to `upstream`.
fn paths(noxious_runtime: &Runtime, name: &str, upstream: &str) -> BenchResult<Paths> {
    let drydock = FaultProxy::start(name, upstream)?;
    let (noxious_address, stopper) = noxious_runtime.block_on(noxious_proxy(name, upstream))?;
    Ok(Paths {
        addresses: [
            upstream.to_owned(),
            drydock.listen_addr().to_string(),
            noxious_address.to_string(),
        ],
        _drydock: drydock,
        _noxious: stopper,
    })
}

/// noxious's proxy core, as its server runs one: bind, then run until stopped.
async fn noxious_proxy(
    name: &str,
    upstream: &str,
) -> BenchResult<(SocketAddr, noxious::signal::Stopper)> {
    // noxious's listener does not tell its port: take a free one (a race nothing else here runs).
    let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let config = ProxyConfig {
        name: name.to_owned(),
        listen: address.to_string(),
        upstream: upstream.to_owned(),
        enabled: true,
        rand_seed: None,
    };
    let (listener, info) =
        ProxyRunner::initialize_proxy::<noxious::socket::TcpListener>(config, Toxics::empty())
            .await?;
    let (stop, stopper) = Stop::new();
    let (close, closer) = Close::new();
    let (events, receiver) = bmrng::channel(16);
    tokio::spawn(async move {
        // Its toxic-event channel and close signal live as long as the proxy.
        let _keep = (events, close);
        let _ = ProxyRunner::run_proxy(listener, info, receiver, stop, closer).await;
    });
    Ok((address, stopper))
}

/// Echoes every connection.
async fn echo_server() -> BenchResult<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    Ok(address)
}

/// Reads a 64-bit length, then that many bytes, then answers one byte.
async fn sink_server() -> BenchResult<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut left) = socket.read_u64().await else {
                    return;
                };
                let mut buffer = vec![0u8; 256 << 10];
                while left > 0 {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => left = left.saturating_sub(n as u64),
                    }
                }
                let _ = socket.write_all(b"k").await;
            });
        }
    });
    Ok(address)
}

/// One kind of exchange: connects, then times `exchanges` round trips on that connection.
type Exchange =
    fn(String, usize) -> Pin<Box<dyn Future<Output = BenchResult<Vec<Duration>>> + Send>>;

fn echo_exchanges(
    address: String,
    exchanges: usize,
) -> Pin<Box<dyn Future<Output = BenchResult<Vec<Duration>>> + Send>> {
    Box::pin(async move {
        let mut socket = TcpStream::connect(address).await?;
        socket.set_nodelay(true)?;
        let message = [7u8; 64];
        let mut answer = [0u8; 64];
        let mut samples = Vec::with_capacity(exchanges);
        for _ in 0..exchanges {
            let started = Instant::now();
            socket.write_all(&message).await?;
            socket.read_exact(&mut answer).await?;
            samples.push(started.elapsed());
        }
        Ok(samples)
    })
}

/// A connection to the environment's Redis, authenticated. RESP by hand throughout: the path's
/// cost, not a client's.
async fn redis_session(address: &str) -> BenchResult<TcpStream> {
    let mut socket = TcpStream::connect(address).await?;
    socket.set_nodelay(true)?;
    let password = REDIS_PASSWORD.get().ok_or("no redis")?;
    let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len());
    socket.write_all(auth.as_bytes()).await?;
    let mut answer = [0u8; 5];
    socket.read_exact(&mut answer).await?;
    if &answer != b"+OK\r\n" {
        return Err(format!("AUTH answered {:?}", String::from_utf8_lossy(&answer)).into());
    }
    Ok(socket)
}

fn redis_exchanges(
    address: String,
    exchanges: usize,
) -> Pin<Box<dyn Future<Output = BenchResult<Vec<Duration>>> + Send>> {
    Box::pin(async move {
        // RESP by hand: the path's cost, not a client's.
        let mut socket = TcpStream::connect(address).await?;
        socket.set_nodelay(true)?;
        // The environment's Redis asks for its generated password first.
        let password = REDIS_PASSWORD.get().ok_or("no redis")?;
        let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len());
        socket.write_all(auth.as_bytes()).await?;
        let mut answer = [0u8; 5];
        socket.read_exact(&mut answer).await?;
        if &answer != b"+OK\r\n" {
            return Err(format!("AUTH answered {:?}", String::from_utf8_lossy(&answer)).into());
        }
        let mut answer = [0u8; 7];
        let mut samples = Vec::with_capacity(exchanges);
        for _ in 0..exchanges {
            let started = Instant::now();
            socket.write_all(b"PING\r\n").await?;
            socket.read_exact(&mut answer).await?;
            samples.push(started.elapsed());
            if &answer != b"+PONG\r\n" {
                return Err(
                    format!("redis answered {:?}", String::from_utf8_lossy(&answer)).into(),
                );
            }
        }
        Ok(samples)
    })
}

/// The environment's Redis password.
static REDIS_PASSWORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The PostgreSQL connection options, with the address to be filled in per path.
static POSTGRES: std::sync::OnceLock<sqlx::postgres::PgConnectOptions> = std::sync::OnceLock::new();

/// A connection to the environment's PostgreSQL through `address`.
async fn postgres_connection(address: &str) -> BenchResult<PgConnection> {
    let (host, port) = address.rsplit_once(':').ok_or("no port")?;
    let options = POSTGRES
        .get()
        .ok_or("no postgres")?
        .clone()
        .host(host)
        .port(port.parse()?);
    Ok(PgConnection::connect_with(&options).await?)
}

fn postgres_exchanges(
    address: String,
    exchanges: usize,
) -> Pin<Box<dyn Future<Output = BenchResult<Vec<Duration>>> + Send>> {
    Box::pin(async move {
        let mut connection = postgres_connection(&address).await?;
        let mut samples = Vec::with_capacity(exchanges);
        for _ in 0..exchanges {
            let started = Instant::now();
            connection.execute("SELECT 1").await?;
            samples.push(started.elapsed());
        }
        connection.close().await?;
        Ok(samples)
    })
}

/// Round trips on every path, the paths taking turns; samples per path, sorted.
fn round_trips(
    runtime: &Runtime,
    paths: &Paths,
    exchange: Exchange,
) -> BenchResult<[Vec<Duration>; 3]> {
    let mut samples: [Vec<Duration>; 3] = Default::default();
    for round in 0..=ROUNDS {
        for (path, address) in paths.addresses.iter().enumerate() {
            let taken = runtime.block_on(exchange(address.clone(), EXCHANGES))?;
            // Round 0 warms up connections, caches and the proxies' threads.
            if round > 0 {
                samples[path].extend(taken);
            }
        }
    }
    for s in &mut samples {
        s.sort();
    }
    Ok(samples)
}

/// One kind of bulk transfer through `address`, in MB/s.
type Bulk = fn(String) -> Pin<Box<dyn Future<Output = BenchResult<f64>> + Send>>;

/// Median throughput per path over [`BULK_ROUNDS`], the paths taking turns.
fn throughputs(runtime: &Runtime, paths: &Paths, bulk: Bulk) -> BenchResult<[f64; 3]> {
    let mut rates: [Vec<f64>; 3] = Default::default();
    // Round 0 warms up, as for round trips.
    for round in 0..=BULK_ROUNDS {
        for (path, address) in paths.addresses.iter().enumerate() {
            let rate = runtime.block_on(bulk(address.clone()))?;
            if round > 0 {
                rates[path].push(rate);
            }
        }
    }
    Ok(rates.map(|mut r| {
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    }))
}

fn report_bulk(what: &str, rates: &[f64; 3]) {
    println!("\n{what} (median of {BULK_ROUNDS})");
    for (i, path) in PATHS.iter().enumerate() {
        println!(
            "  {:<8} {:>8.0} MB/s {:>6.1} % of direct",
            path,
            rates[i],
            100.0 * rates[i] / rates[0]
        );
    }
    let share = rates[1] / rates[0];
    println!(
        "  drydock {:.1} % of direct (target ≥ 90 %: {}); {:.2}× noxious",
        100.0 * share,
        verdict(share >= 0.9),
        rates[1] / rates[2]
    );
}

/// `BULK` bytes to the sink through `address`, in MB/s.
fn sink_bulk(address: String) -> Pin<Box<dyn Future<Output = BenchResult<f64>> + Send>> {
    Box::pin(async move {
        let mut socket = TcpStream::connect(address).await?;
        let chunk = vec![1u8; 64 << 10];
        let started = Instant::now();
        socket.write_u64(BULK as u64).await?;
        let mut sent = 0;
        while sent < BULK {
            socket.write_all(&chunk).await?;
            sent += chunk.len();
        }
        let mut ack = [0u8; 1];
        socket.read_exact(&mut ack).await?;
        Ok(BULK as f64 / 1e6 / started.elapsed().as_secs_f64())
    })
}

/// About `SERVICE_BULK` bytes of rows from PostgreSQL (`COPY … TO STDOUT`), in MB/s.
fn postgres_bulk(address: String) -> Pin<Box<dyn Future<Output = BenchResult<f64>> + Send>> {
    Box::pin(async move {
        use futures::StreamExt;
        let mut connection = postgres_connection(&address).await?;
        // Rows of 1000 characters, made by the server: what crosses the path is the rows.
        let rows = SERVICE_BULK / 1001;
        let started = Instant::now();
        let mut copy = connection
            .copy_out_raw(&format!(
                "COPY (SELECT repeat('x', 1000) FROM generate_series(1, {rows})) TO STDOUT"
            ))
            .await?;
        let mut received = 0;
        while let Some(chunk) = copy.next().await {
            received += chunk?.len();
        }
        let rate = received as f64 / 1e6 / started.elapsed().as_secs_f64();
        drop(copy);
        connection.close().await?;
        if received < rows * 1001 {
            return Err(format!("COPY sent {received} bytes, expected {}", rows * 1001).into());
        }
        Ok(rate)
    })
}

/// `GET` of a [`REDIS_VALUE`]-byte value, [`SERVICE_BULK`] bytes in all, in MB/s.
fn redis_bulk(address: String) -> Pin<Box<dyn Future<Output = BenchResult<f64>> + Send>> {
    Box::pin(async move {
        let mut socket = redis_session(&address).await?;
        let header = format!("${REDIS_VALUE}\r\n");
        let mut answer = vec![0u8; header.len() + REDIS_VALUE + 2];
        let started = Instant::now();
        for _ in 0..SERVICE_BULK / REDIS_VALUE {
            socket
                .write_all(b"*2\r\n$3\r\nGET\r\n$4\r\nbulk\r\n")
                .await?;
            socket.read_exact(&mut answer).await?;
            if !answer.starts_with(header.as_bytes()) {
                return Err("GET bulk did not answer the value".into());
            }
        }
        Ok(SERVICE_BULK as f64 / 1e6 / started.elapsed().as_secs_f64())
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn report_latency(what: &str, samples: &[Vec<Duration>; 3]) {
    let p50: Vec<f64> = samples
        .iter()
        .map(|s| micros(percentile(s, 0.50)))
        .collect();
    let p99: Vec<f64> = samples
        .iter()
        .map(|s| micros(percentile(s, 0.99)))
        .collect();
    println!("\n{what} ({} round trips per path)", samples[0].len());
    println!(
        "  {:<8} {:>9} {:>9} {:>13} {:>13}",
        "path", "p50 µs", "p99 µs", "+p50 µs", "+p99 µs"
    );
    for (i, path) in PATHS.iter().enumerate() {
        println!(
            "  {:<8} {:>9.1} {:>9.1} {:>13.1} {:>13.1}",
            path,
            p50[i],
            p99[i],
            p50[i] - p50[0],
            p99[i] - p99[0]
        );
    }
    let (drydock, noxious) = (p50[1] - p50[0], p50[2] - p50[0]);
    let (drydock99, noxious99) = (p99[1] - p99[0], p99[2] - p99[0]);
    println!(
        "  overhead: drydock p50 {drydock:.1} µs (target ≤ 50: {}), p99 {drydock99:.1} µs; \
         noxious p50 {noxious:.1} µs, p99 {noxious99:.1} µs",
        verdict(drydock <= 50.0),
    );
    // Within a microsecond is a tie on a loopback path: the machine's noise is larger.
    let compare = |ours: f64, theirs: f64| match ours - theirs {
        d if d < -1.0 => format!("{:.1} µs better", -d),
        d if d > 1.0 => format!("{d:.1} µs WORSE"),
        _ => "level".to_owned(),
    };
    println!(
        "  drydock vs noxious: p50 {}, p99 {}",
        compare(drydock, noxious),
        compare(drydock99, noxious99)
    );
}

fn main() -> BenchResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // noxious on a runtime of its own, as drydock's proxies are on theirs: neither shares
    // threads with the clients measuring them.
    let noxious_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    // `cargo bench --bench fault_proxy -- bulk` runs only the parts named (echo, services, bulk).
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs = |part: &str| named.is_empty() || named.iter().any(|n| n == part);

    if runs("echo") {
        let echo = runtime.block_on(echo_server())?;
        let echo_paths = paths(&noxious_runtime, "echo", &echo.to_string())?;
        report_latency(
            "echo, 64 bytes",
            &round_trips(&runtime, &echo_paths, echo_exchanges)?,
        );
    }

    // PostgreSQL and Redis when Docker is there: an owned environment, all paths to its servers.
    let services = runs("services").then(|| {
        runtime.block_on(
            Env::builder()
                .with_postgres(Postgres::default())
                .with_redis(Redis::default())
                .start(),
        )
    });
    match services {
        None => {}
        Some(Ok(env)) => {
            let postgres = env.fault("postgres")?.upstream();
            let _ = POSTGRES.set(env.postgres()?.connect_options());
            let postgres_paths = paths(&noxious_runtime, "postgres", &postgres)?;
            report_latency(
                "postgres, SELECT 1",
                &round_trips(&runtime, &postgres_paths, postgres_exchanges)?,
            );
            let redis = env.fault("redis")?.upstream();
            let _ = REDIS_PASSWORD.set(env.redis()?.server().password().to_owned());
            let redis_paths = paths(&noxious_runtime, "redis", &redis)?;
            runtime.block_on(async {
                let mut redis = env.redis()?.connection_manager().await?;
                redis::cmd("SET")
                    .arg("bulk")
                    .arg(vec![b'r'; REDIS_VALUE])
                    .exec_async(&mut redis)
                    .await?;
                BenchResult::Ok(())
            })?;
            report_latency(
                "redis, PING",
                &round_trips(&runtime, &redis_paths, redis_exchanges)?,
            );
            report_bulk(
                &format!(
                    "bulk, PostgreSQL COPY TO STDOUT, {} MiB",
                    SERVICE_BULK >> 20
                ),
                &throughputs(&runtime, &postgres_paths, postgres_bulk)?,
            );
            report_bulk(
                &format!("bulk, Redis GET of a {} MiB value", REDIS_VALUE >> 20),
                &throughputs(&runtime, &redis_paths, redis_bulk)?,
            );
            drop((postgres_paths, redis_paths));
            runtime.block_on(env.teardown())?;
        }
        Some(Err(e)) => println!("\npostgres and redis skipped: no environment ({e})"),
    }

    if runs("bulk") {
        let sink = runtime.block_on(sink_server())?;
        let sink_paths = paths(&noxious_runtime, "sink", &sink.to_string())?;
        report_bulk(
            &format!("bulk, {} MiB client → in-process sink", BULK >> 20),
            &throughputs(&runtime, &sink_paths, sink_bulk)?,
        );
    }
    println!("\ntotal {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
