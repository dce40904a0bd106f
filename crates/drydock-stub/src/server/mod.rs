//! The HTTP side: accepting connections, routing to a namespace, serving stubs and misses.

pub(crate) mod admin;
mod fault;
pub(crate) mod runtime;

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::{
    body::{Frame, Incoming},
    http::HeaderValue,
    server::conn::http1,
    service::service_fn,
    Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tracing::Instrument;

use crate::{
    guard::{AdminCredentials, Upstreams, UNAUTHORIZED},
    model::{ChunkedDribble, Fault},
    namespace::{lock, Namespaces, Options, Outcome},
    record::{self, OnMiss},
    request::ReceivedRequest,
    respond::{draw, Rendered},
    tls::CertificateAuthority,
};
use fault::{FaultIo, FaultSlot};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What every connection of a server shares.
#[derive(Debug)]
pub(crate) struct Core {
    pub namespaces: Namespaces,
    /// Forwards proxied, passed-through and recorded requests; made on first use (building a
    /// client costs more than starting a server).
    client: std::sync::OnceLock<reqwest::Client>,
    /// The CA of the server's HTTPS certificate, if it serves HTTPS.
    pub ca: Option<CertificateAuthority>,
    /// What `/__admin/*` asks for; `None` leaves it open (WireMock's default).
    pub admin: Option<AdminCredentials>,
    /// Where proxy stubs, pass-through and recording may forward.
    pub upstreams: Upstreams,
}

impl Core {
    pub fn new(options: Options) -> Self {
        Core {
            namespaces: Namespaces::new(options),
            client: std::sync::OnceLock::new(),
            ca: None,
            admin: None,
            upstreams: Upstreams::default(),
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(record::client)
    }
}

/// Accepts connections until `stop` says so; then every connection of the server ends too.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    core: Arc<Core>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
) {
    let stopping = stopped(stop.clone());
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let (core, tls, stop) = (core.clone(), tls.clone(), stop.clone());
                    tokio::spawn(until_stopped(connection(stream, peer, core, tls), stop));
                }
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            () = &mut stopping => break,
        }
    }
}

async fn until_stopped(work: impl std::future::Future<Output = ()>, stop: watch::Receiver<bool>) {
    tokio::select! {
        () = work => {}
        () = stopped(stop) => {}
    }
}

/// Resolves when the server is told to stop (or its handle is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    core: Arc<Core>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let slot = Arc::new(FaultSlot::default());
    let io = FaultIo::new(stream, slot.clone());
    let https = tls.is_some();
    let service = service_fn(move |request| {
        let (core, slot) = (core.clone(), slot.clone());
        async move { Ok::<_, Infallible>(handle(request, &core, &slot, peer, https).await) }
    });
    let served = match tls {
        None => {
            http1::Builder::new()
                .serve_connection(TokioIo::new(io), service)
                .await
        }
        Some(acceptor) => match acceptor.accept(io).await {
            Ok(stream) => {
                http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
            }
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
        },
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// Splits `/__ns/<name>/rest?q` into the namespace and `/rest?q`.
fn split_namespace(path_and_query: &str) -> (&str, String) {
    let Some(rest) = path_and_query.strip_prefix("/__ns/") else {
        return ("", path_and_query.to_string());
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (name, url) = rest.split_at(end);
    let url = if url.starts_with('/') {
        url.to_string()
    } else {
        format!("/{url}")
    };
    (name, url)
}

fn is_admin(url: &str) -> bool {
    url == "/__admin" || url.starts_with("/__admin/") || url.starts_with("/__admin?")
}

/// `401` in the admin API's error shape, saying what is needed, with the challenge that makes
/// HTTP clients (and WireMock clients) send basic credentials.
fn unauthorized() -> Response<Body> {
    let mut response =
        admin::Reply::error(StatusCode::UNAUTHORIZED, "Unauthorized", UNAUTHORIZED).into_response();
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"drydock-stub admin API\""),
    );
    response
}

async fn handle(
    request: Request<Incoming>,
    core: &Core,
    slot: &FaultSlot,
    peer: SocketAddr,
    https: bool,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("drydock-stub: could not read the request body: {e}\n"),
            )
        }
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let (namespace, url) = split_namespace(path_and_query);
    if is_admin(&url) {
        if let Some(credentials) = &core.admin {
            let given = parts
                .headers
                .get(hyper::header::AUTHORIZATION)
                .map(HeaderValue::as_bytes);
            // Health too, as WireMock: a caller without them learns nothing from the admin API.
            if !credentials.admits(given) {
                return unauthorized();
            }
        }
        let reply = admin::dispatch(core, namespace, parts.method.as_str(), &url, &body);
        return reply.into_response();
    }
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut request = ReceivedRequest::new(parts.method.as_str(), &url, headers, body);
    request.client_ip = peer.ip().to_string();
    request.https = https;
    let request = Arc::new(request);
    let span = tracing::debug_span!("stub request", namespace, method = %request.method, url = %request.url);
    serve(core, namespace, request, slot).instrument(span).await
}

async fn serve(
    core: &Core,
    namespace: &str,
    request: Arc<ReceivedRequest>,
    slot: &FaultSlot,
) -> Response<Body> {
    let Some(space) = core.namespaces.get(namespace) else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "drydock-stub: namespace {namespace:?} does not exist; create it with \
                 POST /__admin/namespaces or any admin request under /__ns/{namespace}/__admin\n"
            ),
        );
    };
    let (outcome, settings) = {
        let mut space = lock(&space);
        (space.serve(request.clone()), space.settings.clone())
    };
    let global_delay = Duration::from_millis(settings.fixed_delay.unwrap_or(0))
        + draw(settings.delay_distribution.as_ref());
    match outcome {
        Outcome::Matched(mounted) => {
            tracing::debug!(stub = %mounted.id, "matched");
            let responder = &mounted.responder;
            sleep(global_delay + responder.delay()).await;
            if let Some(fault) = responder.fault {
                slot.set(fault);
                if !matches!(fault, Fault::CloseAfterBytes(_)) {
                    return text(StatusCode::OK, String::new());
                }
            }
            let rendered = match &responder.proxy_base_url {
                Some(base) => forward(core, base, &request).await,
                None => responder.render(&request),
            };
            let mut response = build(rendered, responder.dribble.as_ref());
            // As WireMock: which stub answered, for whoever reads the response.
            let headers = response.headers_mut();
            if let Ok(id) = HeaderValue::from_str(&mounted.id) {
                headers.insert("matched-stub-id", id);
            }
            if let Some(name) = &mounted.stub.name {
                if let Ok(name) = HeaderValue::from_str(name) {
                    headers.insert("matched-stub-name", name);
                }
            }
            response
        }
        Outcome::Missed(unmatched, on_miss) => match on_miss {
            OnMiss::Fail => {
                sleep(global_delay).await;
                let report = unmatched.unwrap_or_default();
                text(StatusCode::NOT_FOUND, report)
            }
            OnMiss::PassThrough { target_base_url } => {
                build(forward(core, &target_base_url, &request).await, None)
            }
            OnMiss::Record(recording) => {
                if let Err(refused) = core.upstreams.check(&recording.target_base_url) {
                    return build(forbidden(refused), None);
                }
                match record::forward(core.client(), &recording.target_base_url, &request).await {
                    Ok(rendered) => {
                        lock(&space).record(recording.to_stub(&request, &rendered));
                        build(rendered, None)
                    }
                    Err(message) => build(bad_gateway(message), None),
                }
            }
        },
    }
}

/// Forwards to an upstream the allow-list admits; the answer, a `403` naming the upstream and
/// the setting, or a `502` saying why the upstream could not be had.
///
/// The admin API refuses such stubs and modes already; this is the last word, for whatever got
/// in another way (a pooled server, a typed call).
async fn forward(core: &Core, base: &str, request: &ReceivedRequest) -> Rendered {
    if let Err(refused) = core.upstreams.check(base) {
        return forbidden(refused);
    }
    record::forward(core.client(), base, request)
        .await
        .unwrap_or_else(bad_gateway)
}

fn forbidden(message: String) -> Rendered {
    Rendered {
        status: StatusCode::FORBIDDEN,
        ..bad_gateway(message)
    }
}

async fn sleep(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

fn bad_gateway(message: String) -> Rendered {
    Rendered {
        status: StatusCode::BAD_GATEWAY,
        reason: None,
        headers: vec![(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body: Bytes::from(format!("drydock-stub: {message}\n")),
    }
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn build(rendered: Rendered, dribble: Option<&ChunkedDribble>) -> Response<Body> {
    let body = match dribble {
        None => Full::new(rendered.body).boxed_unsync(),
        Some(dribble) => dribbled(rendered.body, dribble),
    };
    let mut response = Response::new(body);
    *response.status_mut() = rendered.status;
    if let Some(reason) = rendered
        .reason
        .and_then(|r| hyper::ext::ReasonPhrase::try_from(r).ok())
    {
        response.extensions_mut().insert(reason);
    }
    let headers = response.headers_mut();
    for (name, value) in rendered.headers {
        headers.append(name, value);
    }
    if dribble.is_some() {
        // The length is not announced, so the body goes out chunked, a piece at a time.
        headers.remove(hyper::header::CONTENT_LENGTH);
    }
    response
}

/// The body cut into `numberOfChunks` pieces, spread evenly over `totalDuration`.
fn dribbled(body: Bytes, dribble: &ChunkedDribble) -> Body {
    let chunks = dribble.number_of_chunks.max(1) as usize;
    let size = body.len().div_ceil(chunks).max(1);
    let pieces: Vec<Bytes> = (0..body.len())
        .step_by(size)
        .map(|at| body.slice(at..(at + size).min(body.len())))
        .collect();
    let interval = Duration::from_millis(dribble.total_duration) / chunks as u32;
    let stream =
        futures::stream::iter(pieces.into_iter().enumerate()).then(move |(i, piece)| async move {
            if i > 0 {
                tokio::time::sleep(interval).await;
            }
            Ok::<_, Infallible>(Frame::data(piece))
        });
    StreamBody::new(stream).boxed_unsync()
}
