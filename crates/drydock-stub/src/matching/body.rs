//! Tests on the request body: text, JSON, JSON path, bytes, XML.

use base64::Engine;
use serde_json::Value;
use serde_json_path::JsonPath;

use super::{
    json::{self, JsonOptions},
    string::StringTest,
    xml,
};
use crate::{
    invalid::InvalidStub,
    model::{BodyPattern, JsonPathPattern, StringMatcher},
    request::ReceivedRequest,
};

/// A [`BodyPattern`], compiled.
#[derive(Debug)]
pub(crate) enum BodyTest {
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
    Xml(xml::Element),
}

impl BodyTest {
    pub fn compile(field: &str, p: &BodyPattern) -> Result<Self, InvalidStub> {
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
        if let Some(xml) = &p.equal_to_xml {
            let expected = xml::Element::parse(xml).map_err(|e| {
                InvalidStub::new(&format!("{field}.equalToXml"), format!("is not XML: {e}"))
            })?;
            tests.push(BodyTest::Xml(expected));
        }
        match tests.len() {
            1 => Ok(tests.remove(0)),
            0 => Err(InvalidStub::new(
                field,
                "has no operator: set one of equalTo, contains, matches, doesNotMatch, equalToJson, matchesJsonPath, binaryEqualTo, equalToXml",
            )),
            _ => Err(InvalidStub::new(field, "has several operators: use one body pattern each")),
        }
    }

    pub fn test(&self, request: &ReceivedRequest) -> bool {
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
                        test.test(texts.iter().map(String::as_str), false)
                    }
                }
            }
            BodyTest::Binary(bytes) => request.body.as_ref() == bytes.as_slice(),
            BodyTest::Xml(expected) => xml::Element::parse(&request.body_text())
                .is_ok_and(|actual| expected.differences(&actual, 1).is_empty()),
        }
    }

    pub fn describe(&self, source: &str) -> String {
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
            BodyTest::Xml(expected) => format!("equalToXml {expected}"),
        }
    }

    pub fn details(&self, request: &ReceivedRequest) -> Vec<String> {
        if let BodyTest::Xml(expected) = self {
            return match xml::Element::parse(&request.body_text()) {
                Ok(actual) => expected.differences(&actual, 20),
                Err(e) => vec![format!("the body is not XML: {e}")],
            };
        }
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
