//! Request patterns compiled for matching, and the explanation of why a request did not match.
//!
//! Matching is on the hot path, so it only answers yes or no; `explain` runs the same tests again
//! to say what failed, and is used only for requests no stub matched. Each kind of test is a file:
//! [`string`] (headers, query, cookies), [`url`], [`body`] (with [`json`] and [`xml`]).

mod body;
mod json;
mod string;
mod url;
mod xml;

use base64::Engine;

use crate::{
    invalid::InvalidStub,
    model::{JsonPathPattern, RequestPattern, StringMatcher},
    request::ReceivedRequest,
    verify::Check,
};
use body::BodyTest;
use string::StringTest;
use url::{PathTemplate, UrlTest};

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
                .map(|r| UrlTest::compile_regex("request.urlPattern", r, false))
                .transpose()?,
        )
        .chain(
            pattern
                .url_path_pattern
                .as_deref()
                .map(|r| UrlTest::compile_regex("request.urlPathPattern", r, true))
                .transpose()?,
        )
        .chain(
            pattern
                .url_path_template
                .as_deref()
                .map(|t| PathTemplate::compile(t, &pattern.path_parameters).map(UrlTest::Template))
                .transpose()?,
        )
        .collect();
        if !pattern.path_parameters.is_empty() && pattern.url_path_template.is_none() {
            return Err(InvalidStub::new(
                "request.pathParameters",
                "needs a urlPathTemplate whose {variables} it tests",
            ));
        }
        if urls.len() > 1 {
            return Err(InvalidStub::new(
                "request",
                "sets several of url, urlPath, urlPattern, urlPathPattern, urlPathTemplate, urlPathPrefix: keep one",
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
        // Compared as written, as WireMock does: a stub for `get` matches no `GET` request.
        let method = pattern.method.clone().filter(|m| m != "ANY");
        let mut headers = strings("headers", &pattern.headers)?;
        if let Some(credentials) = &pattern.basic_auth_credentials {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", credentials.username, credentials.password));
            headers.push((
                "Authorization".to_string(),
                StringTest::compile(
                    "request.basicAuthCredentials",
                    &StringMatcher::equal_to(format!("Basic {token}")),
                )?,
            ));
        }
        Ok(Matcher {
            method,
            url: urls.into_iter().next(),
            query: strings("queryParameters", &pattern.query_parameters)?,
            headers,
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
            && self.url.as_ref().is_none_or(|u| u.is_match(request))
            && self
                .query
                .iter()
                .all(|(name, t)| t.test(request.query_values(name), true))
            && self
                .headers
                .iter()
                .all(|(name, t)| t.test(request.header_values(name), true))
            && self
                .cookies
                .iter()
                .all(|(name, t)| t.test(Self::cookie_values(request, name), false))
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
            let (what, expected, actual) = test.describe(request);
            checks.push(Check {
                what: what.into(),
                expected,
                actual: format!("{actual:?}"),
                matched: test.is_match(request),
                details: Vec::new(),
            });
        }
        for (name, test) in &self.query {
            checks.push(Check {
                what: format!("query {name}"),
                expected: test.describe(),
                actual: shown(request.query_values(name).collect()),
                matched: test.test(request.query_values(name), true),
                details: Vec::new(),
            });
        }
        for (name, test) in &self.headers {
            checks.push(Check {
                what: format!("header {name}"),
                expected: test.describe(),
                actual: shown(request.header_values(name).collect()),
                matched: test.test(request.header_values(name), true),
                details: Vec::new(),
            });
        }
        for (name, test) in &self.cookies {
            checks.push(Check {
                what: format!("cookie {name}"),
                expected: test.describe(),
                actual: shown(Self::cookie_values(request, name).collect()),
                matched: test.test(Self::cookie_values(request, name), false),
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
    use crate::model::{StringMatcher, Stub};

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
