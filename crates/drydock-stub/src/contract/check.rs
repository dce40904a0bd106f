//! The checks: a stub's request pattern and response, and a received request, against the
//! operation of the spec they belong to.

use serde_json::Value;

use super::{
    spec::{escape, Document, In, Operation, Parameter, PathItem, Schema, Segment, StatusKey},
    violation::{Place, Subject, Unchecked, Violation, ViolationKind},
};
use crate::{
    model::{HeaderValues, StringMatcher, Stub},
    request::LoggedRequest,
};

/// The json-unit placeholders of `equalToJson`: a value the pattern does not fix.
const PLACEHOLDERS: [&str; 4] = [
    "${json-unit.ignore}",
    "${json-unit.any-string}",
    "${json-unit.any-number}",
    "${json-unit.any-boolean}",
];

/// Header parameters OpenAPI says to ignore: they are described elsewhere.
const IGNORED_HEADERS: [&str; 3] = ["accept", "content-type", "authorization"];

/// What one stub or request broke, and what could not be checked.
pub(crate) struct Findings {
    pub subject: Subject,
    pub operation: Option<String>,
    pub violations: Vec<Violation>,
    pub unchecked: Vec<Unchecked>,
}

impl Findings {
    pub fn new(subject: Subject) -> Self {
        Findings {
            subject,
            operation: None,
            violations: Vec::new(),
            unchecked: Vec::new(),
        }
    }

    fn push(&mut self, place: Place, pointer: String, kind: ViolationKind, message: String) {
        self.violations.push(Violation {
            subject: self.subject.clone(),
            operation: self.operation.clone(),
            place,
            pointer,
            kind,
            message,
        });
    }

    fn skip(&mut self, reason: String) {
        self.unchecked.push(Unchecked {
            subject: self.subject.clone(),
            reason,
        });
    }
}

/// How a body's schema errors are read.
#[derive(Clone, Copy, Default)]
struct Leniency {
    /// A partial pattern (`ignoreExtraElements`): missing fields are fine.
    partial: bool,
    /// A templated response: `{{…}}` strings become other values.
    templated: bool,
    /// A pattern: json-unit placeholders stand for values.
    placeholders: bool,
}

/// Validates `instance` against `schema`, each error a violation at `place`.
fn validate(
    schema: &Schema,
    instance: &Value,
    place: &Place,
    leniency: Leniency,
    out: &mut Findings,
) {
    let validator = match schema.validator() {
        Ok(validator) => validator,
        Err(message) => {
            out.skip(format!("{place}: {message}"));
            return;
        }
    };
    let mut found = Vec::new();
    for error in validator.iter_errors(instance) {
        collect(&error, &mut found);
    }
    for (pointer, kind, message) in found {
        let value = instance.pointer(&pointer);
        let stands_for_something = value.and_then(Value::as_str).is_some_and(|text| {
            (leniency.placeholders && PLACEHOLDERS.contains(&text))
                || (leniency.templated && text.contains("{{"))
        });
        if stands_for_something && !matches!(kind, ViolationKind::NotAllowed) {
            continue;
        }
        if leniency.partial && kind == ViolationKind::Required {
            continue;
        }
        out.push(place.clone(), pointer, kind, message);
    }
}

/// One jsonschema error as violations: pointer, kind, message. `anyOf`/`oneOf` errors where one
/// branch is the only one that fits the value's type (a `nullable` field, a union of an object
/// and `null`) are read as that branch's errors.
fn collect(
    error: &jsonschema::ValidationError<'_>,
    out: &mut Vec<(String, ViolationKind, String)>,
) {
    use jsonschema::error::ValidationErrorKind as K;
    let at = error.instance_path().as_str().to_string();
    match error.kind() {
        K::Required { property } => {
            let name = property
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| property.to_string());
            let pointer = format!("{at}/{}", escape(&name));
            let message = format!("`{pointer}` is required");
            out.push((pointer, ViolationKind::Required, message));
        }
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            let keyword = error.kind().keyword().to_string();
            for name in unexpected {
                let pointer = format!("{at}/{}", escape(name));
                let message = format!("`{pointer}` is not allowed: {keyword} is false");
                out.push((pointer, ViolationKind::NotAllowed, message));
            }
        }
        K::AnyOf { context } | K::OneOfNotValid { context } => {
            let fitting: Vec<&Vec<jsonschema::ValidationError<'static>>> = context
                .iter()
                .filter(|branch| {
                    !branch.iter().all(|e| {
                        matches!(e.kind(), K::Type { .. })
                            && e.instance_path().as_str() == at.as_str()
                    })
                })
                .collect();
            if let [branch] = fitting.as_slice() {
                for inner in branch.iter() {
                    collect(inner, out);
                }
            } else {
                out.push((at, ViolationKind::Constraint, error.to_string()));
            }
        }
        K::Type { .. } => out.push((at, ViolationKind::Type, error.to_string())),
        K::Enum { .. } | K::Constant { .. } => {
            out.push((at, ViolationKind::Enum, error.to_string()))
        }
        K::Format { .. } => out.push((at, ViolationKind::Format, error.to_string())),
        _ => out.push((at, ViolationKind::Constraint, error.to_string())),
    }
}

/// A parameter's text as the JSON value its schema expects (`"42"` as `42` for an integer).
fn coerce(text: &str, schema: &Value) -> Value {
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null"),
        _ => None,
    };
    match kind {
        Some("integer") => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(text)),
        Some("number") => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::from(text)),
        Some("boolean") => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::from(text),
        },
        Some("array") => {
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            Value::Array(text.split(',').map(|t| coerce(t, &items)).collect())
        }
        _ => Value::from(text),
    }
}

fn check_value(parameter: &Parameter, text: &str, place: Place, out: &mut Findings) {
    let Some(schema) = &parameter.schema else {
        return;
    };
    let value = coerce(text, &schema.json);
    let before = out.violations.len();
    validate(schema, &value, &place, Leniency::default(), out);
    for violation in &mut out.violations[before..] {
        violation.kind = ViolationKind::InvalidParameter;
        if !violation.message.contains(text) {
            violation.message = format!("{text:?}: {}", violation.message);
        }
    }
}

/// The media type without parameters, lower case.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// The declared media type that fits `content_type`: exact, then `type/*`, then `*/*`.
fn media<'s>(
    content: &'s [(String, Option<Schema>)],
    content_type: &str,
) -> Option<&'s (String, Option<Schema>)> {
    let wanted = essence(content_type);
    let family = wanted.split('/').next().unwrap_or("");
    content
        .iter()
        .find(|(m, _)| *m == wanted)
        .or_else(|| content.iter().find(|(m, _)| *m == format!("{family}/*")))
        .or_else(|| content.iter().find(|(m, _)| m == "*/*"))
}

fn first_json(content: &[(String, Option<Schema>)]) -> Option<&(String, Option<Schema>)> {
    content.iter().find(|(m, _)| is_json(m))
}

fn media_list(content: &[(String, Option<Schema>)]) -> String {
    content
        .iter()
        .map(|(m, _)| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn operation_label(item: &PathItem, operation: &Operation) -> String {
    format!("{} {}", operation.method, item.template)
}

/// How a stub's pattern names its URL.
enum Shape {
    Exact {
        path: String,
        query: Vec<(String, String)>,
    },
    Template(String),
    Regex {
        regex: String,
        query: bool,
    },
    Prefix(String),
    Any,
}

fn shape(stub: &Stub) -> Shape {
    let r = &stub.request;
    if let Some(path) = &r.url_path {
        return Shape::Exact {
            path: path.clone(),
            query: Vec::new(),
        };
    }
    if let Some(url) = &r.url {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        return Shape::Exact {
            path: path.to_string(),
            query: form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        };
    }
    if let Some(template) = &r.url_path_template {
        return Shape::Template(template.clone());
    }
    if let Some(regex) = &r.url_path_pattern {
        return Shape::Regex {
            regex: regex.clone(),
            query: false,
        };
    }
    if let Some(regex) = &r.url_pattern {
        return Shape::Regex {
            regex: regex.clone(),
            query: true,
        };
    }
    if let Some(prefix) = &r.url_path_prefix {
        return Shape::Prefix(prefix.clone());
    }
    Shape::Any
}

/// A path the spec declares, and the values a stub or request gives its variables.
type Candidate<'d> = (&'d PathItem, Vec<(String, String)>);

enum Paths<'d> {
    Found(Vec<Candidate<'d>>),
    /// No path of the spec can fit: a violation.
    None(String),
    /// Could not decide.
    Undecided(String),
}

/// `path` with each of the servers' base paths taken off, and as is.
fn without_base<'p>(doc: &Document, path: &'p str) -> Vec<&'p str> {
    let mut paths = vec![path];
    for base in &doc.base_paths {
        if let Some(rest) = path.strip_prefix(base.as_str()) {
            if rest.starts_with('/') {
                paths.push(rest);
            }
        }
    }
    paths
}

/// The spec path a concrete path is: the one with the most literal segments.
fn concrete<'d>(doc: &'d Document, path: &str) -> Option<Candidate<'d>> {
    let mut best: Option<(usize, Candidate<'d>)> = None;
    for path in without_base(doc, path) {
        for item in &doc.paths {
            if let Some((literals, values)) = item.fit(path) {
                if best.as_ref().is_none_or(|(b, _)| literals > *b) {
                    best = Some((literals, (item, values)));
                }
            }
        }
    }
    best.map(|(_, candidate)| candidate)
}

fn declared_paths(doc: &Document) -> String {
    let mut list: Vec<&str> = doc
        .paths
        .iter()
        .map(|p| p.template.as_str())
        .take(8)
        .collect();
    if doc.paths.len() > 8 {
        list.push("…");
    }
    list.join(", ")
}

/// Values to put in a path variable when testing a regex: the parameter's own, then common
/// shapes of ids.
fn samples(item: &PathItem, name: &str) -> Vec<String> {
    let mut samples = Vec::new();
    for operation in &item.operations {
        for parameter in &operation.parameters {
            if parameter.location == In::Path && parameter.name == name {
                if let Some(schema) = &parameter.schema {
                    for key in ["example", "default"] {
                        if let Some(value) = schema.json.get(key) {
                            samples.push(text_of(value));
                        }
                    }
                    if let Some(Value::Array(values)) = schema.json.get("enum") {
                        samples.extend(values.iter().map(text_of));
                    }
                }
            }
        }
    }
    samples.extend(
        [
            "1",
            "42",
            "abc",
            "ch_1",
            "a1b2c3",
            "00000000-0000-0000-0000-000000000000",
            "2024-01-01",
        ]
        .map(String::from),
    );
    samples
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Concrete paths of `item`, one per sample.
fn instances(item: &PathItem, base: &str) -> Vec<String> {
    let rounds = item
        .segments
        .iter()
        .filter_map(|s| match s {
            Segment::Variable(name) => Some(samples(item, name).len()),
            Segment::Mixed(_, names) => names.first().map(|n| samples(item, n).len()),
            Segment::Literal(_) => None,
        })
        .max()
        .unwrap_or(1);
    (0..rounds)
        .map(|i| {
            let mut path = base.to_string();
            for segment in &item.segments {
                path.push('/');
                match segment {
                    Segment::Literal(text) => path.push_str(text),
                    Segment::Variable(name) => {
                        let s = samples(item, name);
                        path.push_str(&s[i.min(s.len() - 1)]);
                    }
                    Segment::Mixed(_, _) => path.push('x'),
                }
            }
            path
        })
        .collect()
}

/// The literal start of a regular expression: every string it matches starts with it.
fn literal_prefix(regex: &str) -> String {
    let mut prefix = String::new();
    let mut chars = regex.trim_start_matches('^').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if "./-_?*+()[]{}|^$\\".contains(e) => prefix.push(e),
                _ => break,
            },
            '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '$' => {
                // A quantifier makes the last character optional.
                if matches!(c, '*' | '?' | '{') {
                    prefix.pop();
                }
                break;
            }
            other => prefix.push(other),
        }
    }
    prefix
}

/// Whether some concrete path of `item` (under `base`) starts with `prefix`.
fn could_start(item: &PathItem, base: &str, prefix: &str) -> bool {
    enum Tok {
        Char(char),
        Var,
    }
    let mut toks: Vec<Tok> = base.chars().map(Tok::Char).collect();
    for segment in &item.segments {
        toks.push(Tok::Char('/'));
        match segment {
            Segment::Literal(text) => toks.extend(text.chars().map(Tok::Char)),
            Segment::Variable(_) | Segment::Mixed(_, _) => toks.push(Tok::Var),
        }
    }
    fn go(t: &[Tok], p: &[char]) -> bool {
        if p.is_empty() {
            return true;
        }
        match t.first() {
            None => false,
            Some(Tok::Char(c)) => *c == p[0] && go(&t[1..], &p[1..]),
            Some(Tok::Var) => {
                for k in 1..=p.len() {
                    if p[k - 1] == '/' {
                        break;
                    }
                    if k == p.len() || go(&t[1..], &p[k..]) {
                        return true;
                    }
                }
                false
            }
        }
    }
    let prefix: Vec<char> = prefix.chars().collect();
    go(&toks, &prefix)
}

fn bases(doc: &Document) -> Vec<&str> {
    let mut bases = vec![""];
    bases.extend(doc.base_paths.iter().map(String::as_str));
    bases
}

/// None of the spec's paths `what` ("fits `/x`"): said with the paths it does declare.
fn no_path<'d>(doc: &Document, what: String) -> Paths<'d> {
    Paths::None(format!(
        "no path of the spec {what} (it declares {})",
        declared_paths(doc)
    ))
}

/// `found`, or [`no_path`] when it is empty.
fn found_or_no_path<'d>(
    doc: &Document,
    found: Vec<Candidate<'d>>,
    what: impl FnOnce() -> String,
) -> Paths<'d> {
    if found.is_empty() {
        no_path(doc, what())
    } else {
        Paths::Found(found)
    }
}

fn paths_for<'d>(doc: &'d Document, shape: &Shape) -> Paths<'d> {
    match shape {
        Shape::Any => Paths::Undecided("matches any URL: no operation to check it against".into()),
        Shape::Exact { path, .. } => match concrete(doc, path) {
            Some(candidate) => Paths::Found(vec![candidate]),
            None => no_path(doc, format!("fits `{path}`")),
        },
        Shape::Template(template) => {
            let stub = super::spec::segments(template);
            let mut found = Vec::new();
            for base in bases(doc) {
                let stub: Vec<&Segment> = match base {
                    "" => stub.iter().collect(),
                    base => {
                        let base = super::spec::segments(base);
                        if stub.len() < base.len() || stub[..base.len()] != base[..] {
                            continue;
                        }
                        stub[base.len()..].iter().collect()
                    }
                };
                for item in &doc.paths {
                    if item.segments.len() != stub.len() {
                        continue;
                    }
                    let mut values = Vec::new();
                    let fits =
                        item.segments
                            .iter()
                            .zip(&stub)
                            .all(|(spec, stub)| match (spec, stub) {
                                (Segment::Literal(a), Segment::Literal(b)) => a == b,
                                (Segment::Variable(name), Segment::Literal(value)) => {
                                    values.push((name.clone(), value.clone()));
                                    true
                                }
                                (Segment::Literal(_), _) => false,
                                _ => true,
                            });
                    if fits
                        && !found
                            .iter()
                            .any(|(i, _): &Candidate| std::ptr::eq(*i, item))
                    {
                        found.push((item, values));
                    }
                }
            }
            found_or_no_path(doc, found, || format!("fits template `{template}`"))
        }
        Shape::Regex { regex, query } => {
            let source = if *query {
                regex.split("\\?").next().unwrap_or(regex).to_string()
            } else {
                regex.clone()
            };
            let anchored = if *query && source.len() != regex.len() {
                format!("^(?:{source})")
            } else {
                format!("^(?:{source})$")
            };
            let Ok(compiled) = regex::Regex::new(&anchored) else {
                return Paths::Undecided(format!("url regex `{regex}` could not be read"));
            };
            let mut found = Vec::new();
            for item in &doc.paths {
                let fits = bases(doc)
                    .into_iter()
                    .any(|base| instances(item, base).iter().any(|p| compiled.is_match(p)));
                if fits {
                    found.push((item, Vec::new()));
                }
            }
            if !found.is_empty() {
                return Paths::Found(found);
            }
            let prefix = literal_prefix(&source);
            let possible = doc.paths.iter().any(|item| {
                bases(doc)
                    .into_iter()
                    .any(|base| could_start(item, base, &prefix))
            });
            if possible {
                Paths::Undecided(format!(
                    "url regex `{regex}` could not be tied to a path of the spec \
                     (none of their sample paths matches it)"
                ))
            } else {
                no_path(
                    doc,
                    format!("can match url regex `{regex}`: none starts with `{prefix}`"),
                )
            }
        }
        Shape::Prefix(prefix) => {
            let found: Vec<Candidate> = doc
                .paths
                .iter()
                .filter(|item| {
                    bases(doc)
                        .into_iter()
                        .any(|base| could_start(item, base, prefix))
                })
                .map(|item| (item, Vec::new()))
                .collect();
            found_or_no_path(doc, found, || format!("starts with `{prefix}`"))
        }
    }
}

/// Checks one stub: its path and method, then against each operation it may be, keeping the
/// operation it fits best (all of them, for a regex or prefix that covers several).
pub(crate) fn check_stub(doc: &Document, stub: &Stub, out: &mut Findings) {
    let shape = shape(stub);
    let candidates = match paths_for(doc, &shape) {
        Paths::Found(candidates) => candidates,
        Paths::None(message) => {
            out.push(
                Place::Path,
                String::new(),
                ViolationKind::UnknownPath,
                message,
            );
            return;
        }
        Paths::Undecided(reason) => {
            out.skip(reason);
            return;
        }
    };
    let method = stub
        .request
        .method
        .as_deref()
        .filter(|m| !m.eq_ignore_ascii_case("ANY"));
    let mut operations = Vec::new();
    for (item, values) in &candidates {
        for operation in &item.operations {
            if method.is_none_or(|m| operation.method.eq_ignore_ascii_case(m)) {
                operations.push((*item, operation, values));
            }
        }
    }
    if operations.is_empty() {
        let (item, _) = candidates[0];
        let method = method.unwrap_or("ANY");
        out.push(
            Place::Method,
            String::new(),
            ViolationKind::UnknownMethod,
            format!(
                "the spec declares {} for `{}`, not {method}",
                item.methods(),
                item.template
            ),
        );
        return;
    }
    let mut best: Option<Findings> = None;
    for (item, operation, values) in operations {
        let mut findings = Findings::new(out.subject.clone());
        findings.operation = Some(operation_label(item, operation));
        check_stub_operation(stub, &shape, operation, values, &mut findings);
        let better = best
            .as_ref()
            .is_none_or(|b| findings.violations.len() < b.violations.len());
        if better {
            let done = findings.violations.is_empty();
            best = Some(findings);
            if done {
                break;
            }
        }
    }
    if let Some(best) = best {
        out.violations.extend(best.violations);
        out.unchecked.extend(best.unchecked);
    }
}

fn param<'o>(operation: &'o Operation, location: In, name: &str) -> Option<&'o Parameter> {
    operation.parameters.iter().find(|p| {
        p.location == location
            && if location == In::Header {
                p.name.eq_ignore_ascii_case(name)
            } else {
                p.name == name
            }
    })
}

fn declared(operation: &Operation, location: In) -> String {
    let names: Vec<&str> = operation
        .parameters
        .iter()
        .filter(|p| p.location == location)
        .map(|p| p.name.as_str())
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A matcher's value for checking: `equalTo` (not case-insensitive).
fn fixed(matcher: &StringMatcher) -> Option<&str> {
    matcher
        .equal_to
        .as_deref()
        .filter(|_| matcher.case_insensitive != Some(true))
}

fn check_stub_operation(
    stub: &Stub,
    shape: &Shape,
    operation: &Operation,
    values: &[(String, String)],
    out: &mut Findings,
) {
    let request = &stub.request;
    // Path parameters: from the concrete path, and `pathParameters` tests on a template.
    let mut path_values: Vec<(String, String)> = values.to_vec();
    for (name, matcher) in &request.path_parameters {
        if let Some(value) = fixed(matcher) {
            path_values.push((name.clone(), value.to_string()));
        }
    }
    for (name, value) in &path_values {
        if let Some(parameter) = param(operation, In::Path, name) {
            check_value(parameter, value, Place::PathParameter(name.clone()), out);
        }
    }
    // Query parameters.
    let mut query: Vec<(String, Option<String>, bool)> = Vec::new();
    if let Shape::Exact { query: pairs, .. } = shape {
        query.extend(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone()), false)),
        );
    }
    for (name, matcher) in &request.query_parameters {
        query.push((
            name.clone(),
            fixed(matcher).map(String::from),
            matcher.absent == Some(true),
        ));
    }
    for (name, value, absent) in query {
        let place = Place::Query(name.clone());
        match param(operation, In::Query, &name) {
            None if !absent => out.push(
                place,
                String::new(),
                ViolationKind::UnknownParameter,
                format!(
                    "the operation declares no query parameter `{name}` (it declares: {})",
                    declared(operation, In::Query)
                ),
            ),
            None => {}
            Some(parameter) if absent && parameter.required => out.push(
                place,
                String::new(),
                ViolationKind::MissingParameter,
                "is required by the spec; the stub matches only requests without it".into(),
            ),
            Some(parameter) => {
                if let Some(value) = value {
                    check_value(parameter, &value, place, out);
                }
            }
        }
    }
    // Headers the operation declares.
    for (name, matcher) in &request.headers {
        let Some(parameter) = param(operation, In::Header, name) else {
            continue;
        };
        let place = Place::RequestHeader(name.clone());
        if matcher.absent == Some(true) && parameter.required {
            out.push(
                place,
                String::new(),
                ViolationKind::MissingParameter,
                "is required by the spec; the stub matches only requests without it".into(),
            );
        } else if let Some(value) = fixed(matcher) {
            check_value(parameter, value, place, out);
        }
    }
    // JSON body patterns.
    let content_type = request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .and_then(|(_, m)| fixed(m));
    for pattern in &request.body_patterns {
        let Some(json) = &pattern.equal_to_json else {
            continue;
        };
        let json = match json {
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(json) => json,
                Err(_) => continue,
            },
            json => json.clone(),
        };
        let Some(body) = &operation.request_body else {
            out.push(
                Place::RequestBody,
                String::new(),
                ViolationKind::UnexpectedBody,
                "the operation takes no request body; the stub's pattern expects a JSON one".into(),
            );
            continue;
        };
        let entry = match content_type {
            Some(content_type) => media(&body.content, content_type),
            None => first_json(&body.content),
        };
        let Some((media_type, schema)) = entry else {
            out.push(
                Place::RequestBody,
                String::new(),
                ViolationKind::UndeclaredContentType,
                format!(
                    "the stub expects a {} body; the operation takes {}",
                    content_type.unwrap_or("JSON"),
                    media_list(&body.content)
                ),
            );
            continue;
        };
        if let (Some(schema), true) = (schema, is_json(media_type) || media_type.ends_with('*')) {
            let leniency = Leniency {
                partial: pattern.ignore_extra_elements == Some(true),
                templated: false,
                placeholders: true,
            };
            validate(schema, &json, &Place::RequestBody, leniency, out);
        }
    }
    check_response(stub, operation, out);
}

fn check_response(stub: &Stub, operation: &Operation, out: &mut Findings) {
    let response = &stub.response;
    if let Some(fault) = &response.fault {
        out.skip(format!("answers with a fault ({fault:?}), not a response"));
        return;
    }
    if let Some(upstream) = &response.proxy_base_url {
        out.skip(format!("proxies to {upstream}, which answers for it"));
        return;
    }
    let status = response.status;
    let declared = operation
        .responses
        .iter()
        .find(|(k, _)| *k == StatusKey::Exact(status))
        .or_else(|| {
            operation
                .responses
                .iter()
                .find(|(k, _)| *k == StatusKey::Range(status / 100))
        })
        .or_else(|| {
            operation
                .responses
                .iter()
                .find(|(k, _)| *k == StatusKey::Default)
        });
    let Some((_, spec)) = declared else {
        let list: Vec<String> = operation
            .responses
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        out.push(
            Place::Response(status),
            String::new(),
            ViolationKind::UndeclaredStatus,
            format!(
                "the operation declares {} (and no `default`), not {status}",
                list.join(", ")
            ),
        );
        return;
    };
    let templated = response
        .transformers
        .iter()
        .any(|t| t == crate::model::TEMPLATE_TRANSFORMER);
    let header = |name: &str| -> Option<&HeaderValues> {
        response
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    for declared in &spec.headers {
        if declared.name.eq_ignore_ascii_case("content-type") {
            continue;
        }
        let place = Place::ResponseHeader(status, declared.name.clone());
        match header(&declared.name) {
            None if declared.required => out.push(
                place,
                String::new(),
                ViolationKind::MissingParameter,
                "is required by the spec; the stub's response does not set it".into(),
            ),
            None => {}
            Some(values) => {
                for value in values.as_slice() {
                    if !(templated && value.contains("{{")) {
                        check_value(declared, value, place.clone(), out);
                    }
                }
            }
        }
    }
    // The body.
    let content_type = header("content-type")
        .and_then(|v| v.as_slice().first())
        .map(|v| essence(v));
    let place = Place::ResponseBody(status);
    enum Body<'a> {
        Json(&'a Value),
        Text(&'a str),
        Bytes,
        None,
    }
    let body = if let Some(json) = &response.json_body {
        Body::Json(json)
    } else if let Some(text) = response.body.as_deref().filter(|t| !t.is_empty()) {
        Body::Text(text)
    } else if response
        .base64_body
        .as_deref()
        .is_some_and(|b| !b.is_empty())
    {
        Body::Bytes
    } else if let Some(file) = &response.body_file_name {
        out.skip(format!(
            "{place}: from file {file:?} on the server, not read here"
        ));
        return;
    } else {
        Body::None
    };
    if spec.content.is_empty() {
        if !matches!(body, Body::None) {
            out.push(
                place,
                String::new(),
                ViolationKind::UnexpectedBody,
                format!("the spec declares no body for {status}; the stub sends one"),
            );
        }
        return;
    }
    if matches!(body, Body::None) {
        out.push(
            place,
            String::new(),
            ViolationKind::MissingBody,
            format!(
                "the spec declares a body ({}); the stub sends none",
                media_list(&spec.content)
            ),
        );
        return;
    }
    let entry = match &content_type {
        Some(content_type) => media(&spec.content, content_type),
        None => first_json(&spec.content).or(spec.content.first()),
    };
    let Some((media_type, schema)) = entry else {
        out.push(
            place,
            String::new(),
            ViolationKind::UndeclaredContentType,
            format!(
                "content type `{}`; the spec declares {}",
                content_type.unwrap_or_default(),
                media_list(&spec.content)
            ),
        );
        return;
    };
    let (Some(schema), true) = (schema, is_json(media_type) || media_type.ends_with('*')) else {
        return;
    };
    let parsed;
    let instance = match body {
        Body::Json(json) => json,
        Body::Text(text) => match serde_json::from_str::<Value>(text) {
            Ok(json) => {
                parsed = json;
                &parsed
            }
            // A wildcard media type (`*/*`) takes what is not JSON too.
            Err(_) if !is_json(media_type) => return,
            Err(_) if templated => {
                out.skip(format!(
                    "{place}: a template that is not JSON until rendered"
                ));
                return;
            }
            Err(e) => {
                out.push(
                    place,
                    String::new(),
                    ViolationKind::InvalidJson,
                    format!("declared {media_type}, and is not JSON: {e}"),
                );
                return;
            }
        },
        Body::Bytes | Body::None if !is_json(media_type) => return,
        Body::Bytes | Body::None => {
            out.push(
                place,
                String::new(),
                ViolationKind::InvalidJson,
                format!("declared {media_type}; the stub sends bytes"),
            );
            return;
        }
    };
    let leniency = Leniency {
        templated,
        ..Leniency::default()
    };
    validate(schema, instance, &place, leniency, out);
}

/// Checks one request the stub received.
pub(crate) fn check_request(doc: &Document, request: &LoggedRequest, out: &mut Findings) {
    let path = request.url.split('?').next().unwrap_or("");
    let Some((item, values)) = concrete(doc, path) else {
        out.push(
            Place::Path,
            String::new(),
            ViolationKind::UnknownPath,
            format!(
                "no path of the spec fits `{path}` (it declares {})",
                declared_paths(doc)
            ),
        );
        return;
    };
    let Some(operation) = item.operation(&request.method) else {
        out.push(
            Place::Method,
            String::new(),
            ViolationKind::UnknownMethod,
            format!(
                "the spec declares {} for `{}`, not {}",
                item.methods(),
                item.template,
                request.method
            ),
        );
        return;
    };
    out.operation = Some(operation_label(item, operation));
    for (name, value) in &values {
        if let Some(parameter) = param(operation, In::Path, name) {
            check_value(parameter, value, Place::PathParameter(name.clone()), out);
        }
    }
    for (name, values) in &request.query_params {
        let place = Place::Query(name.clone());
        match param(operation, In::Query, name) {
            Some(parameter) => {
                for value in &values.values {
                    check_value(parameter, value, place.clone(), out);
                }
            }
            None => out.push(
                place,
                String::new(),
                ViolationKind::UnknownParameter,
                format!(
                    "the operation declares no query parameter `{name}` (it declares: {})",
                    declared(operation, In::Query)
                ),
            ),
        }
    }
    for parameter in &operation.parameters {
        let missing = |place: Place, out: &mut Findings| {
            out.push(
                place,
                String::new(),
                ViolationKind::MissingParameter,
                "is required by the spec; the request has none".into(),
            )
        };
        match parameter.location {
            In::Query
                if parameter.required && !request.query_params.contains_key(&parameter.name) =>
            {
                missing(Place::Query(parameter.name.clone()), out);
            }
            In::Header => {
                let lower = parameter.name.to_ascii_lowercase();
                if IGNORED_HEADERS.contains(&lower.as_str()) {
                    continue;
                }
                let place = Place::RequestHeader(parameter.name.clone());
                let values: Vec<&str> = request
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(&parameter.name))
                    .map(|(_, v)| v.as_str())
                    .collect();
                if values.is_empty() && parameter.required {
                    missing(place.clone(), out);
                }
                for value in values {
                    check_value(parameter, value, place.clone(), out);
                }
            }
            _ => {}
        }
    }
    // The body.
    let content_type = request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| essence(v));
    let place = Place::RequestBody;
    let Some(body) = &operation.request_body else {
        if !request.body.is_empty() {
            out.push(
                place,
                String::new(),
                ViolationKind::UnexpectedBody,
                "the operation takes no request body; the request has one".into(),
            );
        }
        return;
    };
    if request.body.is_empty() {
        if body.required {
            out.push(
                place,
                String::new(),
                ViolationKind::MissingBody,
                format!(
                    "the spec requires a body ({}); the request has none",
                    media_list(&body.content)
                ),
            );
        }
        return;
    }
    let parsed = serde_json::from_str::<Value>(&request.body);
    let entry = match &content_type {
        Some(content_type) => media(&body.content, content_type),
        None if parsed.is_ok() => first_json(&body.content),
        None => None,
    };
    let Some((media_type, schema)) = entry else {
        out.push(
            place,
            String::new(),
            ViolationKind::UndeclaredContentType,
            format!(
                "content type `{}`; the operation takes {}",
                content_type.as_deref().unwrap_or("(none)"),
                media_list(&body.content)
            ),
        );
        return;
    };
    let (Some(schema), true) = (schema, is_json(media_type) || media_type.ends_with('*')) else {
        return;
    };
    match parsed {
        Ok(json) => validate(schema, &json, &place, Leniency::default(), out),
        // A wildcard media type (`*/*`) takes what is not JSON too.
        Err(_) if !is_json(media_type) => {}
        Err(e) => out.push(
            place,
            String::new(),
            ViolationKind::InvalidJson,
            format!("declared {media_type}, and is not JSON: {e}"),
        ),
    }
}
