//! Request patterns compiled for matching, and the explanation of why a request did not match.
//!
//! Matching is on the hot path, so it only answers yes or no; `explain` runs the same tests again
//! to say what failed, and is used only for requests no stub matched.

mod json;

use base64::Engine;
use regex::Regex;
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::{
    error::InvalidStub,
    model::{BodyPattern, JsonPathPattern, RequestPattern, StringMatcher},
    request::ReceivedRequest,
};
use json::JsonOptions;

/// A [`RequestPattern`], compiled: regular expressions and JSON paths parsed once.
#[derive(Debug)]
pub(crate) struct Matcher {
    method: Option<String>,
    url: Option<UrlTest>,
    query: Vec<(String, StringTest)>,
    headers: Vec<(String, StringTest)>,
    cookies: Vec<(String, StringTest)>,
    body: Vec<(BodyTest, String)>,
}

#[derive(Debug)]
enum UrlTest {
    Url(String),
    Path(String),
    UrlRegex(Regex),
    PathRegex(Regex),
    PathPrefix(String),
}

#[derive(Debug)]
enum StringTest {
    Equal { value: String, ignore_case: bool },
    Contains { value: String, ignore_case: bool },
    Matches(Regex),
    DoesNotMatch(Regex),
    Absent,
    Present,
}

#[derive(Debug)]
enum BodyTest {
    Text(StringTest),
    Json {
        expected: Value,
        options: JsonOptions,
    },
    JsonPath {
        path: JsonPath,
        value: Option<StringTest>,
    },
    Binary(Vec<u8>),
}

/// One part of a pattern, checked against a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// Which part: `method`, `url path`, `header x-api-key`, `body`, …
    pub what: String,
    /// What the pattern wants.
    pub expected: String,
    /// What the request has.
    pub actual: String,
    /// Whether it matched.
    pub matched: bool,
    /// For JSON bodies, each difference (`$.amount: expected 10, got 12`).
    pub details: Vec<String>,
}

fn anchored(field: &str, regex: &str) -> Result<Regex, InvalidStub> {
    Regex::new(&format!("^(?:{regex})$"))
        .map_err(|e| InvalidStub::new(field, format!("is not a valid regular expression: {e}")))
}

impl StringTest {
    fn compile(field: &str, m: &StringMatcher) -> Result<Self, InvalidStub> {
        let ignore_case = m.case_insensitive.unwrap_or(false);
        let mut tests = Vec::new();
        if let Some(v) = &m.equal_to {
            tests.push(StringTest::Equal {
                value: if ignore_case {
                    v.to_lowercase()
                } else {
                    v.clone()
                },
                ignore_case,
            });
        }
        if let Some(v) = &m.contains {
            tests.push(StringTest::Contains {
                value: if ignore_case {
                    v.to_lowercase()
                } else {
                    v.clone()
                },
                ignore_case,
            });
        }
        if let Some(r) = &m.matches {
            tests.push(StringTest::Matches(anchored(
                &format!("{field}.matches"),
                r,
            )?));
        }
        if let Some(r) = &m.does_not_match {
            tests.push(StringTest::DoesNotMatch(anchored(
                &format!("{field}.doesNotMatch"),
                r,
            )?));
        }
        match m.absent {
            Some(true) => tests.push(StringTest::Absent),
            Some(false) => tests.push(StringTest::Present),
            None => {}
        }
        one_operator(field, tests)
    }

    /// Whether any of the values passes (`Absent` and `DoesNotMatch` look at all of them).
    fn test<'a>(&self, mut values: impl Iterator<Item = &'a str>) -> bool {
        match self {
            StringTest::Absent => values.next().is_none(),
            StringTest::Present => values.next().is_some(),
            StringTest::DoesNotMatch(r) => {
                let values: Vec<_> = values.collect();
                !values.is_empty() && values.iter().all(|v| !r.is_match(v))
            }
            _ => values.any(|v| self.test_one(v)),
        }
    }

    fn test_one(&self, value: &str) -> bool {
        match self {
            StringTest::Equal {
                value: want,
                ignore_case,
            } => {
                if *ignore_case {
                    want.eq_ignore_ascii_case(value) || *want == value.to_lowercase()
                } else {
                    want == value
                }
            }
            StringTest::Contains {
                value: want,
                ignore_case,
            } => {
                if *ignore_case {
                    value.to_lowercase().contains(want.as_str())
                } else {
                    value.contains(want.as_str())
                }
            }
            StringTest::Matches(r) => r.is_match(value),
            StringTest::DoesNotMatch(r) => !r.is_match(value),
            StringTest::Absent => false,
            StringTest::Present => true,
        }
    }

    fn describe(&self) -> String {
        let case = |ignore: &bool| if *ignore { " (any case)" } else { "" };
        match self {
            StringTest::Equal { value, ignore_case } => {
                format!("equalTo {value:?}{}", case(ignore_case))
            }
            StringTest::Contains { value, ignore_case } => {
                format!("contains {value:?}{}", case(ignore_case))
            }
            StringTest::Matches(r) => format!("matches /{}/", unanchor(r)),
            StringTest::DoesNotMatch(r) => format!("doesNotMatch /{}/", unanchor(r)),
            StringTest::Absent => "absent".into(),
            StringTest::Present => "present".into(),
        }
    }
}

fn unanchor(r: &Regex) -> &str {
    let s = r.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

fn one_operator<T>(field: &str, mut tests: Vec<T>) -> Result<T, InvalidStub> {
    match tests.len() {
        1 => Ok(tests.remove(0)),
        0 => Err(InvalidStub::new(
            field,
            "has no operator: set one of equalTo, contains, matches, doesNotMatch, absent",
        )),
        _ => Err(InvalidStub::new(
            field,
            "has several operators: set exactly one (a stub with two tests on a value is two matchers)",
        )),
    }
}

impl BodyTest {
    fn compile(field: &str, p: &BodyPattern) -> Result<Self, InvalidStub> {
        let mut tests = Vec::new();
        let text = StringMatcher {
            equal_to: p.equal_to.clone(),
            contains: p.contains.clone(),
            matches: p.matches.clone(),
            does_not_match: p.does_not_match.clone(),
            absent: None,
            case_insensitive: p.case_insensitive,
        };
        if text.equal_to.is_some()
            || text.contains.is_some()
            || text.matches.is_some()
            || text.does_not_match.is_some()
        {
            tests.push(BodyTest::Text(StringTest::compile(field, &text)?));
        }
        if let Some(expected) = &p.equal_to_json {
            // WireMock files often hold the JSON as a string.
            let expected = match expected {
                Value::String(s) => serde_json::from_str(s).map_err(|e| {
                    InvalidStub::new(
                        &format!("{field}.equalToJson"),
                        format!("is a string that is not JSON: {e}"),
                    )
                })?,
                other => other.clone(),
            };
            tests.push(BodyTest::Json {
                expected,
                options: JsonOptions {
                    ignore_array_order: p.ignore_array_order.unwrap_or(false),
                    ignore_extra_elements: p.ignore_extra_elements.unwrap_or(false),
                },
            });
        }
        if let Some(pattern) = &p.matches_json_path {
            let (expression, value) = match pattern {
                JsonPathPattern::Exists(expression) => (expression, None),
                JsonPathPattern::Value {
                    expression,
                    matcher,
                } => (
                    expression,
                    Some(StringTest::compile(
                        &format!("{field}.matchesJsonPath"),
                        matcher,
                    )?),
                ),
            };
            let path = JsonPath::parse(expression).map_err(|e| {
                InvalidStub::new(
                    &format!("{field}.matchesJsonPath"),
                    format!("{expression:?} is not a JSON path (RFC 9535): {e}"),
                )
            })?;
            tests.push(BodyTest::JsonPath { path, value });
        }
        if let Some(encoded) = &p.binary_equal_to {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| {
                    InvalidStub::new(
                        &format!("{field}.binaryEqualTo"),
                        format!("is not base64: {e}"),
                    )
                })?;
            tests.push(BodyTest::Binary(bytes));
        }
        match tests.len() {
            1 => Ok(tests.remove(0)),
            0 => Err(InvalidStub::new(
                field,
                "has no operator: set one of equalTo, contains, matches, doesNotMatch, equalToJson, matchesJsonPath, binaryEqualTo",
            )),
            _ => Err(InvalidStub::new(field, "has several operators: use one body pattern each")),
        }
    }

    fn test(&self, request: &ReceivedRequest) -> bool {
        match self {
            BodyTest::Text(test) => test.test_one(&request.body_text()),
            BodyTest::Json { expected, options } => request
                .json()
                .is_some_and(|actual| json::equal(expected, actual, *options)),
            BodyTest::JsonPath { path, value } => {
                let Some(json) = request.json() else {
                    return false;
                };
                let found = path.query(json).all();
                match value {
                    None => !found.is_empty(),
                    Some(test) => {
                        let texts: Vec<String> = found.iter().map(|v| json_text(v)).collect();
                        test.test(texts.iter().map(String::as_str))
                    }
                }
            }
            BodyTest::Binary(bytes) => request.body.as_ref() == bytes.as_slice(),
        }
    }

    fn describe(&self, source: &str) -> String {
        match self {
            BodyTest::Text(test) => test.describe(),
            BodyTest::Json { expected, options } => format!(
                "equalToJson {}{}{}",
                expected,
                if options.ignore_extra_elements {
                    " (extra elements allowed)"
                } else {
                    ""
                },
                if options.ignore_array_order {
                    " (any array order)"
                } else {
                    ""
                }
            ),
            BodyTest::JsonPath { value, .. } => match value {
                None => format!("matchesJsonPath {source}"),
                Some(test) => format!("matchesJsonPath {source} {}", test.describe()),
            },
            BodyTest::Binary(bytes) => format!("binaryEqualTo ({} bytes)", bytes.len()),
        }
    }

    fn details(&self, request: &ReceivedRequest) -> Vec<String> {
        match (self, request.json()) {
            (BodyTest::Json { expected, options }, Some(actual)) => {
                json::diff(expected, actual, *options, 20)
            }
            (BodyTest::Json { .. } | BodyTest::JsonPath { .. }, None) => {
                vec!["the body is not JSON".into()]
            }
            (BodyTest::JsonPath { path, .. }, Some(json)) => {
                let found = path.query(json).all();
                if found.is_empty() {
                    vec!["the path finds nothing".into()]
                } else {
                    found
                        .iter()
                        .map(|v| format!("found {}", json_text(v)))
                        .collect()
                }
            }
            _ => Vec::new(),
        }
    }
}

/// A JSON value as a string matcher sees it: strings without quotes, the rest as JSON.
fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn shown(values: Vec<&str>) -> String {
    match values.len() {
        0 => "(absent)".into(),
        1 => format!("{:?}", values[0]),
        _ => format!("{values:?}"),
    }
}

impl Matcher {
    /// Compiles a pattern, or says which field is wrong and why.
    pub fn compile(pattern: &RequestPattern) -> Result<Self, InvalidStub> {
        let urls: Vec<UrlTest> = [
            pattern.url.clone().map(UrlTest::Url),
            pattern.url_path.clone().map(UrlTest::Path),
            pattern.url_path_prefix.clone().map(UrlTest::PathPrefix),
        ]
        .into_iter()
        .flatten()
        .chain(
            pattern
                .url_pattern
                .as_deref()
                .map(|r| anchored("request.urlPattern", r).map(UrlTest::UrlRegex))
                .transpose()?,
        )
        .chain(
            pattern
                .url_path_pattern
                .as_deref()
                .map(|r| anchored("request.urlPathPattern", r).map(UrlTest::PathRegex))
                .transpose()?,
        )
        .collect();
        if urls.len() > 1 {
            return Err(InvalidStub::new(
                "request",
                "sets several of url, urlPath, urlPattern, urlPathPattern, urlPathPrefix: keep one",
            ));
        }
        let strings = |kind: &str, map: &std::collections::BTreeMap<String, StringMatcher>| {
            map.iter()
                .map(|(name, m)| {
                    StringTest::compile(&format!("request.{kind}.{name}"), m)
                        .map(|t| (name.clone(), t))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let method = pattern
            .method
            .as_deref()
            .map(str::to_ascii_uppercase)
            .filter(|m| m != "ANY");
        Ok(Matcher {
            method,
            url: urls.into_iter().next(),
            query: strings("queryParameters", &pattern.query_parameters)?,
            headers: strings("headers", &pattern.headers)?,
            cookies: strings("cookies", &pattern.cookies)?,
            body: pattern
                .body_patterns
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let source = match &p.matches_json_path {
                        Some(JsonPathPattern::Exists(e)) => e.clone(),
                        Some(JsonPathPattern::Value { expression, .. }) => expression.clone(),
                        None => String::new(),
                    };
                    BodyTest::compile(&format!("request.bodyPatterns[{i}]"), p).map(|t| (t, source))
                })
                .collect::<Result<_, _>>()?,
        })
    }

    fn url_matches(test: &UrlTest, request: &ReceivedRequest) -> bool {
        match test {
            UrlTest::Url(url) => *url == request.url,
            UrlTest::Path(path) => *path == request.path,
            UrlTest::UrlRegex(r) => r.is_match(&request.url),
            UrlTest::PathRegex(r) => r.is_match(&request.path),
            UrlTest::PathPrefix(prefix) => request.path.starts_with(prefix.as_str()),
        }
    }

    fn cookie_values<'a>(
        request: &'a ReceivedRequest,
        name: &'a str,
    ) -> impl Iterator<Item = &'a str> {
        request
            .cookies()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// Whether the request matches every part of the pattern.
    pub fn is_match(&self, request: &ReceivedRequest) -> bool {
        self.method.as_deref().is_none_or(|m| m == request.method)
            && self
                .url
                .as_ref()
                .is_none_or(|u| Self::url_matches(u, request))
            && self
                .query
                .iter()
                .all(|(name, t)| t.test(request.query_values(name)))
            && self
                .headers
                .iter()
                .all(|(name, t)| t.test(request.header_values(name)))
            && self
                .cookies
                .iter()
                .all(|(name, t)| t.test(Self::cookie_values(request, name)))
            && self.body.iter().all(|(t, _)| t.test(request))
    }

    /// Every part of the pattern, checked against the request.
    pub fn explain(&self, request: &ReceivedRequest) -> Vec<Check> {
        let mut checks = Vec::new();
        if let Some(method) = &self.method {
            checks.push(Check {
                what: "method".into(),
                expected: method.clone(),
                actual: request.method.clone(),
                matched: *method == request.method,
                details: Vec::new(),
            });
        }
        if let Some(test) = &self.url {
            let (what, expected, actual) = match test {
                UrlTest::Url(u) => ("url", format!("equalTo {u:?}"), &request.url),
                UrlTest::Path(p) => ("url path", format!("equalTo {p:?}"), &request.path),
                UrlTest::UrlRegex(r) => ("url", format!("matches /{}/", unanchor(r)), &request.url),
                UrlTest::PathRegex(r) => (
                    "url path",
                    format!("matches /{}/", unanchor(r)),
                    &request.path,
                ),
                UrlTest::PathPrefix(p) => ("url path", format!("starts with {p:?}"), &request.path),
            };
            checks.push(Check {
                what: what.into(),
                expected,
                actual: format!("{actual:?}"),
                matched: Self::url_matches(test, request),
                details: Vec::new(),
            });
        }
        for (name, test) in &self.query {
            checks.push(Check {
                what: format!("query {name}"),
                expected: test.describe(),
                actual: shown(request.query_values(name).collect()),
                matched: test.test(request.query_values(name)),
                details: Vec::new(),
            });
        }
        for (name, test) in &self.headers {
            checks.push(Check {
                what: format!("header {name}"),
                expected: test.describe(),
                actual: shown(request.header_values(name).collect()),
                matched: test.test(request.header_values(name)),
                details: Vec::new(),
            });
        }
        for (name, test) in &self.cookies {
            checks.push(Check {
                what: format!("cookie {name}"),
                expected: test.describe(),
                actual: shown(Self::cookie_values(request, name).collect()),
                matched: test.test(Self::cookie_values(request, name)),
                details: Vec::new(),
            });
        }
        for (test, source) in &self.body {
            let matched = test.test(request);
            let text = request.body_text();
            let actual = if text.len() > 200 {
                format!(
                    "{:?}… ({} bytes)",
                    text.chars().take(200).collect::<String>(),
                    request.body.len()
                )
            } else {
                format!("{text:?}")
            };
            checks.push(Check {
                what: "body".into(),
                expected: test.describe(source),
                actual,
                matched,
                details: if matched {
                    Vec::new()
                } else {
                    test.details(request)
                },
            });
        }
        checks
    }
}

/// How far a request is from a pattern: the share of its checks that failed (0 is a match).
pub(crate) fn distance(checks: &[Check]) -> f64 {
    if checks.is_empty() {
        return 0.0;
    }
    checks.iter().filter(|c| !c.matched).count() as f64 / checks.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stub;

    fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> ReceivedRequest {
        ReceivedRequest::new(
            method,
            url,
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            bytes::Bytes::from(body.to_string()),
        )
    }

    #[test]
    fn every_string_operator() {
        let stub = Stub::get("/x")
            .query("q", StringMatcher::contains("ell"))
            .header("X-A", StringMatcher::equal_to("abc").case_insensitive())
            .header("x-b", StringMatcher::matches("[0-9]+"))
            .header("x-c", StringMatcher::does_not_match("no.*"))
            .header("x-d", StringMatcher::absent())
            .cookie("session", StringMatcher::present());
        let m = Matcher::compile(&stub.request).expect("compiles");
        let good = [
            ("x-a", "ABC"),
            ("x-b", "123"),
            ("x-c", "yes"),
            ("cookie", "a=1; session=s"),
        ];
        assert!(m.is_match(&request("GET", "/x?q=hello", &good, "")));
        assert!(!m.is_match(&request("GET", "/x?q=hallo", &good, "")));
        let bad = [
            ("x-a", "ABC"),
            ("x-b", "12a"),
            ("x-c", "yes"),
            ("cookie", "session=s"),
        ];
        assert!(!m.is_match(&request("GET", "/x?q=hello", &bad, "")));
        let checks = m.explain(&request("GET", "/x?q=hello", &bad, ""));
        let failed: Vec<_> = checks
            .iter()
            .filter(|c| !c.matched)
            .map(|c| c.what.as_str())
            .collect();
        assert_eq!(failed, ["header x-b"]);
    }

    #[test]
    fn bad_regex_names_the_field() {
        let stub = Stub::any().header("x", StringMatcher::matches("("));
        let err = Matcher::compile(&stub.request).expect_err("invalid");
        assert_eq!(err.field, "request.headers.x.matches");
    }
}
