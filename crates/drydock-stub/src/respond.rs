//! Responses compiled for serving: bodies decoded, templates parsed, delays drawn.

use std::{collections::BTreeMap, path::Path, time::Duration};

use base64::Engine;
use bytes::Bytes;
use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use hyper::{header::HeaderName, http::HeaderValue, StatusCode};
use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use serde_json::{json, Map, Value};

use crate::{
    invalid::InvalidStub,
    model::{ChunkedDribble, DelayDistribution, Fault, Response, TEMPLATE_TRANSFORMER},
    request::ReceivedRequest,
};

/// A [`Response`], ready to serve.
#[derive(Debug)]
pub(crate) struct Responder {
    pub status: StatusCode,
    /// `statusMessage`: the reason phrase sent instead of the standard one.
    pub reason: Option<Bytes>,
    headers: Vec<(HeaderName, String)>,
    /// The headers as sent when they are not templates, parsed once.
    fixed_headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    /// Set when body and header values are templates.
    templates: Option<Templates>,
    fixed_delay: Duration,
    distribution: Option<DelayDistribution>,
    pub dribble: Option<ChunkedDribble>,
    pub fault: Option<Fault>,
    pub proxy_base_url: Option<String>,
}

struct Templates(Handlebars<'static>);

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

const BODY: &str = "body";

/// A response as rendered for one request.
pub(crate) struct Rendered {
    pub status: StatusCode,
    /// A reason phrase other than the standard one.
    pub reason: Option<Bytes>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Responder {
    /// Compiles a response; `files` is where `bodyFileName` is read from (WireMock's `__files`).
    pub fn compile(response: &Response, files: Option<&Path>) -> Result<Self, InvalidStub> {
        let status = StatusCode::from_u16(response.status).map_err(|_| {
            InvalidStub::new(
                "response.status",
                format!("{} is not an HTTP status (100–999)", response.status),
            )
        })?;
        let bodies = [
            response.body.is_some(),
            response.json_body.is_some(),
            response.base64_body.is_some(),
            response.body_file_name.is_some(),
        ];
        if bodies.iter().filter(|b| **b).count() > 1 {
            return Err(InvalidStub::new(
                "response",
                "sets more than one of body, jsonBody, base64Body, bodyFileName: keep one",
            ));
        }
        let file_body = match (&response.body_file_name, files) {
            (None, _) => None,
            (Some(name), None) => {
                return Err(InvalidStub::new(
                    "response.bodyFileName",
                    format!("{name:?}: this server has no files directory; start it with one (`StubServer::builder().files(dir)`, `--root-dir`) or load a mapping directory, whose __files are read"),
                ))
            }
            (Some(name), Some(dir)) => {
                let path = dir.join(name);
                if !path.starts_with(dir) || name.split(['/', '\\']).any(|p| p == "..") {
                    return Err(InvalidStub::new(
                        "response.bodyFileName",
                        format!("{name:?} is outside the files directory"),
                    ));
                }
                Some(std::fs::read(&path).map_err(|e| {
                    InvalidStub::new(
                        "response.bodyFileName",
                        format!("{name:?}: {} cannot be read: {e}", path.display()),
                    )
                })?)
            }
        };
        let mut headers = Vec::new();
        for (name, values) in &response.headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                InvalidStub::new(
                    &format!("response.headers.{name}"),
                    "is not a valid header name",
                )
            })?;
            for value in values.as_slice() {
                HeaderValue::from_str(value).map_err(|_| {
                    InvalidStub::new(
                        &format!("response.headers.{name}"),
                        format!("{value:?} is not a valid header value"),
                    )
                })?;
                headers.push((header.clone(), value.clone()));
            }
        }
        let file_text = file_body
            .as_ref()
            .and_then(|bytes| std::str::from_utf8(bytes).ok().map(String::from));
        let body_text = match (&response.body, &response.json_body, &response.base64_body) {
            (Some(text), _, _) => Some(text.clone()),
            _ if file_text.is_some() => file_text,
            // As WireMock: no content type unless the stub sets one (`Response::json` does).
            (_, Some(json), _) => Some(json.to_string()),
            _ => None,
        };
        let body = match (&body_text, &response.base64_body) {
            (Some(text), _) => Bytes::from(text.clone()),
            (None, Some(encoded)) => Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|e| {
                        InvalidStub::new("response.base64Body", format!("is not base64: {e}"))
                    })?,
            ),
            (None, None) => file_body.map(Bytes::from).unwrap_or_default(),
        };
        let mut templates = None;
        for transformer in &response.transformers {
            if transformer != TEMPLATE_TRANSFORMER {
                return Err(InvalidStub::new(
                    "response.transformers",
                    format!("{transformer:?} is not supported; the one transformer is \"{TEMPLATE_TRANSFORMER}\""),
                ));
            }
            let mut registry = Handlebars::new();
            registry.register_escape_fn(handlebars::no_escape);
            registry.register_helper("jsonPath", Box::new(json_path_helper));
            if let Some(text) = &body_text {
                registry.register_template_string(BODY, text).map_err(|e| {
                    InvalidStub::new("response.body", format!("is not a valid template: {e}"))
                })?;
            }
            for (i, (name, value)) in headers.iter().enumerate() {
                registry
                    .register_template_string(&format!("header{i}"), value)
                    .map_err(|e| {
                        InvalidStub::new(
                            &format!("response.headers.{name}"),
                            format!("is not a valid template: {e}"),
                        )
                    })?;
            }
            templates = Some(Templates(registry));
        }
        if let Some(DelayDistribution::Uniform { lower, upper }) = &response.delay_distribution {
            if lower > upper {
                return Err(InvalidStub::new(
                    "response.delayDistribution",
                    format!("has lower {lower} above upper {upper}"),
                ));
            }
        }
        if let Some(dribble) = &response.chunked_dribble_delay {
            if dribble.number_of_chunks == 0 {
                return Err(InvalidStub::new(
                    "response.chunkedDribbleDelay.numberOfChunks",
                    "must be at least 1",
                ));
            }
        }
        if let Some(base) = &response.proxy_base_url {
            reqwest::Url::parse(base).map_err(|e| {
                InvalidStub::new(
                    "response.proxyBaseUrl",
                    format!("{base:?} is not a URL: {e}"),
                )
            })?;
        }
        let fixed_headers = headers
            .iter()
            .filter_map(|(n, v)| HeaderValue::from_str(v).ok().map(|v| (n.clone(), v)))
            .collect();
        let reason = match &response.status_message {
            None => None,
            Some(message) => {
                HeaderValue::from_str(message).map_err(|_| {
                    InvalidStub::new(
                        "response.statusMessage",
                        format!("{message:?} cannot be a reason phrase (visible ASCII, spaces and tabs)"),
                    )
                })?;
                Some(Bytes::from(message.clone()))
            }
        };
        Ok(Responder {
            status,
            reason,
            fixed_headers,
            headers,
            body,
            templates,
            fixed_delay: Duration::from_millis(response.fixed_delay_milliseconds.unwrap_or(0)),
            distribution: response.delay_distribution.clone(),
            dribble: response.chunked_dribble_delay.clone(),
            fault: response.fault,
            proxy_base_url: response.proxy_base_url.clone(),
        })
    }

    /// How long to wait before answering: the fixed delay plus one draw of the distribution.
    pub fn delay(&self) -> Duration {
        self.fixed_delay + draw(self.distribution.as_ref())
    }

    /// The response for `request`; a template that fails to render is a `500` saying why.
    pub fn render(&self, request: &ReceivedRequest) -> Rendered {
        match self.try_render(request) {
            Ok(rendered) => rendered,
            Err(message) => Rendered {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                reason: None,
                headers: vec![(
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                body: Bytes::from(format!(
                    "drydock-stub: the response template failed: {message}\n"
                )),
            },
        }
    }

    fn try_render(&self, request: &ReceivedRequest) -> Result<Rendered, String> {
        let Some(Templates(registry)) = &self.templates else {
            return Ok(Rendered {
                status: self.status,
                reason: self.reason.clone(),
                headers: self.fixed_headers.clone(),
                body: self.body.clone(),
            });
        };
        let context = template_context(request);
        let body = if registry.has_template(BODY) {
            Bytes::from(registry.render(BODY, &context).map_err(|e| e.to_string())?)
        } else {
            self.body.clone()
        };
        let mut headers = Vec::new();
        for (i, (name, _)) in self.headers.iter().enumerate() {
            let value = registry
                .render(&format!("header{i}"), &context)
                .map_err(|e| e.to_string())?;
            let value = HeaderValue::from_str(&value)
                .map_err(|_| format!("header {name} rendered to an invalid value {value:?}"))?;
            headers.push((name.clone(), value));
        }
        Ok(Rendered {
            status: self.status,
            reason: self.reason.clone(),
            headers,
            body,
        })
    }
}

/// One draw of a delay distribution.
pub(crate) fn draw(distribution: Option<&DelayDistribution>) -> Duration {
    let mut rng = rand::rng();
    match distribution {
        None => Duration::ZERO,
        Some(DelayDistribution::Uniform { lower, upper }) => {
            Duration::from_millis(rng.random_range(*lower..=*upper))
        }
        Some(DelayDistribution::Lognormal { median, sigma }) => {
            let millis = LogNormal::new(median.max(f64::MIN_POSITIVE).ln(), sigma.max(0.0))
                .map(|d| d.sample(&mut rng))
                .unwrap_or(*median);
            Duration::from_millis(millis.clamp(0.0, 3_600_000.0) as u64)
        }
    }
}

/// What templates see: WireMock's `request` model.
fn template_context(request: &ReceivedRequest) -> Value {
    let mut query: Map<String, Value> = Map::new();
    for (name, value) in &request.query {
        query.entry(name.clone()).or_insert_with(|| json!(value));
    }
    let mut headers: Map<String, Value> = Map::new();
    for (name, value) in &request.headers {
        headers.entry(name.clone()).or_insert_with(|| json!(value));
        // WireMock users write `request.headers.X-Trace-Id`; names arrive in lower case.
        let canonical = name
            .split('-')
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("-");
        headers.entry(canonical).or_insert_with(|| json!(value));
    }
    let cookies: BTreeMap<&str, &str> = request.cookies().collect();
    let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
    json!({
        "request": {
            "method": request.method,
            "url": request.url,
            "path": request.path,
            "pathSegments": segments,
            "query": query,
            "headers": headers,
            "cookies": cookies,
            "body": request.body_text(),
        }
    })
}

/// `{{jsonPath request.body '$.a.b'}}`: the value at the path (strings bare, the rest as JSON).
fn json_path_helper(
    helper: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let source = helper
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("jsonPath", 0))?
        .value();
    let expression = helper
        .param(1)
        .and_then(|p| p.value().as_str())
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("jsonPath", 1))?;
    let document: Value = match source {
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        other => other.clone(),
    };
    let path = serde_json_path::JsonPath::parse(expression)
        .map_err(|e| RenderErrorReason::Other(format!("{expression:?} is not a JSON path: {e}")))?;
    if let Some(value) = path.query(&document).first() {
        match value {
            Value::String(s) => out.write(s)?,
            other => out.write(&other.to_string())?,
        }
    }
    Ok(())
}
