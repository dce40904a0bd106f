//! One proxied connection (a link): two pumps, one per direction, each passing its bytes through
//! the toxics of its stream, in order.
//!
//! Toxics are read again whenever they change, so a toxic added or removed acts on open links.
//! Whether a toxic applies to a link is drawn once per link and toxic, from its toxicity.

use crate::sync::lock;
use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use rand::Rng;
use tokio::{
    io::{AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{
        tcp::{ReadHalf, WriteHalf},
        TcpStream,
    },
    sync::watch,
};

use super::{
    proxy::{Inner, Placed},
    toxic::{Stream, ToxicKind},
    Protocol,
};

/// The most a toxic acts on at once (latency is per chunk, bandwidth paces chunks).
const CHUNK: usize = 32 * 1024;
/// A link's read buffer starts small (most links carry small requests and answers) and grows,
/// while reads fill it, up to this: fewer, larger reads and writes for bulk transfers.
const FIRST_READ: usize = 16 * 1024;
const MAX_READ: usize = 256 * 1024;

/// How long the proxy's thread keeps asking for an answer before it sleeps until one comes —
/// only on a link whose last answer came this quickly. A sleeping thread takes a wake-up to
/// react, tens of microseconds on a virtual machine, once per answer; a thread that asks again
/// meanwhile forwards the answer at once. The price is this much CPU time at most per request,
/// and none on links whose server answers slowly (their requests go straight to sleep).
const SPIN_FOR_ANSWER: Duration = Duration::from_micros(200);

/// What ends a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The source closed; the other direction may go on.
    Eof,
    /// Close both directions (limit_data, timeout, link down, an I/O error).
    Close,
    /// Reset both directions (reset_peer).
    Reset,
}

/// Per-link state shared by its two pumps.
struct Link {
    inner: Arc<Inner>,
    /// Whether each toxic (by placement id) applies to this link.
    drawn: Mutex<HashMap<u64, bool>>,
    /// Bytes through each limit_data toxic so far.
    limited: Mutex<HashMap<u64, u64>>,
    /// When the request now awaiting an answer left the proxy.
    asked_at: Mutex<Option<Instant>>,
    /// How long the last answer took (from the request leaving to the answer arriving).
    last_wait: Mutex<Option<Duration>>,
    /// Wakes the downstream pump when a request leaves, so that it can spin for the answer.
    asked: tokio::sync::Notify,
    kafka: Mutex<super::kafka::Requests>,
}

impl Link {
    /// The toxics of `stream` that apply to this link, in order.
    fn active(&self, toxics: &[Placed], stream: Stream) -> Vec<Placed> {
        let mut drawn = lock(&self.drawn);
        toxics
            .iter()
            .filter(|p| p.toxic.stream == stream)
            .filter(|p| {
                *drawn.entry(p.id).or_insert_with(|| {
                    p.toxic.toxicity >= 1.0 || rand::rng().random::<f64>() < p.toxic.toxicity
                })
            })
            .cloned()
            .collect()
    }
}

pub(crate) async fn run(inner: Arc<Inner>, mut client: TcpStream) {
    let upstream = lock(&inner.upstream).clone();
    let Some(mut server) = connect(&upstream).await else {
        // The client sees its connection closed, as with Toxiproxy when the upstream is gone.
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    inner.counters.connections.fetch_add(1, Ordering::Relaxed);
    inner.counters.open.fetch_add(1, Ordering::Relaxed);
    let link = Arc::new(Link {
        inner: Arc::clone(&inner),
        drawn: Mutex::new(HashMap::new()),
        limited: Mutex::new(HashMap::new()),
        asked_at: Mutex::new(None),
        last_wait: Mutex::new(None),
        asked: tokio::sync::Notify::new(),
        kafka: Mutex::new(Default::default()),
    });
    // Borrowed halves: unlike owned ones, they send no FIN when dropped, so a reset is a reset.
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(&link, Stream::Upstream, client_read, server_write);
        let down = pump(&link, Stream::Downstream, server_read, client_write);
        run_pumps(&link, up, down).await
    };
    if end == End::Reset {
        for socket in [&client, &server] {
            let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
        }
    }
    // Dropping the sockets closes both sides now (with a RST after a reset).
    drop((client, server));
    inner.counters.open.fetch_sub(1, Ordering::Relaxed);
}

/// Connects to `upstream`, by its shortcut when there is one (see [`super::shortcut`]); a
/// shortcut that fails is forgotten and the published address tried.
async fn connect(upstream: &str) -> Option<TcpStream> {
    if let Some(address) = super::shortcut::lookup(upstream) {
        // On a bridge of this machine a live container answers at once; one that is gone
        // leaves the connection waiting for its address to resolve: fall back soon.
        match tokio::time::timeout(Duration::from_millis(250), TcpStream::connect(address)).await {
            Ok(Ok(server)) => return Some(server),
            _ => super::shortcut::forget(upstream),
        }
    }
    TcpStream::connect(upstream).await.ok()
}

/// Runs both directions: one side closing (EOF) lets the other finish; anything else ends the
/// link at once.
async fn run_pumps(
    link: &Link,
    up: impl std::future::Future<Output = End>,
    down: impl std::future::Future<Output = End>,
) -> End {
    let watch = watch_link(link);
    tokio::pin!(up, down, watch);
    let (mut up_done, mut down_done) = (false, false);
    // One side closing (EOF) lets the other finish; anything else ends the link at once.
    let end = loop {
        let end = tokio::select! {
            end = &mut up, if !up_done => { up_done = true; end }
            end = &mut down, if !down_done => { down_done = true; end }
            end = &mut watch => break end,
        };
        if end != End::Eof || (up_done && down_done) {
            break end;
        }
    };
    end
}

/// Ends the link when the proxy goes down, or when a reset_peer toxic fires.
async fn watch_link(link: &Link) -> End {
    let mut enabled = link.inner.enabled.subscribe();
    let mut toxics = link.inner.toxics.subscribe();
    loop {
        if !*enabled.borrow_and_update() {
            return End::Close;
        }
        let current = toxics.borrow_and_update().clone();
        let reset = [Stream::Upstream, Stream::Downstream]
            .into_iter()
            .flat_map(|s| link.active(&current, s))
            .find_map(|p| match p.toxic.kind {
                ToxicKind::ResetPeer { timeout } => Some((p.id, timeout)),
                _ => None,
            });
        match reset {
            Some((_, timeout)) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(timeout)) => return End::Reset,
                    // Removed or changed before it fired: look again.
                    _ = toxics.changed() => {}
                    _ = enabled.changed() => {}
                }
            }
            None => {
                tokio::select! {
                    _ = toxics.changed() => {}
                    _ = enabled.changed() => {}
                }
            }
        }
    }
}

/// Moves bytes one way through the stream's toxics until the source closes or a toxic ends it.
async fn pump(
    link: &Link,
    stream: Stream,
    mut source: ReadHalf<'_>,
    mut sink: WriteHalf<'_>,
) -> End {
    if link.inner.protocol == Protocol::Kafka {
        return pump_frames(link, stream, source, sink).await;
    }
    let mut toxics = link.inner.toxics.subscribe();
    let mut buffer = vec![0u8; FIRST_READ];
    // The zero-copy path's pipe, made when first needed; if the system refuses one, the link
    // stays on the buffered path.
    #[cfg(target_os = "linux")]
    let (mut pipe, mut pipe_refused) = (None, false);
    loop {
        // No toxic on the proxy, the common case: bytes move inside the kernel until one comes.
        #[cfg(target_os = "linux")]
        if !pipe_refused && toxics.borrow().is_empty() {
            if pipe.is_none() {
                pipe = super::splice::Pipe::new().ok();
                pipe_refused = pipe.is_none();
            }
            if let Some(pipe) = &pipe {
                if let Some(end) =
                    zero_copy(link, &mut toxics, stream, pipe, &source, &mut sink).await
                {
                    return end;
                }
            }
        }
        let n = match source.read(&mut buffer).await {
            Ok(0) => return close(link, &mut toxics, stream, &mut sink).await,
            Ok(n) => n,
            Err(_) => return End::Close,
        };
        if toxics.borrow().is_empty() {
            // No toxic on the proxy, the common case: straight from the buffer, without
            // copying the chunk or taking the toxics' locks.
            if sink.write_all(&buffer[..n]).await.is_err() {
                return End::Close;
            }
            wrote(link, stream, n);
        } else {
            for chunk in buffer[..n].chunks(CHUNK) {
                if let Err(end) = pass(link, &mut toxics, stream, chunk.to_vec(), &mut sink).await {
                    return end;
                }
            }
        }
        grow(&mut buffer, n);
    }
}

/// [`pump`] for Kafka: frame by frame, each request noted and each answer rewritten to name
/// the proxy (see [`super::kafka`]). Read through a buffer: one read usually brings a frame's
/// size and body together, often several frames.
async fn pump_frames(
    link: &Link,
    stream: Stream,
    source: ReadHalf<'_>,
    mut sink: WriteHalf<'_>,
) -> End {
    let mut toxics = link.inner.toxics.subscribe();
    let mut source = tokio::io::BufReader::with_capacity(FIRST_READ, source);
    loop {
        let frame = match super::kafka::read_frame(&mut source).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return close(link, &mut toxics, stream, &mut sink).await,
            Err(_) => return End::Close,
        };
        let frame = match stream {
            Stream::Upstream => {
                lock(&link.kafka).note_request(&frame);
                frame
            }
            Stream::Downstream => lock(&link.kafka).rewrite_response(frame, link.inner.listen),
        };
        if toxics.borrow().is_empty() {
            // No toxic on the proxy, the common case: the frame as it is.
            if sink.write_all(&frame).await.is_err() {
                return End::Close;
            }
            wrote(link, stream, frame.len());
        } else if let Err(end) = pass(link, &mut toxics, stream, frame, &mut sink).await {
            return end;
        }
    }
}
/// Splices bytes from `source` to `sink` while the proxy has no toxic: `Some(end)` when the
/// link ends, `None` when a toxic arrived (the pipe is empty then; the caller goes on buffered).
#[cfg(target_os = "linux")]
async fn zero_copy(
    link: &Link,
    toxics: &mut watch::Receiver<Arc<Vec<Placed>>>,
    stream: Stream,
    pipe: &super::splice::Pipe,
    source: &ReadHalf<'_>,
    sink: &mut WriteHalf<'_>,
) -> Option<End> {
    loop {
        if !toxics.borrow_and_update().is_empty() {
            return None;
        }
        let answered = match stream {
            Stream::Downstream => spin_for_answer(link, toxics, pipe, source).await,
            Stream::Upstream => None,
        };
        let filled = match answered {
            Some(filled) => filled,
            None => tokio::select! {
                filled = pipe.fill(source.as_ref()) => filled,
                // A request left: spin for its answer (the loop's next turn).
                _ = link.asked.notified(), if stream == Stream::Downstream => continue,
            changed = toxics.changed() => {
                if changed.is_err() {
                    return Some(End::Close);
                }
                    continue;
                }
            },
        };
        match filled {
            Ok(0) => return Some(close(link, toxics, stream, sink).await),
            Ok(n) => {
                if pipe.drain(sink.as_ref(), n).await.is_err() {
                    return Some(End::Close);
                }
                wrote(link, stream, n);
            }
            Err(_) => return Some(End::Close),
        }
    }
}

/// While a request awaits its answer on a link whose server answers quickly, asks the server's
/// socket again and again for up to [`SPIN_FOR_ANSWER`], letting the proxy's other links run
/// between the asks: `Some` with what came, `None` to wait for it asleep.
#[cfg(target_os = "linux")]
async fn spin_for_answer(
    link: &Link,
    toxics: &mut watch::Receiver<Arc<Vec<Placed>>>,
    pipe: &super::splice::Pipe,
    source: &ReadHalf<'_>,
) -> Option<std::io::Result<usize>> {
    let asked = (*lock(&link.asked_at))?;
    if !lock(&link.last_wait).is_some_and(|waited| waited <= SPIN_FOR_ANSWER) {
        return None;
    }
    loop {
        match pipe.try_fill(source.as_ref()) {
            Ok(Some(moved)) => return Some(Ok(moved)),
            Err(e) => return Some(Err(e)),
            Ok(None) => {}
        }
        if asked.elapsed() > SPIN_FOR_ANSWER || toxics.has_changed().unwrap_or(true) {
            return None;
        }
        // Lets other threads of this core run first (the server, on a machine with few cores,
        // may be waiting for exactly this core), then the runtime poll its other sockets
        // (without sleeping) and run their links.
        std::thread::yield_now();
        tokio::task::yield_now().await;
    }
}

/// Doubles the read buffer when a read filled it, up to [`MAX_READ`].
fn grow(buffer: &mut Vec<u8>, read: usize) {
    if read == buffer.len() && buffer.len() < MAX_READ {
        buffer.resize(buffer.len() * 2, 0);
    }
}

/// The source closed: slow_close delays the close, then the sink is shut down.
async fn close(
    link: &Link,
    toxics: &mut watch::Receiver<Arc<Vec<Placed>>>,
    stream: Stream,
    sink: &mut (impl AsyncWrite + Unpin),
) -> End {
    let current = toxics.borrow_and_update().clone();
    for placed in link.active(&current, stream) {
        if let ToxicKind::SlowClose { delay } = placed.toxic.kind {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }
    let _ = sink.shutdown().await;
    End::Eof
}

/// Counts `bytes` written to the sink; a request (upstream) starts a round trip, and its
/// answer reaching the client (downstream) ends it, toxics included.
fn wrote(link: &Link, stream: Stream, bytes: usize) {
    let counter = match stream {
        Stream::Upstream => &link.inner.counters.bytes_upstream,
        Stream::Downstream => &link.inner.counters.bytes_downstream,
    };
    counter.fetch_add(bytes as u64, Ordering::Relaxed);
    match stream {
        Stream::Downstream => {
            if let Some(asked) = lock(&link.asked_at).take() {
                let waited = asked.elapsed();
                *lock(&link.last_wait) = Some(waited);
                link.inner.counters.round_trip(waited);
            }
        }
        Stream::Upstream => {
            let mut asked_at = lock(&link.asked_at);
            if asked_at.is_none() {
                *asked_at = Some(Instant::now());
                link.asked.notify_one();
            }
        }
    }
}

/// Passes one chunk through the toxics in order and writes what comes out.
async fn pass(
    link: &Link,
    toxics: &mut watch::Receiver<Arc<Vec<Placed>>>,
    stream: Stream,
    data: Vec<u8>,
    sink: &mut (impl AsyncWrite + Unpin),
) -> Result<(), End> {
    // A timeout toxic holds the data: until it fires (the link closes) or is removed. So does
    // a reset_peer toxic, as Toxiproxy's does: what enters it is never passed on, and the link
    // is reset when its timeout is up (`watch_link`) — without this, a fast exchange got through
    // before a `reset_peer(0)` fired on the timer's next tick.
    let current = loop {
        let current = toxics.borrow_and_update().clone();
        let held = link
            .active(&current, stream)
            .into_iter()
            .find_map(|p| match p.toxic.kind {
                ToxicKind::Timeout { timeout } => Some(timeout),
                ToxicKind::ResetPeer { .. } => Some(0),
                _ => None,
            });
        match held {
            None => break current,
            Some(0) => {
                if toxics.changed().await.is_err() {
                    return Err(End::Close);
                }
            }
            Some(timeout) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(timeout)) => return Err(End::Close),
                    changed = toxics.changed() => if changed.is_err() { return Err(End::Close) },
                }
            }
        }
    };
    let mut pieces: Vec<(Vec<u8>, Duration)> = vec![(data, Duration::ZERO)];
    let mut close_after = false;
    for placed in link.active(&current, stream) {
        match placed.toxic.kind {
            ToxicKind::Latency { latency, jitter } => {
                let jitter = jitter as i64;
                let offset = if jitter > 0 {
                    rand::rng().random_range(-jitter..=jitter)
                } else {
                    0
                };
                let delay = (latency as i64 + offset).max(0) as u64;
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            ToxicKind::Bandwidth { rate } => {
                let bytes: usize = pieces.iter().map(|(p, _)| p.len()).sum();
                // rate KB/s: bytes / (rate * 1024) seconds.
                let seconds = bytes as f64 / (rate as f64 * 1024.0);
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            }
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => {
                let mut sliced = Vec::new();
                for (piece, pause) in pieces {
                    let mut rest = &piece[..];
                    let mut first = true;
                    while !rest.is_empty() {
                        let variation = size_variation as i64;
                        let size = (average_size as i64
                            + if variation > 0 {
                                rand::rng().random_range(-variation..=variation)
                            } else {
                                0
                            })
                        .max(1) as usize;
                        let (slice, tail) = rest.split_at(size.min(rest.len()));
                        let gap = if first {
                            pause
                        } else {
                            Duration::from_micros(delay)
                        };
                        sliced.push((slice.to_vec(), gap));
                        rest = tail;
                        first = false;
                    }
                }
                pieces = sliced;
            }
            ToxicKind::LimitData { bytes } => {
                let mut limited = lock(&link.limited);
                let passed = limited.entry(placed.id).or_insert(0);
                let mut kept = Vec::new();
                for (mut piece, pause) in pieces {
                    let room = bytes.saturating_sub(*passed) as usize;
                    if piece.len() >= room {
                        piece.truncate(room);
                        close_after = true;
                    }
                    *passed += piece.len() as u64;
                    if !piece.is_empty() {
                        kept.push((piece, pause));
                    }
                    if close_after {
                        break;
                    }
                }
                pieces = kept;
            }
            // Handled above (timeout), on close (slow_close) and by the link (reset_peer).
            ToxicKind::Timeout { .. }
            | ToxicKind::SlowClose { .. }
            | ToxicKind::ResetPeer { .. } => {}
        }
    }
    for (piece, pause) in pieces {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        if sink.write_all(&piece).await.is_err() {
            return Err(End::Close);
        }
        wrote(link, stream, piece.len());
    }
    if close_after {
        let _ = sink.flush().await;
        return Err(End::Close);
    }
    Ok(())
}
