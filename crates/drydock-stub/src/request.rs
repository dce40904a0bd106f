//! A received request, as the matchers, templates and the journal see it.

use std::{
    borrow::Cow,
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A request as received, inside its namespace (the `/__ns/<name>` prefix is not part of `url`).
#[derive(Debug)]
pub(crate) struct ReceivedRequest {
    /// Unique in this process; a counter, because a random id per request costs a syscall.
    pub id: u64,
    pub method: String,
    /// Path and query string.
    pub url: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Lower-case names, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub logged_at_ms: u64,
    json: OnceLock<Option<Value>>,
}

impl ReceivedRequest {
    pub fn new(method: &str, url: &str, headers: Vec<(String, String)>, body: Bytes) -> Self {
        let (path, query) = match url.split_once('?') {
            Some((path, query)) => (path, query),
            None => (url, ""),
        };
        ReceivedRequest {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            method: method.to_string(),
            url: url.to_string(),
            path: path.to_string(),
            query: form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            headers,
            body,
            logged_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default(),
            json: OnceLock::new(),
        }
    }

    /// The values of a header; `name` is matched ignoring case.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn cookies(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header_values("cookie")
            .flat_map(|line| line.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
    }

    pub fn body_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body parsed as JSON, once, if it is JSON.
    pub fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| serde_json::from_slice(&self.body).ok())
            .as_ref()
    }

    /// The journal's view.
    pub fn logged(&self, stub_id: Option<&str>) -> LoggedRequest {
        let (body, body_base64) = match std::str::from_utf8(&self.body) {
            Ok(text) => (text.to_string(), None),
            Err(_) => (
                String::new(),
                Some(base64::engine::general_purpose::STANDARD.encode(&self.body)),
            ),
        };
        LoggedRequest {
            id: self.id.to_string(),
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body,
            body_as_base64: body_base64,
            logged_date: self.logged_at_ms,
            was_matched: stub_id.is_some(),
            stub_id: stub_id.map(String::from),
        }
    }
}

/// A request in the journal.
///
/// ```
/// # async fn demo() -> Result<(), drydock_stub::StubError> {
/// let server = drydock_stub::StubServer::start().await?;
/// for request in server.requests().await? {
///     println!("{} {} matched={}", request.method, request.url, request.was_matched);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LoggedRequest {
    /// The request's id.
    pub id: String,
    /// Its method.
    pub method: String,
    /// Path and query string, inside its namespace.
    pub url: String,
    /// Headers as received (names in lower case).
    pub headers: Vec<(String, String)>,
    /// The body, when it is text.
    pub body: String,
    /// The body in base64, when it is not text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_as_base64: Option<String>,
    /// When it arrived (ms since the Unix epoch).
    pub logged_date: u64,
    /// Whether a stub answered it.
    pub was_matched: bool,
    /// The stub that answered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stub_id: Option<String>,
}

impl LoggedRequest {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
