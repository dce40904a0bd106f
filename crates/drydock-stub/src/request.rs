//! A received request, as the matchers, templates and the journal see it.

use std::{
    borrow::Cow,
    collections::BTreeMap,
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
    /// The client's address (empty when unknown).
    pub client_ip: String,
    /// Whether it came over TLS.
    pub https: bool,
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
            client_ip: String::new(),
            https: false,
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

    /// The journal's view, in WireMock's shape.
    pub fn logged(&self) -> LoggedRequest {
        let body_as_base64 = base64::engine::general_purpose::STANDARD.encode(&self.body);
        let host_header = self.header_values("host").next().unwrap_or_default();
        let (host, port) = match host_header.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => {
                (host.to_string(), port.parse().unwrap_or(80))
            }
            _ => (host_header.to_string(), if self.https { 443 } else { 80 }),
        };
        let scheme = if self.https { "https" } else { "http" };
        let mut query_params: BTreeMap<String, QueryParameter> = BTreeMap::new();
        for (name, value) in &self.query {
            query_params
                .entry(name.clone())
                .or_insert_with(|| QueryParameter {
                    key: name.clone(),
                    values: Vec::new(),
                })
                .values
                .push(value.clone());
        }
        LoggedRequest {
            id: self.id.to_string(),
            url: self.url.clone(),
            absolute_url: format!("{scheme}://{host_header}{}", self.url),
            method: self.method.clone(),
            client_ip: self.client_ip.clone(),
            headers: self.headers.clone(),
            cookies: self
                .cookies()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: String::from_utf8_lossy(&self.body).into_owned(),
            body_as_base64,
            logged_date: self.logged_at_ms,
            logged_date_string: iso8601(self.logged_at_ms),
            query_params,
            browser_proxy_request: false,
            protocol: "HTTP/1.1".into(),
            scheme: scheme.into(),
            host,
            port,
            was_matched: false,
            stub_id: None,
        }
    }

    /// A request rebuilt from a logged one (to ask which stubs come near it).
    pub fn from_logged(logged: &LoggedRequest) -> Self {
        let body = if logged.body_as_base64.is_empty() {
            Bytes::from(logged.body.clone())
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(&logged.body_as_base64)
                .map(Bytes::from)
                .unwrap_or_else(|_| Bytes::from(logged.body.clone()))
        };
        let headers = logged
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        ReceivedRequest::new(&logged.method, &logged.url, headers, body)
    }
}

/// Milliseconds since the epoch as `2026-11-30T11:47:15.756Z`.
fn iso8601(ms: u64) -> String {
    let (days, rest) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// One query parameter of a logged request, as WireMock writes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryParameter {
    /// Its name.
    pub key: String,
    /// Its values, in order.
    pub values: Vec<String>,
}

/// A request in the journal, in WireMock's `LoggedRequest` shape (what `/__admin/requests`
/// serves under `request`, and `/__admin/requests/find` lists).
///
/// Header names are in lower case (HTTP/1.1 names are case-insensitive; the server does not keep
/// the case a client sent). [`was_matched`](Self::was_matched) and [`stub_id`](Self::stub_id)
/// come from the serve event the request belongs to.
///
/// ```
/// # async fn demo() -> Result<(), drydock_stub::StubError> {
/// let server = drydock_stub::StubServer::start().await?;
/// for request in server.requests().await? {
///     println!("{} {} matched={}", request.method, request.url, request.was_matched);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct LoggedRequest {
    /// The request's id (the serve event's, as a number in this process).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Path and query string, inside its namespace.
    pub url: String,
    /// Scheme, host and port as the client addressed them, and `url`.
    pub absolute_url: String,
    /// Its method.
    pub method: String,
    /// The client's address.
    pub client_ip: String,
    /// Headers as received (names in lower case): in JSON an object whose values are a string,
    /// or an array for a repeated header.
    #[serde(with = "header_map")]
    pub headers: Vec<(String, String)>,
    /// Cookies by name.
    pub cookies: BTreeMap<String, String>,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
    /// The body's bytes in base64.
    pub body_as_base64: String,
    /// When it arrived (ms since the Unix epoch).
    pub logged_date: u64,
    /// When it arrived, ISO 8601.
    pub logged_date_string: String,
    /// Query parameters by name.
    pub query_params: BTreeMap<String, QueryParameter>,
    /// Always false: the stub is no browser proxy.
    pub browser_proxy_request: bool,
    /// `HTTP/1.1`.
    pub protocol: String,
    /// `http` or `https`.
    pub scheme: String,
    /// The host the client addressed.
    pub host: String,
    /// The port the client addressed.
    pub port: u16,
    /// Whether a stub answered it (from its serve event; not part of WireMock's request JSON).
    #[serde(skip)]
    pub was_matched: bool,
    /// The stub that answered it (from its serve event).
    #[serde(skip)]
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

    /// The body's bytes.
    pub fn body_bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.body_as_base64)
            .unwrap_or_else(|_| self.body.clone().into_bytes())
    }
}

/// Headers as WireMock writes them: `{"name": "value", "repeated": ["a", "b"]}`.
mod header_map {
    use serde::{ser::SerializeMap, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        headers: &[(String, String)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in headers {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        let mut map = serializer.serialize_map(Some(names.len()))?;
        for name in names {
            let values: Vec<&str> = headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            if let [one] = values.as_slice() {
                map.serialize_entry(name, one)?;
            } else {
                map.serialize_entry(name, &values)?;
            }
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(String, String)>, D::Error> {
        let map = indexmap_free::OrderedMap::deserialize(deserializer)?;
        Ok(map
            .0
            .into_iter()
            .flat_map(|(name, values)| {
                values
                    .into_vec()
                    .into_iter()
                    .map(move |v| (name.clone(), v))
            })
            .collect())
    }

    /// A JSON object read in order, without a map crate.
    mod indexmap_free {
        use std::fmt;

        use serde::{
            de::{MapAccess, Visitor},
            Deserialize, Deserializer,
        };

        use crate::model::HeaderValues;

        pub struct OrderedMap(pub Vec<(String, HeaderValues)>);

        impl<'de> Deserialize<'de> for OrderedMap {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Ordered;
                impl<'de> Visitor<'de> for Ordered {
                    type Value = OrderedMap;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("an object of header values")
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<OrderedMap, A::Error> {
                        let mut entries = Vec::new();
                        while let Some(entry) = map.next_entry::<String, HeaderValues>()? {
                            entries.push(entry);
                        }
                        Ok(OrderedMap(entries))
                    }
                }
                deserializer.deserialize_map(Ordered)
            }
        }
    }
}
