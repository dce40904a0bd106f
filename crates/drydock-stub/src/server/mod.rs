//! The HTTP side: accepting connections, routing to a namespace, serving stubs and misses.

pub(crate) mod admin;
mod fault;

use std::{convert::Infallible, sync::Arc, time::Duration};

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
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::{
    model::{ChunkedDribble, Fault},
    namespace::{lock, Namespaces, Outcome},
    record::{self, OnMiss},
    request::ReceivedRequest,
    respond::{draw, Rendered},
};
use fault::{FaultIo, FaultSlot};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What every connection of a server shares.
#[derive(Debug)]
pub(crate) struct Core {
    pub namespaces: Namespaces,
    /// Forwards proxied, passed-through and recorded requests.
    pub client: reqwest::Client,
}

impl Core {
    pub fn new() -> Self {
        Core {
            namespaces: Namespaces::new(),
            client: record::client(),
        }
    }
}

/// Accepts connections until `shutdown` resolves.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    core: Arc<Core>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, core.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
}

async fn connection(stream: TcpStream, core: Arc<Core>) {
    let slot = Arc::new(FaultSlot::default());
    let io = TokioIo::new(FaultIo::new(stream, slot.clone()));
    let service = service_fn(move |request| {
        let (core, slot) = (core.clone(), slot.clone());
        async move { Ok::<_, Infallible>(handle(request, &core, &slot).await) }
    });
    if let Err(e) = http1::Builder::new().serve_connection(io, service).await {
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

async fn handle(request: Request<Incoming>, core: &Core, slot: &FaultSlot) -> Response<Body> {
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
    let request = Arc::new(ReceivedRequest::new(
        parts.method.as_str(),
        &url,
        headers,
        body,
    ));
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
                Some(base) => record::forward(&core.client, base, &request)
                    .await
                    .unwrap_or_else(bad_gateway),
                None => responder.render(&request),
            };
            build(rendered, responder.dribble.as_ref())
        }
        Outcome::Missed(unmatched, on_miss) => match on_miss {
            OnMiss::Fail => {
                sleep(global_delay).await;
                let report = unmatched.map(|u| u.to_string()).unwrap_or_default();
                text(StatusCode::NOT_FOUND, report)
            }
            OnMiss::PassThrough { target_base_url } => build(
                record::forward(&core.client, &target_base_url, &request)
                    .await
                    .unwrap_or_else(bad_gateway),
                None,
            ),
            OnMiss::Record(recording) => {
                match record::forward(&core.client, &recording.target_base_url, &request).await {
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

async fn sleep(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

fn bad_gateway(message: String) -> Rendered {
    Rendered {
        status: StatusCode::BAD_GATEWAY,
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
