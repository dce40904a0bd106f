//! Tests on one string value: a header, query parameter, cookie, path parameter or text body.

use regex::Regex;

use crate::{invalid::InvalidStub, model::StringMatcher};

/// A [`StringMatcher`], compiled.
#[derive(Debug)]
pub(crate) enum StringTest {
    Equal { value: String, ignore_case: bool },
    Contains { value: String, ignore_case: bool },
    Matches(Regex),
    DoesNotMatch(Regex),
    Absent,
    Present,
}

pub(crate) fn anchored(field: &str, regex: &str) -> Result<Regex, InvalidStub> {
    Regex::new(&format!("^(?:{regex})$"))
        .map_err(|e| InvalidStub::new(field, format!("is not a valid regular expression: {e}")))
}

impl StringTest {
    pub fn compile(field: &str, m: &StringMatcher) -> Result<Self, InvalidStub> {
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

    /// Whether the values (none when the header or parameter is absent) pass, as WireMock decides:
    /// any one value passing is enough; `absent` and `present` look at whether there are any;
    /// `doesNotMatch` passes on an absent value when `absent_passes_negative` (headers and query
    /// parameters in WireMock, not cookies).
    pub fn test<'a>(
        &self,
        values: impl Iterator<Item = &'a str>,
        absent_passes_negative: bool,
    ) -> bool {
        let mut values = values.peekable();
        match self {
            StringTest::Absent => values.peek().is_none(),
            StringTest::Present => values.peek().is_some(),
            StringTest::DoesNotMatch(_) if values.peek().is_none() => absent_passes_negative,
            _ => values.any(|v| self.test_one(v)),
        }
    }

    pub fn test_one(&self, value: &str) -> bool {
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

    pub fn describe(&self) -> String {
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

pub(crate) fn unanchor(r: &Regex) -> &str {
    let s = r.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

pub(crate) fn one_operator<T>(field: &str, mut tests: Vec<T>) -> Result<T, InvalidStub> {
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
