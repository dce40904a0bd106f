//! Proxying, recording and what replay does with a request no recording covers.
//!
//! Recording is "on a miss, forward and remember": a stub server that records still answers from
//! its stubs first, so one mechanism serves plain recording, replay that fails on a miss, replay
//! that passes misses through, and replay that records what it lacks.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use hyper::{header::HeaderName, http::HeaderValue};
use serde::{Deserialize, Serialize};

use crate::{
    model::{BodyPattern, HeaderValues, Response, StringMatcher, Stub},
    request::ReceivedRequest,
    respond::Rendered,
};

/// Headers never written to a recording, whatever the test adds: credentials and session state.
pub const ALWAYS_SCRUBBED: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// Headers that belong to one connection, not to the exchange.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// What the server does with a request that no stub matches.
///
/// ```
/// use drydock_stub::{OnMiss, Recording};
///
/// let strict = OnMiss::Fail;
/// let lenient = OnMiss::PassThrough { target_base_url: "http://127.0.0.1:9000".into() };
/// let fill_gaps = OnMiss::Record(Recording::new("http://127.0.0.1:9000"));
/// # let _ = (strict, lenient, fill_gaps);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "camelCase", deny_unknown_fields)]
pub enum OnMiss {
    /// Answer `404` with the nearest stub and what did not match (the default).
    #[default]
    Fail,
    /// Forward to the upstream, answer with its response, remember nothing.
    #[serde(rename_all = "camelCase")]
    PassThrough {
        /// Where requests go.
        target_base_url: String,
    },
    /// Forward to the upstream and record the exchange as a stub.
    Record(Recording),
}

/// How to record: the upstream, which request headers become part of the recorded stubs, and
/// which headers are secrets in addition to [`ALWAYS_SCRUBBED`].
///
/// ```
/// use drydock_stub::Recording;
///
/// let recording = Recording::new("https://sandbox.payments.example")
///     .capture_header("accept")
///     .scrub_header("x-signature")
///     .save_to("tests/recordings/payments");
/// # let _ = recording;
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recording {
    /// The upstream's base URL.
    pub target_base_url: String,
    /// Request headers the recorded stubs match on (secrets never are). A list of names, or
    /// WireMock's object whose keys are the names.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "header_names"
    )]
    pub capture_headers: Vec<String>,
    /// More headers to keep out of recordings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scrub_headers: Vec<String>,
    /// Where `stop_recording` writes the stubs (on the test's side, also for a remote server).
    #[serde(skip)]
    pub save_to: Option<PathBuf>,
}

impl Recording {
    /// Records what `target_base_url` answers.
    pub fn new(target_base_url: impl Into<String>) -> Self {
        Recording {
            target_base_url: target_base_url.into(),
            capture_headers: Vec::new(),
            scrub_headers: Vec::new(),
            save_to: None,
        }
    }

    /// Makes a request header part of the recorded stubs' patterns.
    pub fn capture_header(mut self, name: impl Into<String>) -> Self {
        self.capture_headers.push(name.into().to_ascii_lowercase());
        self
    }

    /// Keeps a header out of recordings (requests and responses).
    pub fn scrub_header(mut self, name: impl Into<String>) -> Self {
        self.scrub_headers.push(name.into().to_ascii_lowercase());
        self
    }

    /// Writes the stubs to `dir` as WireMock mapping files when recording stops.
    pub fn save_to(mut self, dir: impl Into<PathBuf>) -> Self {
        self.save_to = Some(dir.into());
        self
    }

    fn is_secret(&self, name: &str) -> bool {
        ALWAYS_SCRUBBED.iter().any(|s| s.eq_ignore_ascii_case(name))
            || self
                .scrub_headers
                .iter()
                .any(|s| s.eq_ignore_ascii_case(name))
    }

    /// The stub that replays this exchange, with every secret left out.
    pub(crate) fn to_stub(&self, request: &ReceivedRequest, response: &Rendered) -> Stub {
        let mut stub = Stub::any().method(&request.method).url(request.url.clone());
        stub.name = Some(format!("recorded {} {}", request.method, request.path));
        for name in &self.capture_headers {
            if self.is_secret(name) {
                continue;
            }
            if let Some(value) = request.header_values(name).next() {
                stub = stub.header(name.clone(), StringMatcher::equal_to(value));
            }
        }
        if !request.body.is_empty() {
            stub = stub.body(match (request.json(), std::str::from_utf8(&request.body)) {
                (Some(json), _) => BodyPattern::json(json.clone()),
                (None, Ok(text)) => BodyPattern::equal_to(text),
                (None, Err(_)) => BodyPattern::binary(&request.body),
            });
        }
        let mut recorded = Response::status(response.status.as_u16());
        let mut headers: BTreeMap<String, HeaderValues> = BTreeMap::new();
        for (name, value) in &response.headers {
            let name = name.as_str();
            if self.is_secret(name) || HOP_BY_HOP.contains(&name) {
                continue;
            }
            let Ok(value) = value.to_str() else { continue };
            headers
                .entry(name.to_string())
                .and_modify(|v| {
                    let mut all = v.clone().into_vec();
                    all.push(value.to_string());
                    *v = HeaderValues::Many(all);
                })
                .or_insert_with(|| HeaderValues::One(value.to_string()));
        }
        let is_json = headers
            .get("content-type")
            .is_some_and(|v| v.as_slice().iter().any(|t| t.contains("json")));
        recorded = match (is_json, std::str::from_utf8(&response.body)) {
            _ if response.body.is_empty() => recorded,
            (true, Ok(text)) => match serde_json::from_str(text) {
                Ok(json) => recorded.json(json),
                Err(_) => recorded.body(text),
            },
            (false, Ok(text)) => recorded.body(text),
            (_, Err(_)) => recorded.bytes(&response.body),
        };
        recorded.headers = headers;
        stub.response = recorded;
        stub.id = Some(uuid::Uuid::new_v4().to_string());
        stub
    }
}

/// How long a forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// The client that forwards: no redirects followed, no decompression, so the exchange is
/// recorded as the upstream sent it.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FORWARD_TIMEOUT)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Forwards `request` to `base` and returns the upstream's answer, or why it could not be had.
pub(crate) async fn forward(
    client: &reqwest::Client,
    base: &str,
    request: &ReceivedRequest,
) -> Result<Rendered, String> {
    let url = format!("{}{}", base.trim_end_matches('/'), request.url);
    let failed = |message: String| format!("forwarding to {url} failed: {message}");
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| failed(format!("{:?} is not a method", request.method)))?;
    let mut outgoing = client.request(method, &url).body(request.body.clone());
    for (name, value) in &request.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.send().await.map_err(|e| failed(error_chain(&e)))?;
    let status = answer.status();
    let headers: Vec<(HeaderName, HeaderValue)> = answer
        .headers()
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let body = answer
        .bytes()
        .await
        .map_err(|e| failed(format!("reading the body: {}", error_chain(&e))))?;
    Ok(Rendered {
        reason: None,
        status,
        headers,
        body,
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A file name for a recorded stub: `get-orders-42-1a2b3c4d.json`.
pub(crate) fn file_name(stub: &Stub) -> String {
    let method = stub
        .request
        .method
        .as_deref()
        .unwrap_or("any")
        .to_lowercase();
    let url = stub.request.url.as_deref().unwrap_or("");
    let path = url.split('?').next().unwrap_or("");
    let slug: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let id = stub
        .id
        .as_deref()
        .unwrap_or("0")
        .chars()
        .take(8)
        .collect::<String>();
    if slug.is_empty() {
        format!("{method}-{id}.json")
    } else {
        format!("{method}-{slug}-{id}.json")
    }
}

/// A list of header names, or WireMock's `{"Accept": {}, …}` whose keys are the names.
fn header_names<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<String>),
        Object(BTreeMap<String, serde_json::Value>),
    }
    let names = match Names::deserialize(deserializer)? {
        Names::List(names) => names,
        Names::Object(map) => map.into_keys().collect(),
    };
    Ok(names.into_iter().map(|n| n.to_ascii_lowercase()).collect())
}
