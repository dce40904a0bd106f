//! The fault proxy's toxics, measured on real TCP connections through it to small servers run
//! here (an echo server and a byte source): each test can fail if its toxic misbehaves.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use drydock::{
    fault::{FaultProxy, Toxic},
    Error, TestResult,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// An echo server: writes back what it reads.
async fn echo_server() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(address)
}

/// A server that sends `bytes` bytes (0, 1, 2, … mod 251) to every connection, then closes.
async fn source_server(bytes: usize) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let data: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
                let _ = stream.write_all(&data).await;
            });
        }
    });
    Ok(address)
}

/// The upstream of `proxy`, a live address.
fn address_of(proxy: &FaultProxy) -> String {
    proxy.upstream()
}

/// Round trip of one small message through `proxy`.
async fn round_trip(proxy: &FaultProxy) -> std::io::Result<Duration> {
    let mut stream = TcpStream::connect(proxy.listen_addr()).await?;
    stream.set_nodelay(true)?;
    let started = Instant::now();
    stream.write_all(b"ping").await?;
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer).await?;
    assert_eq!(&answer, b"ping");
    Ok(started.elapsed())
}

/// Everything a connection through `proxy` receives until it closes, and in how many reads.
async fn read_all(proxy: &FaultProxy) -> std::io::Result<(Vec<u8>, usize)> {
    let mut stream = TcpStream::connect(proxy.listen_addr()).await?;
    let mut all = Vec::new();
    let mut reads = 0;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await??;
        if n == 0 {
            return Ok((all, reads));
        }
        reads += 1;
        all.extend_from_slice(&buffer[..n]);
    }
}

#[tokio::test]
async fn latency_adds_at_least_the_delay_and_not_grossly_more() -> TestResult {
    let proxy = FaultProxy::start("echo", echo_server().await?.to_string())?;
    let baseline = round_trip(&proxy).await?;
    let _slow = proxy.add(Toxic::latency(Duration::from_millis(150)))?;
    let slow = round_trip(&proxy).await?;
    assert!(slow >= Duration::from_millis(150), "{slow:?}");
    assert!(
        slow < baseline + Duration::from_millis(400),
        "{slow:?} against {baseline:?}"
    );
    drop(_slow);
    let fast = round_trip(&proxy).await?;
    assert!(
        fast < Duration::from_millis(100),
        "removed with its guard: {fast:?}"
    );
    Ok(())
}

/// One round trip of `message` on an open connection.
async fn exchange(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Duration> {
    let started = Instant::now();
    stream.write_all(message).await?;
    let mut answer = vec![0u8; message.len()];
    stream.read_exact(&mut answer).await?;
    assert_eq!(answer, message, "the echo came back changed");
    Ok(started.elapsed())
}

/// A link with no toxic moves its bytes inside the kernel (splice on Linux); a toxic added
/// while the connection is open must still act on it, and its removal let it go fast again,
/// with every byte intact on the way (8 MiB each way, then small exchanges).
#[tokio::test]
async fn toxics_act_on_a_link_that_was_open_before_them_and_bytes_stay_intact() -> TestResult {
    let proxy = FaultProxy::start("echo", echo_server().await?.to_string())?;
    let mut stream = TcpStream::connect(proxy.listen_addr()).await?;
    stream.set_nodelay(true)?;
    let bulk: Vec<u8> = (0..8usize << 20).map(|i| (i * 7 % 253) as u8).collect();
    let (mut reader, mut writer) = stream.split();
    let mut echoed = vec![0u8; bulk.len()];
    let (written, read) = tokio::join!(writer.write_all(&bulk), reader.read_exact(&mut echoed));
    written?;
    read?;
    assert!(echoed == bulk, "8 MiB through the proxy came back changed");
    exchange(&mut stream, b"before").await?;

    let slow = proxy.add(Toxic::latency(Duration::from_millis(150)))?;
    let delayed = exchange(&mut stream, b"during").await?;
    assert!(
        delayed >= Duration::from_millis(150),
        "latency added while the link was open: {delayed:?}"
    );
    drop(slow);
    exchange(&mut stream, b"flush").await?;
    let fast = exchange(&mut stream, b"after").await?;
    assert!(fast < Duration::from_millis(100), "removed: {fast:?}");
    Ok(())
}

#[tokio::test]
async fn latency_both_ways_stacks() -> TestResult {
    let proxy = FaultProxy::start("echo", echo_server().await?.to_string())?;
    let _both = proxy.add_both(Toxic::latency(Duration::from_millis(100)))?;
    let names: Vec<String> = proxy.toxics().iter().map(Toxic::name).collect();
    assert_eq!(names, ["latency_upstream", "latency_downstream"]);
    let slow = round_trip(&proxy).await?;
    assert!(slow >= Duration::from_millis(200), "{slow:?}");
    assert!(slow < Duration::from_millis(600), "{slow:?}");
    let _more = proxy.add(Toxic::latency(Duration::from_millis(100)).named("more"))?;
    let slower = round_trip(&proxy).await?;
    assert!(
        slower >= Duration::from_millis(300),
        "toxics stack: {slower:?}"
    );
    Ok(())
}

#[tokio::test]
async fn bandwidth_holds_the_rate_within_a_quarter() -> TestResult {
    let bytes = 200 * 1024;
    let proxy = FaultProxy::start("source", source_server(bytes).await?.to_string())?;
    let _narrow = proxy.add(Toxic::bandwidth(400))?; // 400 KB/s: 0.5 s for 200 KB
    let started = Instant::now();
    let (data, _) = read_all(&proxy).await?;
    let took = started.elapsed();
    assert_eq!(data.len(), bytes);
    // Expected 0.5 s; tolerance ±25 % (scheduling on a loaded 2-core machine).
    assert!(took >= Duration::from_millis(375), "{took:?}");
    assert!(
        took <= Duration::from_millis(625) + Duration::from_millis(200),
        "{took:?}"
    );
    Ok(())
}

#[tokio::test]
async fn limit_data_closes_after_exactly_n_bytes() -> TestResult {
    let proxy = FaultProxy::start("source", source_server(100_000).await?.to_string())?;
    let _limit = proxy.add(Toxic::limit_data(12_345))?;
    let (data, _) = read_all(&proxy).await?;
    assert_eq!(data.len(), 12_345);
    let expected: Vec<u8> = (0..12_345).map(|i| (i % 251) as u8).collect();
    assert_eq!(data, expected, "the first bytes, unchanged");
    Ok(())
}

#[tokio::test]
async fn slicer_delivers_the_same_bytes_in_more_reads() -> TestResult {
    let bytes = 20_000;
    let proxy = FaultProxy::start("source", source_server(bytes).await?.to_string())?;
    let (whole, whole_reads) = read_all(&proxy).await?;
    let _sliced = proxy.add(
        Toxic::slicer(100)
            .size_variation(50)
            .slice_delay(Duration::from_micros(200)),
    )?;
    let (sliced, sliced_reads) = read_all(&proxy).await?;
    assert_eq!(whole, sliced, "the same bytes");
    assert!(
        sliced_reads > whole_reads * 10 && sliced_reads >= 60,
        "{sliced_reads} reads sliced against {whole_reads} whole"
    );
    Ok(())
}

#[tokio::test]
async fn toxicity_one_half_hits_about_half_the_connections() -> TestResult {
    let proxy = FaultProxy::start("echo", echo_server().await?.to_string())?;
    let _sometimes = proxy.add(Toxic::latency(Duration::from_millis(40)).toxicity(0.5))?;
    let mut slow = 0;
    let connections = 200;
    for _ in 0..connections {
        if round_trip(&proxy).await? >= Duration::from_millis(40) {
            slow += 1;
        }
    }
    // Binomial(200, 0.5): 100 ± 7 (1 σ); ±35 is five sigmas.
    assert!((65..=135).contains(&slow), "{slow} of {connections} slowed");
    Ok(())
}

#[tokio::test]
async fn timeout_stops_data_and_closes_after_its_delay() -> TestResult {
    let proxy = FaultProxy::start("echo", echo_server().await?.to_string())?;
    let _stuck = proxy.add(Toxic::timeout(Duration::from_millis(300)))?;
    let mut stream = TcpStream::connect(proxy.listen_addr()).await?;
    let started = Instant::now();
    stream.write_all(b"ping").await?;
    let mut buffer = [0u8; 4];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await??;
    assert_eq!(n, 0, "no data, then closed");
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn timeout_zero_holds_data_until_removed() -> TestResult {
    let proxy = FaultProxy::start("echo", echo_server().await?.to_string())?;
    let held = proxy.add(Toxic::timeout(Duration::ZERO))?;
    let mut stream = TcpStream::connect(proxy.listen_addr()).await?;
    stream.write_all(b"ping").await?;
    let mut buffer = [0u8; 4];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut buffer))
            .await
            .is_err(),
        "held while the toxic is in place"
    );
    drop(held);
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buffer)).await??;
    assert_eq!(&buffer, b"ping", "delivered once removed");
    Ok(())
}

#[tokio::test]
async fn reset_peer_resets_the_connection() -> TestResult {
    let proxy = FaultProxy::start("echo", echo_server().await?.to_string())?;
    let _reset = proxy.add(Toxic::reset_peer(Duration::from_millis(50)))?;
    let mut stream = TcpStream::connect(proxy.listen_addr()).await?;
    let mut buffer = [0u8; 4];
    let outcome = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await?;
    let error = outcome.expect_err("a reset, not a clean close");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    Ok(())
}

/// What enters a reset_peer toxic is never passed on, also with no timeout: an echo server's
/// answer (downstream, the toxic's default stream) never reaches the client, only the reset.
#[tokio::test]
async fn reset_peer_passes_nothing_on_before_the_reset() -> TestResult {
    let proxy = FaultProxy::start("echo", echo_server().await?.to_string())?;
    let _reset = proxy.add(Toxic::reset_peer(Duration::ZERO))?;
    for _ in 0..20 {
        let mut stream = TcpStream::connect(proxy.listen_addr()).await?;
        let mut buffer = [0u8; 4];
        // The toxic fires at once: the reset may reach this side before its write does.
        let outcome = match stream.write_all(b"ping").await {
            Err(e) => Err(e),
            Ok(()) => {
                tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await?
            }
        };
        match outcome {
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ),
                "{e}"
            ),
            Ok(n) => panic!(
                "{n} byte(s) got through a reset_peer toxic: {:?}",
                &buffer[..n]
            ),
        }
    }
    Ok(())
}

#[tokio::test]
async fn slow_close_delays_the_close() -> TestResult {
    let proxy = FaultProxy::start("source", source_server(10).await?.to_string())?;
    let _slow = proxy.add(Toxic::slow_close(Duration::from_millis(300)))?;
    let started = Instant::now();
    let (data, _) = read_all(&proxy).await?;
    assert_eq!(data.len(), 10);
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_link_down_refuses_and_cuts_then_comes_back() -> TestResult {
    let proxy = FaultProxy::start("echo", echo_server().await?.to_string())?;
    let mut open = TcpStream::connect(proxy.listen_addr()).await?;
    round_trip(&proxy).await?;
    let down = proxy.down();
    assert!(
        TcpStream::connect(proxy.listen_addr()).await.is_err(),
        "refused"
    );
    let mut buffer = [0u8; 4];
    let cut = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = open.write_all(b"ping").await;
        open.read(&mut buffer).await
    })
    .await?;
    assert!(
        matches!(cut, Ok(0) | Err(_)),
        "the open connection was cut: {cut:?}"
    );
    drop(down);
    round_trip(&proxy).await?;
    Ok(())
}

#[tokio::test]
async fn traffic_counts_connections_bytes_and_round_trips() -> TestResult {
    let proxy = FaultProxy::start("echo", echo_server().await?.to_string())?;
    let _slow = proxy.add(Toxic::latency(Duration::from_millis(50)))?;
    for _ in 0..3 {
        round_trip(&proxy).await?;
    }
    // The link's counters settle as it closes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let traffic = proxy.traffic();
    assert_eq!(traffic.connections, 3);
    assert_eq!((traffic.bytes_upstream, traffic.bytes_downstream), (12, 12));
    assert_eq!(traffic.round_trips, 3);
    assert!(traffic.waited >= Duration::from_millis(150), "{traffic}");
    Ok(())
}

#[tokio::test]
async fn bad_toxics_and_upstreams_are_clear_errors() -> TestResult {
    let proxy = FaultProxy::start("echo", echo_server().await?.to_string())?;
    let message = |e: Error| e.to_string();
    let e = message(
        proxy
            .add(Toxic::latency(Duration::ZERO).toxicity(1.5))
            .err()
            .ok_or("accepted")?,
    );
    assert!(e.contains("toxicity 1.5"), "{e}");
    let e = message(proxy.add(Toxic::bandwidth(0)).err().ok_or("accepted")?);
    assert!(e.contains("rate"), "{e}");
    let e = message(
        proxy
            .add(Toxic::slicer(10).size_variation(20))
            .err()
            .ok_or("accepted")?,
    );
    assert!(e.contains("size_variation"), "{e}");
    let _first = proxy.add(Toxic::latency(Duration::from_millis(1)))?;
    let e = message(
        proxy
            .add(Toxic::latency(Duration::from_millis(2)))
            .err()
            .ok_or("accepted")?,
    );
    assert!(e.contains("already in place"), "{e}");
    let e = message(proxy.remove("nothing").err().ok_or("accepted")?);
    assert!(e.contains("no toxic named nothing"), "{e}");

    // A proxy to a port nobody listens on is refused, naming it.
    let nobody = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?
    };
    let e = message(
        FaultProxy::start("dead", nobody.to_string())
            .err()
            .ok_or("accepted")?,
    );
    assert!(
        e.contains(&nobody.to_string()) && e.contains("nothing accepts"),
        "{e}"
    );
    // An upstream that goes away later: the client's connection is closed at once.
    let (going, address) = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        (listener, address)
    };
    let dead = FaultProxy::start("gone", address.to_string())?;
    drop(going);
    let mut stream = TcpStream::connect(dead.listen_addr()).await?;
    let mut buffer = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await?;
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    let e = message(
        FaultProxy::start_on("bad", "not an address", address_of(&proxy))
            .err()
            .ok_or("accepted")?,
    );
    assert!(e.contains("not an address"), "{e}");
    Ok(())
}
