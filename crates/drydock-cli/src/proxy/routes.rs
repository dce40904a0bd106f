//! HTTP: Toxiproxy's paths and methods, JSON bodies in and out.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, header, Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::{
    error::ApiError,
    model::{parse, ProxyInput},
    registry::Registry,
};

/// A registry operation, run off the async workers.
type Operation = Box<dyn FnOnce(&Registry) -> Result<Reply, ApiError> + Send>;

/// Bodies are a proxy list at most: refuse what cannot be one.
const MAX_BODY: usize = 1 << 20;

/// The API's answer to `request`.
pub async fn handle(registry: Arc<Registry>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    // Toxiproxy's guard against cross-site requests: a web page could otherwise drive a local
    // proxy API from the browser.
    let from_browser = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|agent| agent.to_str().ok())
        .is_some_and(|agent| agent.starts_with("Mozilla/"));
    if from_browser {
        return response(
            StatusCode::FORBIDDEN,
            Bytes::from_static(b"User agent not allowed\n"),
            "text/plain; charset=utf-8",
        );
    }
    match route(registry, request).await {
        Ok(reply) => reply,
        Err(e) => json(e.status(), &e.body()),
    }
}

async fn route(
    registry: Arc<Registry>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let method = request.method().clone();
    let path: Vec<String> = request
        .uri()
        .path()
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(str::to_owned)
        .collect();
    let body = read_body(request).await?;
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    // Registry operations may block (binding, re-binding a socket): off the async workers.
    let run = |f: Operation| {
        let registry = Arc::clone(&registry);
        async move {
            tokio::task::spawn_blocking(move || f(&registry))
                .await
                .map_err(|e| ApiError::Internal(format!("the operation failed: {e}")))?
        }
    };
    let reply = match (&method, segments.as_slice()) {
        (&Method::GET, ["version"]) => Reply::json(
            StatusCode::OK,
            &serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }),
        ),
        (&Method::POST, ["reset"]) => {
            run(Box::new(|r| {
                r.reset();
                Ok(Reply::Empty)
            }))
            .await
        }
        (&Method::GET, ["proxies"]) => {
            run(Box::new(|r| Reply::json(StatusCode::OK, &r.list()))).await
        }
        (&Method::POST, ["proxies"]) => {
            let input: ProxyInput = parse(&body)?;
            run(Box::new(move |r| {
                Reply::json(StatusCode::CREATED, &r.create(input)?)
            }))
            .await
        }
        (&Method::POST, ["populate"]) => {
            let inputs: Vec<ProxyInput> = parse(&body)?;
            run(Box::new(move |r| {
                let (proxies, error) = r.populate(inputs);
                // Toxiproxy answers a failed populate with the error *and* the proxies made.
                let mut answer = serde_json::json!({ "proxies": proxies });
                let status = match error {
                    None => StatusCode::CREATED,
                    Some(e) => {
                        if let (Value::Object(answer), Value::Object(error)) =
                            (&mut answer, e.body())
                        {
                            answer.extend(error);
                        }
                        e.status()
                    }
                };
                Reply::json(status, &answer)
            }))
            .await
        }
        (_, ["proxies", name, rest @ ..]) => {
            let name = (*name).to_owned();
            let toxic = rest.get(1).map(|t| (*t).to_owned());
            match (&method, rest) {
                (&Method::GET, []) => {
                    run(Box::new(move |r| {
                        Reply::json(StatusCode::OK, &r.get(&name)?)
                    }))
                    .await
                }
                (&Method::POST | &Method::PATCH, []) => {
                    let input: ProxyInput = parse(&body)?;
                    run(Box::new(move |r| {
                        Reply::json(StatusCode::OK, &r.update(&name, input)?)
                    }))
                    .await
                }
                (&Method::DELETE, []) => {
                    run(Box::new(move |r| {
                        r.delete(&name)?;
                        Ok(Reply::Empty)
                    }))
                    .await
                }
                (&Method::GET, ["toxics"]) => {
                    run(Box::new(move |r| {
                        Reply::json(StatusCode::OK, &r.toxics(&name)?)
                    }))
                    .await
                }
                (&Method::POST, ["toxics"]) => {
                    let body: Value = parse(&body)?;
                    // Toxiproxy answers a new toxic with 200, not 201: its clients expect that.
                    run(Box::new(move |r| {
                        Reply::json(StatusCode::OK, &r.add_toxic(&name, &body)?)
                    }))
                    .await
                }
                (&Method::GET, ["toxics", _]) => {
                    let toxic = toxic.unwrap_or_default();
                    run(Box::new(move |r| {
                        Reply::json(StatusCode::OK, &r.toxic(&name, &toxic)?)
                    }))
                    .await
                }
                (&Method::POST | &Method::PATCH, ["toxics", _]) => {
                    let body: Value = parse(&body)?;
                    let toxic = toxic.unwrap_or_default();
                    run(Box::new(move |r| {
                        Reply::json(StatusCode::OK, &r.update_toxic(&name, &toxic, &body)?)
                    }))
                    .await
                }
                (&Method::DELETE, ["toxics", _]) => {
                    let toxic = toxic.unwrap_or_default();
                    run(Box::new(move |r| {
                        r.remove_toxic(&name, &toxic)?;
                        Ok(Reply::Empty)
                    }))
                    .await
                }
                (_, [] | ["toxics"] | ["toxics", _]) => Err(not_allowed()),
                _ => Err(not_found()),
            }
        }
        (_, ["version" | "reset" | "proxies" | "populate"]) => Err(not_allowed()),
        _ => Err(not_found()),
    }?;
    Ok(match reply {
        Reply::Empty => response(StatusCode::NO_CONTENT, Bytes::new(), "application/json"),
        Reply::Json(status, body) => response(status, body, "application/json"),
    })
}

fn not_found() -> ApiError {
    ApiError::Route(StatusCode::NOT_FOUND, "404 page not found")
}

fn not_allowed() -> ApiError {
    ApiError::Route(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// What an operation answers.
enum Reply {
    /// 204, no body.
    Empty,
    /// A status and a JSON body.
    Json(StatusCode, Bytes),
}

impl Reply {
    fn json(status: StatusCode, body: &impl Serialize) -> Result<Reply, ApiError> {
        let body = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Reply::Json(status, Bytes::from(body)))
    }
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, ApiError> {
    Ok(Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::BadBody(format!("cannot read the body: {e}")))?
        .to_bytes())
}

fn json(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    response(status, Bytes::from(bytes), "application/json")
}

fn response(status: StatusCode, body: Bytes, content_type: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
