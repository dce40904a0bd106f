//! The request side of a stub: WireMock's request pattern.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which requests a stub answers. Every part that is set must match.
///
/// At most one of the URL fields may be set: `url` (path and query, exact), `urlPath` (path,
/// exact), `urlPattern` (path and query, regex), `urlPathPattern` (path, regex) or the
/// *extension* `urlPathPrefix`. Regular expressions must match the whole value, as in WireMock.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RequestPattern {
    /// `GET`, `POST`, …; `ANY` or absent for every method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path and query string, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The path, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_path: Option<String>,
    /// Path and query string, by regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_pattern: Option<String>,
    /// The path, by regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_path_pattern: Option<String>,
    /// The path fits this template: `/orders/{id}` matches `/orders/7` (each `{name}` is one
    /// non-empty segment); `path_parameters` can test the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_path_template: Option<String>,
    /// *Extension*: the path starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_path_prefix: Option<String>,
    /// Tests on the values of `url_path_template`'s variables (decoded), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub path_parameters: BTreeMap<String, StringMatcher>,
    /// Query parameters by name (decoded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_parameters: BTreeMap<String, StringMatcher>,
    /// Headers by name (case-insensitive).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatcher>,
    /// Cookies by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cookies: BTreeMap<String, StringMatcher>,
    /// HTTP basic credentials the `Authorization` header must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_credentials: Option<BasicCredentials>,
    /// Patterns the body must all match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_patterns: Vec<BodyPattern>,
}

/// WireMock's `basicAuthCredentials`: the request's `Authorization` header is exactly
/// `Basic base64(username:password)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicCredentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl BasicCredentials {
    /// Credentials for `username` and `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        BasicCredentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

/// Building a pattern: what [`Stub`](crate::Stub)'s matcher methods do, for a pattern on its own
/// (to count or find requests, or to ask for near misses).
///
/// ```
/// use drydock_stub::{RequestPattern, StringMatcher};
///
/// let paid = RequestPattern::new("POST", "/charges").header("idempotency-key", StringMatcher::present());
/// let any_order = RequestPattern::any().url_path_template("/orders/{id}");
/// # let _ = (paid, any_order);
/// ```
impl RequestPattern {
    /// `method` requests to exactly `path` (the method as written: WireMock compares it exactly,
    /// so use upper case).
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        RequestPattern {
            method: Some(method.into()),
            url_path: Some(path.into()),
            ..Default::default()
        }
    }

    /// Every request; narrow it with the other methods.
    pub fn any() -> Self {
        RequestPattern::default()
    }

    /// Matches this method only (`ANY` for every method).
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    fn clear_url(&mut self) {
        self.url = None;
        self.url_path = None;
        self.url_pattern = None;
        self.url_path_pattern = None;
        self.url_path_prefix = None;
        self.url_path_template = None;
    }

    /// Matches exactly this path (WireMock `urlPath`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.clear_url();
        self.url_path = Some(path.into());
        self
    }

    /// *Extension*: matches every path that starts with `prefix`.
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.clear_url();
        self.url_path_prefix = Some(prefix.into());
        self
    }

    /// Matches the path against a regular expression (WireMock `urlPathPattern`).
    pub fn path_regex(mut self, regex: impl Into<String>) -> Self {
        self.clear_url();
        self.url_path_pattern = Some(regex.into());
        self
    }

    /// Matches paths of this shape (WireMock `urlPathTemplate`): `/orders/{id}`.
    pub fn url_path_template(mut self, template: impl Into<String>) -> Self {
        self.clear_url();
        self.url_path_template = Some(template.into());
        self
    }

    /// Tests the value of one of `url_path_template`'s variables.
    pub fn path_parameter(mut self, name: impl Into<String>, matcher: StringMatcher) -> Self {
        self.path_parameters.insert(name.into(), matcher);
        self
    }

    /// Matches exactly this path and query string (WireMock `url`).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.clear_url();
        self.url = Some(url.into());
        self
    }

    /// Matches path and query string against a regular expression (WireMock `urlPattern`).
    pub fn url_regex(mut self, regex: impl Into<String>) -> Self {
        self.clear_url();
        self.url_pattern = Some(regex.into());
        self
    }

    /// Requires a query parameter (one of its values, when repeated) to match.
    pub fn query(mut self, name: impl Into<String>, matcher: StringMatcher) -> Self {
        self.query_parameters.insert(name.into(), matcher);
        self
    }

    /// Requires a header (names are case-insensitive) to match; see [`StringMatcher::absent`].
    pub fn header(mut self, name: impl Into<String>, matcher: StringMatcher) -> Self {
        self.headers.insert(name.into(), matcher);
        self
    }

    /// Requires a cookie to match.
    pub fn cookie(mut self, name: impl Into<String>, matcher: StringMatcher) -> Self {
        self.cookies.insert(name.into(), matcher);
        self
    }

    /// Requires HTTP basic authentication with these credentials.
    pub fn basic_auth(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic_auth_credentials = Some(BasicCredentials::new(username, password));
        self
    }

    /// Requires the body to match; several body patterns must all match.
    pub fn body(mut self, pattern: BodyPattern) -> Self {
        self.body_patterns.push(pattern);
        self
    }
}

/// A test on a header, query parameter or cookie: exactly one operator is set.
///
/// ```
/// use drydock_stub::StringMatcher;
///
/// let json = serde_json::to_string(&StringMatcher::equal_to("EUR").case_insensitive()).unwrap();
/// assert_eq!(json, r#"{"equalTo":"EUR","caseInsensitive":true}"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct StringMatcher {
    /// The value equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equal_to: Option<String>,
    /// The value contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// The whole value matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// The whole value does not match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub does_not_match: Option<String>,
    /// `true`: the value must be absent; `false`: present, whatever it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent: Option<bool>,
    /// Compare `equalTo` and `contains` ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_insensitive: Option<bool>,
}

impl StringMatcher {
    /// Equal to `value`.
    pub fn equal_to(value: impl Into<String>) -> Self {
        StringMatcher {
            equal_to: Some(value.into()),
            ..Default::default()
        }
    }

    /// Contains `value`.
    pub fn contains(value: impl Into<String>) -> Self {
        StringMatcher {
            contains: Some(value.into()),
            ..Default::default()
        }
    }

    /// Matches the regular expression (as a whole).
    pub fn matches(regex: impl Into<String>) -> Self {
        StringMatcher {
            matches: Some(regex.into()),
            ..Default::default()
        }
    }

    /// Does not match the regular expression.
    pub fn does_not_match(regex: impl Into<String>) -> Self {
        StringMatcher {
            does_not_match: Some(regex.into()),
            ..Default::default()
        }
    }

    /// Not there at all.
    pub fn absent() -> Self {
        StringMatcher {
            absent: Some(true),
            ..Default::default()
        }
    }

    /// There, with any value.
    pub fn present() -> Self {
        StringMatcher {
            absent: Some(false),
            ..Default::default()
        }
    }

    /// Compares ignoring case.
    pub fn case_insensitive(mut self) -> Self {
        self.case_insensitive = Some(true);
        self
    }
}

/// A test on the request body: exactly one operator is set.
///
/// `equalToJson` compares JSON values (numbers by value, object keys in any order); with
/// `ignoreExtraElements` the body may have more fields than the pattern (a partial match), with
/// `ignoreArrayOrder` arrays may be in any order. The placeholders `${json-unit.ignore}`,
/// `${json-unit.any-string}`, `${json-unit.any-number}` and `${json-unit.any-boolean}` work as in
/// WireMock.
///
/// ```
/// use drydock_stub::BodyPattern;
/// use serde_json::json;
///
/// let partial = BodyPattern::json_partial(json!({"amount": 10}));
/// let by_path = BodyPattern::json_path_equal_to("$.customer.id", "c_1");
/// # let _ = (partial, by_path);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct BodyPattern {
    /// The body (as text) equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equal_to: Option<String>,
    /// The body contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// The whole body matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// The whole body does not match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub does_not_match: Option<String>,
    /// The body is JSON equal to this (a JSON value, or a string holding JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equal_to_json: Option<Value>,
    /// With `equalToJson`: arrays in any order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_array_order: Option<bool>,
    /// With `equalToJson`: the body may have fields the pattern does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_extra_elements: Option<bool>,
    /// A JSON path (RFC 9535) that must find something, or whose value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches_json_path: Option<JsonPathPattern>,
    /// The body's bytes equal these (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_equal_to: Option<String>,
    /// The body is XML equal to this: names by namespace, attributes in any order, whitespace
    /// around text and comments ignored (WireMock's `equalToXml`, without placeholders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equal_to_xml: Option<String>,
    /// With `equalTo` and `contains`: ignore case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_insensitive: Option<bool>,
}

impl BodyPattern {
    /// The body equals `text`.
    pub fn equal_to(text: impl Into<String>) -> Self {
        BodyPattern {
            equal_to: Some(text.into()),
            ..Default::default()
        }
    }

    /// The body contains `text`.
    pub fn contains(text: impl Into<String>) -> Self {
        BodyPattern {
            contains: Some(text.into()),
            ..Default::default()
        }
    }

    /// The body matches the regular expression.
    pub fn matches(regex: impl Into<String>) -> Self {
        BodyPattern {
            matches: Some(regex.into()),
            ..Default::default()
        }
    }

    /// The body is JSON equal to `json`.
    pub fn json(json: Value) -> Self {
        BodyPattern {
            equal_to_json: Some(json),
            ..Default::default()
        }
    }

    /// The body is JSON holding at least `json` (extra fields allowed).
    pub fn json_partial(json: Value) -> Self {
        BodyPattern {
            equal_to_json: Some(json),
            ignore_extra_elements: Some(true),
            ..Default::default()
        }
    }

    /// The JSON path finds at least one value.
    pub fn json_path(expression: impl Into<String>) -> Self {
        BodyPattern {
            matches_json_path: Some(JsonPathPattern::Exists(expression.into())),
            ..Default::default()
        }
    }

    /// The value at the JSON path (a string as is, anything else as JSON text) equals `value`.
    pub fn json_path_equal_to(expression: impl Into<String>, value: impl Into<String>) -> Self {
        BodyPattern {
            matches_json_path: Some(JsonPathPattern::Value {
                expression: expression.into(),
                matcher: StringMatcher::equal_to(value),
            }),
            ..Default::default()
        }
    }

    /// The body is XML equal to `xml` (see [`equal_to_xml`](Self::equal_to_xml)).
    pub fn xml(xml: impl Into<String>) -> Self {
        BodyPattern {
            equal_to_xml: Some(xml.into()),
            ..Default::default()
        }
    }

    /// The body's bytes equal `bytes`.
    pub fn binary(bytes: &[u8]) -> Self {
        use base64::Engine;
        BodyPattern {
            binary_equal_to: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ..Default::default()
        }
    }
}

/// WireMock's `matchesJsonPath`: an expression, or an expression with a test on its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JsonPathPattern {
    /// The expression must find something.
    Exists(String),
    /// The value found must match.
    Value {
        /// The JSON path.
        expression: String,
        /// The test on the value.
        #[serde(flatten)]
        matcher: StringMatcher,
    },
}
