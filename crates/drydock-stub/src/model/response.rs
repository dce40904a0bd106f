//! The response side of a stub: WireMock's response definition, faults and delays.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a stub answers.
///
/// The body is one of `body` (text), `jsonBody`, `base64Body` (bytes) or `bodyFileName` (a file
/// under the mapping directory's `__files`, inlined when the directory is loaded; through the API,
/// read from the server's files directory, `StubServerBuilder::files` or `--mappings`). With
/// `transformers: ["response-template"]` the body and header values are Handlebars templates over
/// the request: `{{request.method}}`, `{{request.url}}`, `{{request.path}}`,
/// `{{request.pathSegments.[1]}}`, `{{request.query.page}}`, `{{request.headers.x-trace-id}}`,
/// `{{request.cookies.session}}`, `{{request.body}}` and `{{jsonPath request.body '$.id'}}`.
///
/// ```
/// use std::time::Duration;
/// use drydock_stub::{Fault, Response};
/// use serde_json::json;
///
/// let created = Response::status(201).header("location", "/orders/1").json(json!({"id": 1}));
/// let echo = Response::ok().body("order {{jsonPath request.body '$.id'}}").templated();
/// let slow = Response::ok().delay(Duration::from_millis(200));
/// let broken = Response::fault(Fault::ConnectionResetByPeer);
/// # let _ = (created, echo, slow, broken);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Response {
    /// The status code (200 when absent).
    #[serde(default = "ok_status")]
    pub status: u16,
    /// The reason phrase of the status line (`HTTP/1.1 201 Made It`), instead of the standard one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Headers; a name may have several values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderValues>,
    /// A text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// A JSON body. As in WireMock, no content type is added: set one in `headers` (the
    /// [`json`](Self::json) builder does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_body: Option<Value>,
    /// A binary body, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64_body: Option<String>,
    /// A file under `__files`: inlined when a mapping directory is loaded; through the API, read
    /// from the server's files directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_file_name: Option<String>,
    /// A fixed delay before the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_delay_milliseconds: Option<u64>,
    /// A random delay before the response, added to the fixed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_distribution: Option<DelayDistribution>,
    /// Send the body in chunks spread over a duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunked_dribble_delay: Option<ChunkedDribble>,
    /// Misbehave at the connection level instead of answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// `["response-template"]` renders body and header values as templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transformers: Vec<String>,
    /// Forward the request to this base URL and answer with what it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_base_url: Option<String>,
}

fn ok_status() -> u16 {
    200
}

impl Default for Response {
    fn default() -> Self {
        Response::status(200)
    }
}

impl Response {
    /// An empty response with this status.
    pub fn status(status: u16) -> Self {
        Response {
            status,
            status_message: None,
            headers: BTreeMap::new(),
            body: None,
            json_body: None,
            base64_body: None,
            body_file_name: None,
            fixed_delay_milliseconds: None,
            delay_distribution: None,
            chunked_dribble_delay: None,
            fault: None,
            transformers: Vec::new(),
            proxy_base_url: None,
        }
    }

    /// `200 OK`.
    pub fn ok() -> Self {
        Response::status(200)
    }

    /// A connection-level fault instead of a response.
    pub fn fault(fault: Fault) -> Self {
        let mut response = Response::ok();
        response.fault = Some(fault);
        response
    }

    /// Answers with whatever `base_url` answers to the same request.
    pub fn proxy_to(base_url: impl Into<String>) -> Self {
        let mut response = Response::ok();
        response.proxy_base_url = Some(base_url.into());
        response
    }

    /// Sends this reason phrase instead of the standard one (WireMock `statusMessage`).
    pub fn status_message(mut self, message: impl Into<String>) -> Self {
        self.status_message = Some(message.into());
        self
    }

    /// Adds a header value.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        let values = match self.headers.remove(&name) {
            None => HeaderValues::One(value),
            Some(existing) => {
                let mut values = existing.into_vec();
                values.push(value);
                HeaderValues::Many(values)
            }
        };
        self.headers.insert(name, values);
        self
    }

    fn clear_body(&mut self) {
        (
            self.body,
            self.json_body,
            self.base64_body,
            self.body_file_name,
        ) = (None, None, None, None);
    }

    /// A text body.
    pub fn body(mut self, text: impl Into<String>) -> Self {
        self.clear_body();
        self.body = Some(text.into());
        self
    }

    /// A JSON body, with `content-type: application/json` unless a content type is set already.
    pub fn json(mut self, json: Value) -> Self {
        self.clear_body();
        self.json_body = Some(json);
        if !self
            .headers
            .keys()
            .any(|name| name.eq_ignore_ascii_case("content-type"))
        {
            self = self.header("content-type", "application/json");
        }
        self
    }

    /// A binary body.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        use base64::Engine;
        self.clear_body();
        self.base64_body = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        self
    }

    /// Renders body and header values as templates over the request.
    pub fn templated(mut self) -> Self {
        if !self.transformers.iter().any(|t| t == TEMPLATE_TRANSFORMER) {
            self.transformers.push(TEMPLATE_TRANSFORMER.into());
        }
        self
    }

    /// Waits this long before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.fixed_delay_milliseconds = Some(delay.as_millis() as u64);
        self
    }

    /// Waits a uniformly random time between `lower` and `upper`.
    pub fn uniform_delay(mut self, lower: Duration, upper: Duration) -> Self {
        self.delay_distribution = Some(DelayDistribution::Uniform {
            lower: lower.as_millis() as u64,
            upper: upper.as_millis() as u64,
        });
        self
    }

    /// Waits a log-normally distributed time (median in ms, sigma), as service latencies are.
    pub fn lognormal_delay(mut self, median: Duration, sigma: f64) -> Self {
        self.delay_distribution = Some(DelayDistribution::Lognormal {
            median: median.as_millis() as f64,
            sigma,
        });
        self
    }

    /// Sends the body in `chunks` pieces spread evenly over `total`.
    pub fn dribble(mut self, chunks: u32, total: Duration) -> Self {
        self.chunked_dribble_delay = Some(ChunkedDribble {
            number_of_chunks: chunks,
            total_duration: total.as_millis() as u64,
        });
        self
    }
}

/// The transformer that turns on templating.
pub const TEMPLATE_TRANSFORMER: &str = "response-template";

/// One header value or several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValues {
    /// One value.
    One(String),
    /// Several values, sent as repeated headers.
    Many(Vec<String>),
}

impl HeaderValues {
    /// The values as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            HeaderValues::One(value) => vec![value],
            HeaderValues::Many(values) => values,
        }
    }

    /// The values as a slice.
    pub fn as_slice(&self) -> &[String] {
        match self {
            HeaderValues::One(value) => std::slice::from_ref(value),
            HeaderValues::Many(values) => values,
        }
    }
}

/// A random delay, in milliseconds, as WireMock's `delayDistribution`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum DelayDistribution {
    /// Uniform between `lower` and `upper`.
    Uniform {
        /// Shortest delay (ms).
        lower: u64,
        /// Longest delay (ms).
        upper: u64,
    },
    /// Log-normal with this median (ms) and sigma.
    Lognormal {
        /// Median delay (ms).
        median: f64,
        /// Spread; 0.1 is tight, 1 has a long tail.
        sigma: f64,
    },
}

/// WireMock's `chunkedDribbleDelay`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChunkedDribble {
    /// How many chunks the body is cut into.
    pub number_of_chunks: u32,
    /// Over how long they are sent (ms).
    pub total_duration: u64,
}

/// A connection-level fault. The first four are WireMock's; in JSON they are strings
/// (`"fault": "CONNECTION_RESET_BY_PEER"`). `CloseAfterBytes` is an *extension*, written
/// `"fault": {"closeAfterBytes": 12}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// The connection is reset (TCP RST) without a response.
    #[serde(rename = "CONNECTION_RESET_BY_PEER")]
    ConnectionResetByPeer,
    /// The connection is closed without a response.
    #[serde(rename = "EMPTY_RESPONSE")]
    EmptyResponse,
    /// A `200` with chunked encoding whose chunk is garbage, then close.
    #[serde(rename = "MALFORMED_RESPONSE_CHUNK")]
    MalformedResponseChunk,
    /// Bytes that are not HTTP, then close.
    #[serde(rename = "RANDOM_DATA_THEN_CLOSE")]
    RandomDataThenClose,
    /// The real response, cut off after this many bytes (status line and headers count).
    #[serde(rename = "closeAfterBytes")]
    CloseAfterBytes(usize),
}
