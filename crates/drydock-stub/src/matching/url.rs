//! Tests on the URL: exact, regex, prefix, and path templates (`/orders/{id}`).

use std::collections::BTreeMap;

use regex::Regex;

use super::string::{anchored, unanchor, StringTest};
use crate::{invalid::InvalidStub, model::StringMatcher, request::ReceivedRequest};

/// One of the pattern's URL fields, compiled.
#[derive(Debug)]
pub(crate) enum UrlTest {
    Url(String),
    Path(String),
    UrlRegex(Regex),
    PathRegex(Regex),
    PathPrefix(String),
    Template(PathTemplate),
}

/// WireMock's `urlPathTemplate`: literal segments, and `{name}` segments that match any one
/// non-empty segment, each optionally tested by `pathParameters`.
#[derive(Debug)]
pub(crate) struct PathTemplate {
    source: String,
    segments: Vec<Segment>,
    parameters: Vec<(String, StringTest)>,
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Variable(String),
}

impl PathTemplate {
    pub fn compile(
        source: &str,
        parameters: &BTreeMap<String, StringMatcher>,
    ) -> Result<Self, InvalidStub> {
        let segments: Vec<Segment> = source
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Variable(name.to_string()),
                    None => Segment::Literal(s.to_string()),
                },
            )
            .collect();
        for segment in &segments {
            if let Segment::Variable(name) = segment {
                if name.is_empty() || name.contains(['{', '}']) {
                    return Err(InvalidStub::new(
                        "request.urlPathTemplate",
                        format!("{source:?} has a segment {{{name}}} that is not a variable name"),
                    ));
                }
            }
        }
        let parameters = parameters
            .iter()
            .map(|(name, matcher)| {
                let known = segments
                    .iter()
                    .any(|s| matches!(s, Segment::Variable(v) if v == name));
                if !known {
                    return Err(InvalidStub::new(
                        &format!("request.pathParameters.{name}"),
                        format!("is not a variable of urlPathTemplate {source:?}"),
                    ));
                }
                StringTest::compile(&format!("request.pathParameters.{name}"), matcher)
                    .map(|t| (name.clone(), t))
            })
            .collect::<Result<_, _>>()?;
        Ok(PathTemplate {
            source: source.to_string(),
            segments,
            parameters,
        })
    }

    /// The variables' values in `path`, if its shape fits the template.
    pub fn bind<'a>(&'a self, path: &'a str) -> Option<Vec<(&'a str, String)>> {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut values = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                Segment::Variable(_) if part.is_empty() => return None,
                Segment::Variable(name) => values.push((name.as_str(), decode(part))),
            }
        }
        Some(values)
    }

    fn is_match(&self, path: &str) -> bool {
        let Some(values) = self.bind(path) else {
            return false;
        };
        self.parameters.iter().all(|(name, test)| {
            let value = values
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str());
            test.test(value.into_iter(), true)
        })
    }

    fn describe(&self) -> String {
        let mut text = format!("template {:?}", self.source);
        for (name, test) in &self.parameters {
            text.push_str(&format!(", {{{name}}} {}", test.describe()));
        }
        text
    }
}

fn decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| segment.to_string())
}

impl UrlTest {
    pub fn compile_regex(field: &str, regex: &str, path: bool) -> Result<UrlTest, InvalidStub> {
        let regex = anchored(field, regex)?;
        Ok(if path {
            UrlTest::PathRegex(regex)
        } else {
            UrlTest::UrlRegex(regex)
        })
    }

    pub fn is_match(&self, request: &ReceivedRequest) -> bool {
        match self {
            UrlTest::Url(url) => *url == request.url,
            UrlTest::Path(path) => *path == request.path,
            UrlTest::UrlRegex(r) => r.is_match(&request.url),
            UrlTest::PathRegex(r) => r.is_match(&request.path),
            UrlTest::PathPrefix(prefix) => request.path.starts_with(prefix.as_str()),
            UrlTest::Template(template) => template.is_match(&request.path),
        }
    }

    /// What the check is called, what it wants, and what the request has.
    pub fn describe<'a>(&self, request: &'a ReceivedRequest) -> (&'static str, String, &'a str) {
        match self {
            UrlTest::Url(u) => ("url", format!("equalTo {u:?}"), &request.url),
            UrlTest::Path(p) => ("url path", format!("equalTo {p:?}"), &request.path),
            UrlTest::UrlRegex(r) => ("url", format!("matches /{}/", unanchor(r)), &request.url),
            UrlTest::PathRegex(r) => (
                "url path",
                format!("matches /{}/", unanchor(r)),
                &request.path,
            ),
            UrlTest::PathPrefix(p) => ("url path", format!("starts with {p:?}"), &request.path),
            UrlTest::Template(t) => ("url path", t.describe(), &request.path),
        }
    }
}
