//! JSON comparison that explains itself: every difference as `path: expected …, got …`.

use serde_json::Value;

/// How `equalToJson` compares.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct JsonOptions {
    pub ignore_array_order: bool,
    /// Fields, and trailing or unmatched array items, the pattern does not have are allowed.
    pub ignore_extra_elements: bool,
}

/// Whether `actual` matches `expected`.
pub(crate) fn equal(expected: &Value, actual: &Value, options: JsonOptions) -> bool {
    let mut differences = Vec::new();
    diff_at(expected, actual, options, "$", &mut differences, 1);
    differences.is_empty()
}

/// The differences between `expected` and `actual`, at most `limit` of them.
pub(crate) fn diff(
    expected: &Value,
    actual: &Value,
    options: JsonOptions,
    limit: usize,
) -> Vec<String> {
    let mut differences = Vec::new();
    diff_at(expected, actual, options, "$", &mut differences, limit);
    differences
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 60 {
        format!("{}…", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

/// WireMock's json-unit placeholders; `None` when `expected` is not one.
fn placeholder(expected: &Value, actual: &Value) -> Option<bool> {
    let text = expected.as_str()?;
    let rest = text.strip_prefix("${json-unit.")?;
    if let Some(regex) = rest.strip_prefix("regex}") {
        let matched = regex::Regex::new(&format!("^(?:{regex})$"))
            .map(|r| actual.as_str().is_some_and(|a| r.is_match(a)))
            .unwrap_or(false);
        return Some(matched);
    }
    match rest {
        "ignore}" => Some(true),
        "any-string}" => Some(actual.is_string()),
        "any-number}" => Some(actual.is_number()),
        "any-boolean}" => Some(actual.is_boolean()),
        _ => None,
    }
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => a.as_f64() == b.as_f64(),
    }
}

fn diff_at(
    expected: &Value,
    actual: &Value,
    options: JsonOptions,
    path: &str,
    out: &mut Vec<String>,
    limit: usize,
) {
    if out.len() >= limit {
        return;
    }
    if let Some(ok) = placeholder(expected, actual) {
        if !ok {
            out.push(format!(
                "{path}: expected {}, got {}",
                short(expected),
                short(actual)
            ));
        }
        return;
    }
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => {
            for (key, want) in expected {
                let at = format!("{path}.{key}");
                match actual.get(key) {
                    Some(got) => diff_at(want, got, options, &at, out, limit),
                    None => out.push(format!("{at}: missing (expected {})", short(want))),
                }
                if out.len() >= limit {
                    return;
                }
            }
            if !options.ignore_extra_elements {
                for (key, got) in actual {
                    if !expected.contains_key(key) && out.len() < limit {
                        out.push(format!("{path}.{key}: not expected (got {})", short(got)));
                    }
                }
            }
        }
        (Value::Array(expected), Value::Array(actual)) if options.ignore_array_order => {
            let mut used = vec![false; actual.len()];
            for (i, want) in expected.iter().enumerate() {
                let found = actual
                    .iter()
                    .enumerate()
                    .find(|(j, got)| !used[*j] && equal(want, got, options));
                match found {
                    Some((j, _)) => used[j] = true,
                    None => out.push(format!(
                        "{path}[{i}]: no element matches {} (in any order)",
                        short(want)
                    )),
                }
                if out.len() >= limit {
                    return;
                }
            }
            if !options.ignore_extra_elements && actual.len() != expected.len() {
                out.push(format!(
                    "{path}: expected {} elements, got {}",
                    expected.len(),
                    actual.len()
                ));
            }
        }
        (Value::Array(expected), Value::Array(actual)) => {
            for (i, want) in expected.iter().enumerate() {
                let at = format!("{path}[{i}]");
                match actual.get(i) {
                    Some(got) => diff_at(want, got, options, &at, out, limit),
                    None => out.push(format!("{at}: missing (expected {})", short(want))),
                }
                if out.len() >= limit {
                    return;
                }
            }
            if !options.ignore_extra_elements && actual.len() > expected.len() {
                out.push(format!(
                    "{path}: expected {} elements, got {}",
                    expected.len(),
                    actual.len()
                ));
            }
        }
        (Value::Number(a), Value::Number(b)) if numbers_equal(a, b) => {}
        (expected, actual) if expected == actual => {}
        (expected, actual) => out.push(format!(
            "{path}: expected {}, got {}",
            short(expected),
            short(actual)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_their_paths() {
        let got = diff(
            &json!({"amount": 10, "currency": "EUR", "items": [1, 2]}),
            &json!({"amount": 12, "items": [1, 2, 3], "note": "x"}),
            JsonOptions::default(),
            10,
        );
        assert_eq!(
            got,
            [
                "$.amount: expected 10, got 12",
                "$.currency: missing (expected \"EUR\")",
                "$.items: expected 2 elements, got 3",
                "$.note: not expected (got \"x\")",
            ]
        );
    }

    #[test]
    fn partial_and_unordered_and_placeholders() {
        let partial = JsonOptions {
            ignore_extra_elements: true,
            ignore_array_order: true,
        };
        assert!(equal(
            &json!({"tags": ["b", "a"], "id": "${json-unit.any-string}"}),
            &json!({"tags": ["a", "b", "c"], "id": "x1", "more": true}),
            partial
        ));
        assert!(equal(&json!(1.0), &json!(1), JsonOptions::default()));
        assert!(!equal(
            &json!({"id": "${json-unit.any-number}"}),
            &json!({"id": "x"}),
            partial
        ));
    }
}
