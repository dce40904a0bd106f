//! Reading an OpenAPI 3.0 or 3.1 document (YAML or JSON) into the little the checks need: paths,
//! operations, parameters, bodies, responses and their schemas, local `$ref`s resolved.
//!
//! The document is walked as plain JSON rather than through a typed OpenAPI model: the typed
//! crates each read one version (`openapiv3` 3.0, `oas3` 3.1), and the checks need only these
//! few fields of either.

use std::{
    path::Path,
    sync::{Arc, OnceLock},
};

use serde_json::{Map, Value};

use crate::error::StubError;

/// Which OpenAPI: its schemas are JSON Schema draft 4 with extensions (3.0) or 2020-12 (3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V30,
    V31,
}

pub(crate) const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One segment of a path template.
#[derive(Clone, Debug)]
pub(crate) enum Segment {
    Literal(String),
    /// `{name}`, or a segment mixing text and variables (`{id}.json`), kept as a regex.
    Variable(String),
    Mixed(regex::Regex, Vec<String>),
}

impl PartialEq for Segment {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Segment::Literal(a), Segment::Literal(b)) => a == b,
            (Segment::Variable(a), Segment::Variable(b)) => a == b,
            (Segment::Mixed(a, _), Segment::Mixed(b, _)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

#[derive(Debug)]
pub(crate) struct PathItem {
    pub template: String,
    pub segments: Vec<Segment>,
    pub operations: Vec<Operation>,
}

#[derive(Debug)]
pub(crate) struct Operation {
    /// Upper case.
    pub method: String,
    pub parameters: Vec<Parameter>,
    pub request_body: Option<Body>,
    pub responses: Vec<(StatusKey, ResponseSpec)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum In {
    Path,
    Query,
    Header,
    Cookie,
}

#[derive(Debug)]
pub(crate) struct Parameter {
    pub name: String,
    pub location: In,
    pub required: bool,
    pub schema: Option<Schema>,
}

#[derive(Debug)]
pub(crate) struct Body {
    pub required: bool,
    /// Media type (lower case) and its schema.
    pub content: Vec<(String, Option<Schema>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusKey {
    Exact(u16),
    /// `2XX`: the first digit.
    Range(u16),
    Default,
}

impl std::fmt::Display for StatusKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusKey::Exact(code) => write!(f, "{code}"),
            StatusKey::Range(digit) => write!(f, "{digit}XX"),
            StatusKey::Default => write!(f, "default"),
        }
    }
}

#[derive(Debug)]
pub(crate) struct ResponseSpec {
    pub headers: Vec<Parameter>,
    pub content: Vec<(String, Option<Schema>)>,
}

/// A schema of the document: where it is (a JSON pointer into the document, for errors), the
/// schema as converted to plain JSON Schema, and its validator, compiled when first used.
pub(crate) struct Schema {
    pub at: String,
    pub direction: Direction,
    pub json: Value,
    pub compiled: OnceLock<Result<jsonschema::Validator, String>>,
    pub context: Arc<Context>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema").field("at", &self.at).finish()
    }
}

/// What every schema's validator shares: the version and the converted component schemas its
/// `$ref`s point into.
#[derive(Debug)]
pub(crate) struct Context {
    pub version: Version,
    /// The component schemas as requests see them.
    pub request_components: Value,
    /// As responses see them.
    pub response_components: Value,
}

impl Schema {
    /// The validator, compiled once; the error names the schema's place in the spec.
    pub fn validator(&self) -> Result<&jsonschema::Validator, String> {
        self.compiled
            .get_or_init(|| {
                let components = match self.direction {
                    Direction::Request => &self.context.request_components,
                    Direction::Response => &self.context.response_components,
                };
                let root = serde_json::json!({
                    "allOf": [self.json],
                    "components": {"schemas": components},
                });
                let options = match self.context.version {
                    Version::V30 => jsonschema::draft4::options(),
                    Version::V31 => jsonschema::draft202012::options(),
                };
                options
                    .should_validate_formats(true)
                    .should_ignore_unknown_formats(true)
                    .build(&root)
                    .map_err(|e| format!("`{}` is not a valid schema: {e}", self.at))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// The document read and resolved.
#[derive(Debug)]
pub(crate) struct Document {
    pub version_text: String,
    pub paths: Vec<PathItem>,
    /// The path parts of the `servers` URLs (`/api` of `https://x/api`), tried as prefixes.
    pub base_paths: Vec<String>,
}

/// A problem with the document: what, and where (a JSON pointer into it, and a text to find
/// its line by).
pub(crate) struct Problem {
    pub message: String,
    pub fix: &'static str,
    pub near: Option<String>,
}

impl Problem {
    /// The first line of `text` holding what the problem is near.
    pub fn line(&self, text: &str) -> Option<usize> {
        let near = self.near.as_deref()?;
        text.lines()
            .position(|line| line.contains(near))
            .map(|i| i + 1)
    }

    fn near(mut self, text: &str) -> Problem {
        self.near = Some(text.to_string());
        self
    }
}

type Read<T> = Result<T, Problem>;

fn problem(message: String, fix: &'static str) -> Problem {
    Problem {
        message,
        fix,
        near: None,
    }
}

const FIX_STRUCTURE: &str =
    "correct that part of the spec (see https://spec.openapis.org/oas/v3.1.0 \
     or v3.0.3); a linter such as `redocly lint` points at such mistakes";

/// Parses YAML or JSON text into JSON (YAML keys such as `201` become strings); the error has a
/// line when the parser knows it.
pub(crate) fn parse_text(text: &str, json: bool) -> Result<Value, (String, Option<usize>)> {
    if json {
        return serde_json::from_str(text)
            .map_err(|e| (format!("is not valid JSON: {e}"), Some(e.line())));
    }
    let mut yaml: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
        (
            format!("is not valid YAML: {e}"),
            e.location().map(|l| l.line()),
        )
    })?;
    yaml.apply_merge()
        .map_err(|e| (format!("has a bad YAML merge key: {e}"), None))?;
    yaml_to_json(yaml).map_err(|m| (m, None))
}

fn yaml_to_json(yaml: serde_norway::Value) -> Result<Value, String> {
    use serde_norway::Value as Y;
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => return Err(format!("has a mapping key that is not text: {other:?}")),
                };
                object.insert(key, yaml_to_json(value)?);
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value)?,
    })
}

/// Escapes one JSON pointer token.
pub(crate) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

impl Document {
    pub fn read(doc: &Value) -> Read<Document> {
        let (version, version_text) = match (doc.get("openapi"), doc.get("swagger")) {
            (Some(Value::String(v)), _) if v.starts_with("3.0") => (Version::V30, v.clone()),
            (Some(Value::String(v)), _) if v.starts_with("3.1") => (Version::V31, v.clone()),
            (Some(v), _) => {
                return Err(problem(
                    format!("`/openapi` is {v}: only OpenAPI 3.0.x and 3.1.x are supported"),
                    "give an OpenAPI 3.0 or 3.1 document",
                ))
            }
            (None, Some(_)) => {
                return Err(problem(
                    "is a Swagger 2.0 document: only OpenAPI 3.0.x and 3.1.x are supported".into(),
                    "convert it to OpenAPI 3 (e.g. `npx swagger2openapi spec.yaml`)",
                ))
            }
            (None, None) => {
                return Err(problem(
                    "has no `openapi` field: is it an OpenAPI document?".into(),
                    "give an OpenAPI 3.0 or 3.1 document, which starts with `openapi: 3.x.y`",
                ))
            }
        };
        check_refs(doc, doc, &mut String::new())?;
        let components = doc
            .pointer("/components/schemas")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        let conversion = |direction| Conversion {
            version,
            direction,
            components: &components,
        };
        let context = Arc::new(Context {
            version,
            request_components: conversion(Direction::Request).convert(components.clone()),
            response_components: conversion(Direction::Response).convert(components.clone()),
        });
        let reader = Reader {
            doc,
            context,
            components: &components,
        };
        let mut paths = Vec::new();
        if let Some(items) = doc.get("paths") {
            let items = items
                .as_object()
                .ok_or_else(|| problem("`/paths` is not an object".into(), FIX_STRUCTURE))?;
            for (template, item) in items {
                if !template.starts_with('/') {
                    return Err(problem(
                        format!("`/paths/{}`: a path must start with `/`", escape(template)),
                        FIX_STRUCTURE,
                    )
                    .near(template));
                }
                paths.push(reader.path_item(template, item)?);
            }
        }
        let base_paths = doc
            .get("servers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("url").and_then(Value::as_str))
            .filter_map(server_path)
            .collect();
        Ok(Document {
            version_text,
            paths,
            base_paths,
        })
    }
}

/// `/api/v1` of `https://host/api/v1/` or `/api/v1`; `None` for the root or a URL with variables.
fn server_path(url: &str) -> Option<String> {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or(""),
        None => url,
    };
    let path = path.trim_end_matches('/');
    (!path.is_empty() && path.starts_with('/') && !path.contains('{')).then(|| path.to_string())
}

/// Every `$ref` must be local and point at something.
fn check_refs(doc: &Value, value: &Value, at: &mut String) -> Read<()> {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("$ref") {
                let fix = "point the `$ref` at a definition of this document \
                           (`#/components/schemas/Name`); bundle a multi-file spec into one \
                           (e.g. `redocly bundle`)";
                let Some(pointer) = reference.strip_prefix('#') else {
                    return Err(problem(
                        format!(
                            "`{at}/$ref`: {reference:?} is not a reference into this document: \
                             only local references (`#/components/...`) are supported"
                        ),
                        fix,
                    )
                    .near(reference));
                };
                if resolve_pointer(doc, pointer).is_none() {
                    return Err(problem(
                        format!("`{at}/$ref`: {reference:?} points to nothing in the document"),
                        fix,
                    )
                    .near(reference));
                }
            }
            for (key, child) in object {
                let len = at.len();
                at.push('/');
                at.push_str(&escape(key));
                check_refs(doc, child, at)?;
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                check_refs(doc, child, at)?;
                at.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// A JSON pointer (percent-decoded, as in a URI fragment) into `doc`.
fn resolve_pointer<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
    let decoded: String = percent_decode(pointer);
    doc.pointer(&decoded)
}

fn percent_decode(text: &str) -> String {
    form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_string())
}

/// Which way a body goes: `readOnly` fields are not required in requests, `writeOnly` ones not
/// in responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

/// How a schema of the document becomes plain JSON Schema.
///
/// OpenAPI 3.0's dialect is made draft 4: `nullable: true` allows `null` (added to `type` and
/// `enum`, or an `anyOf` with `null` when the schema has no `type`). 3.1's schemas are JSON
/// Schema 2020-12 already. In both, a property marked `readOnly` (`writeOnly`) — on the property
/// or on the component schema it `$ref`s — is dropped from `required` in a request (response).
pub(crate) struct Conversion<'a> {
    pub version: Version,
    pub direction: Direction,
    /// The document's `components.schemas`, as written, to see through a property's `$ref`.
    pub components: &'a Value,
}

impl Conversion<'_> {
    pub fn convert(&self, schema: Value) -> Value {
        match schema {
            Value::Object(object) => {
                let mut object: Map<String, Value> = object
                    .into_iter()
                    .map(|(k, v)| (k, self.convert(v)))
                    .collect();
                self.drop_one_way_required(&mut object);
                if self.version == Version::V31 {
                    return Value::Object(object);
                }
                if object.get("nullable") != Some(&Value::Bool(true)) {
                    object.remove("nullable");
                    return Value::Object(object);
                }
                object.remove("nullable");
                if let Some(Value::Array(options)) = object.get_mut("enum") {
                    if !options.contains(&Value::Null) {
                        options.push(Value::Null);
                    }
                }
                match object.get("type").cloned() {
                    Some(Value::String(kind)) => {
                        object.insert("type".into(), serde_json::json!([kind, "null"]));
                        Value::Object(object)
                    }
                    _ => serde_json::json!({"anyOf": [{"type": "null"}, Value::Object(object)]}),
                }
            }
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.convert(v)).collect())
            }
            other => other,
        }
    }

    fn drop_one_way_required(&self, object: &mut Map<String, Value>) {
        let flag = match self.direction {
            Direction::Request => "readOnly",
            Direction::Response => "writeOnly",
        };
        let Some(Value::Object(properties)) = object.get("properties") else {
            return;
        };
        let one_way: Vec<String> = properties
            .iter()
            .filter(|(_, property)| {
                let target = property
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    .and_then(|name| self.components.get(name));
                [Some(*property), target]
                    .into_iter()
                    .flatten()
                    .any(|schema| schema.get(flag) == Some(&Value::Bool(true)))
            })
            .map(|(name, _)| name.clone())
            .collect();
        if one_way.is_empty() {
            return;
        }
        if let Some(Value::Array(required)) = object.get_mut("required") {
            required.retain(|name| {
                !name
                    .as_str()
                    .is_some_and(|n| one_way.iter().any(|o| o == n))
            });
        }
    }
}

struct Reader<'a> {
    doc: &'a Value,
    context: Arc<Context>,
    components: &'a Value,
}

impl Reader<'_> {
    /// Follows `$ref`s (checked to resolve) to the object; returns it with its pointer.
    fn deref<'v>(&'v self, value: &'v Value, at: String) -> Read<(&'v Value, String)> {
        let (mut value, mut at) = (value, at);
        for _ in 0..32 {
            match value.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let pointer = reference.trim_start_matches('#');
                    at = percent_decode(pointer);
                    value = resolve_pointer(self.doc, pointer).ok_or_else(|| {
                        problem(format!("{reference:?} points to nothing"), FIX_STRUCTURE)
                    })?;
                }
                None => return Ok((value, at)),
            }
        }
        Err(problem(
            format!("`{at}`: `$ref`s go round in a circle"),
            FIX_STRUCTURE,
        ))
    }

    fn schema(&self, value: &Value, at: String, direction: Direction) -> Schema {
        let conversion = Conversion {
            version: self.context.version,
            direction,
            components: self.components,
        };
        Schema {
            json: conversion.convert(value.clone()),
            direction,
            at,
            compiled: OnceLock::new(),
            context: self.context.clone(),
        }
    }

    fn path_item(&self, template: &str, item: &Value) -> Read<PathItem> {
        let at = format!("/paths/{}", escape(template));
        let (item, at) = self.deref(item, at)?;
        let shared = self.parameters(item.get("parameters"), &format!("{at}/parameters"))?;
        let mut operations = Vec::new();
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let op_at = format!("{at}/{method}");
            let mut parameters =
                self.parameters(operation.get("parameters"), &format!("{op_at}/parameters"))?;
            for parameter in &shared {
                if !parameters
                    .iter()
                    .any(|p| p.name == parameter.name && p.location == parameter.location)
                {
                    parameters.push(Parameter {
                        name: parameter.name.clone(),
                        location: parameter.location,
                        required: parameter.required,
                        schema: parameter.schema.as_ref().map(|s| Schema {
                            at: s.at.clone(),
                            direction: s.direction,
                            json: s.json.clone(),
                            compiled: OnceLock::new(),
                            context: s.context.clone(),
                        }),
                    });
                }
            }
            let request_body = match operation.get("requestBody") {
                None => None,
                Some(body) => {
                    let (body, body_at) = self.deref(body, format!("{op_at}/requestBody"))?;
                    Some(Body {
                        required: body.get("required").and_then(Value::as_bool) == Some(true),
                        content: self.content(body.get("content"), &body_at, Direction::Request)?,
                    })
                }
            };
            let mut responses = Vec::new();
            if let Some(map) = operation.get("responses").and_then(Value::as_object) {
                for (key, response) in map {
                    let status = parse_status(key).ok_or_else(|| {
                        problem(
                            format!(
                                "`{op_at}/responses/{key}`: {key:?} is not a status code, \
                                 a range such as `4XX`, or `default`"
                            ),
                            FIX_STRUCTURE,
                        )
                        .near(key)
                    })?;
                    let (response, r_at) =
                        self.deref(response, format!("{op_at}/responses/{}", escape(key)))?;
                    let mut headers = Vec::new();
                    if let Some(map) = response.get("headers").and_then(Value::as_object) {
                        for (name, header) in map {
                            let h_at = format!("{r_at}/headers/{}", escape(name));
                            let (header, h_at) = self.deref(header, h_at)?;
                            headers.push(Parameter {
                                name: name.clone(),
                                location: In::Header,
                                required: header.get("required").and_then(Value::as_bool)
                                    == Some(true),
                                schema: self.parameter_schema(
                                    header,
                                    &h_at,
                                    Direction::Response,
                                )?,
                            });
                        }
                    }
                    responses.push((
                        status,
                        ResponseSpec {
                            headers,
                            content: self.content(
                                response.get("content"),
                                &r_at,
                                Direction::Response,
                            )?,
                        },
                    ));
                }
            }
            operations.push(Operation {
                method: method.to_ascii_uppercase(),
                parameters,
                request_body,
                responses,
            });
        }
        Ok(PathItem {
            template: template.to_string(),
            segments: segments(template),
            operations,
        })
    }

    fn parameters(&self, list: Option<&Value>, at: &str) -> Read<Vec<Parameter>> {
        let Some(list) = list else {
            return Ok(Vec::new());
        };
        let list = list
            .as_array()
            .ok_or_else(|| problem(format!("`{at}` is not a list"), FIX_STRUCTURE))?;
        let mut parameters = Vec::new();
        for (i, parameter) in list.iter().enumerate() {
            let (parameter, p_at) = self.deref(parameter, format!("{at}/{i}"))?;
            let name = parameter.get("name").and_then(Value::as_str);
            let location = match parameter.get("in").and_then(Value::as_str) {
                Some("path") => In::Path,
                Some("query") => In::Query,
                Some("header") => In::Header,
                Some("cookie") => In::Cookie,
                _ => {
                    return Err(problem(
                        format!("`{p_at}/in` must be one of path, query, header, cookie"),
                        FIX_STRUCTURE,
                    ))
                }
            };
            let Some(name) = name else {
                return Err(problem(format!("`{p_at}` has no `name`"), FIX_STRUCTURE));
            };
            parameters.push(Parameter {
                name: name.to_string(),
                location,
                required: location == In::Path
                    || parameter.get("required").and_then(Value::as_bool) == Some(true),
                schema: self.parameter_schema(parameter, &p_at, Direction::Request)?,
            });
        }
        Ok(parameters)
    }

    /// A parameter's or header's `schema`, or the schema of its single `content` entry.
    fn parameter_schema(
        &self,
        parameter: &Value,
        at: &str,
        direction: Direction,
    ) -> Read<Option<Schema>> {
        if let Some(schema) = parameter.get("schema") {
            return Ok(Some(self.schema(schema, format!("{at}/schema"), direction)));
        }
        Ok(self
            .content(parameter.get("content"), at, direction)?
            .into_iter()
            .next()
            .and_then(|(_, schema)| schema))
    }

    fn content(
        &self,
        content: Option<&Value>,
        at: &str,
        direction: Direction,
    ) -> Read<Vec<(String, Option<Schema>)>> {
        let Some(content) = content else {
            return Ok(Vec::new());
        };
        let content = content
            .as_object()
            .ok_or_else(|| problem(format!("`{at}/content` is not an object"), FIX_STRUCTURE))?;
        Ok(content
            .iter()
            .map(|(media, entry)| {
                let schema = entry.get("schema").map(|schema| {
                    self.schema(
                        schema,
                        format!("{at}/content/{}/schema", escape(media)),
                        direction,
                    )
                });
                (media.to_ascii_lowercase(), schema)
            })
            .collect())
    }
}

fn parse_status(key: &str) -> Option<StatusKey> {
    if key == "default" {
        return Some(StatusKey::Default);
    }
    if let Ok(code) = key.parse::<u16>() {
        return (100..=599)
            .contains(&code)
            .then_some(StatusKey::Exact(code));
    }
    let bytes = key.as_bytes();
    if bytes.len() == 3
        && bytes[1..].eq_ignore_ascii_case(b"XX")
        && (b'1'..=b'5').contains(&bytes[0])
    {
        return Some(StatusKey::Range(u16::from(bytes[0] - b'0')));
    }
    None
}

/// The segments of `/v1/charges/{id}` (the leading `/` dropped).
pub(crate) fn segments(template: &str) -> Vec<Segment> {
    template
        .trim_start_matches('/')
        .split('/')
        .map(|segment| {
            let whole_variable = segment.starts_with('{')
                && segment.ends_with('}')
                && segment[1..segment.len() - 1].find(['{', '}']).is_none();
            if whole_variable {
                Segment::Variable(segment[1..segment.len() - 1].to_string())
            } else if segment.contains('{') {
                let mut names = Vec::new();
                let mut pattern = String::from("^");
                let mut rest = segment;
                while let Some(open) = rest.find('{') {
                    pattern.push_str(&regex::escape(&rest[..open]));
                    let Some(close) = rest[open..].find('}') else {
                        break;
                    };
                    names.push(rest[open + 1..open + close].to_string());
                    pattern.push_str("([^/]+)");
                    rest = &rest[open + close + 1..];
                }
                pattern.push_str(&regex::escape(rest));
                pattern.push('$');
                match regex::Regex::new(&pattern) {
                    Ok(regex) => Segment::Mixed(regex, names),
                    Err(_) => Segment::Literal(segment.to_string()),
                }
            } else {
                Segment::Literal(segment.to_string())
            }
        })
        .collect()
}

/// Reads the document at `path`.
pub(crate) fn read_file(path: &Path) -> Result<(Value, String, String), StubError> {
    let spec = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| StubError::OpenApi {
        spec: spec.clone(),
        line: None,
        message: format!(
            "cannot be read: {e} (the current directory is {})",
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        ),
        fix: "give the path of the spec; tests run in their crate's directory, so \
              `concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/payment-api.yaml\")` is a path that works"
            .into(),
    })?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let value = parse_text(&text, json).map_err(|(message, line)| StubError::OpenApi {
        spec: spec.clone(),
        line,
        message,
        fix: "correct the syntax at that line".into(),
    })?;
    Ok((value, spec, text))
}

impl PathItem {
    /// Whether the concrete `path` fits, with the values of the path variables; literal segments
    /// count, to prefer `/charges/search` over `/charges/{id}`.
    pub fn fit(&self, path: &str) -> Option<(usize, Vec<(String, String)>)> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut literals = 0;
        let mut values = Vec::new();
        for (segment, part) in self.segments.iter().zip(&parts) {
            match segment {
                Segment::Literal(text) if text == part => literals += 1,
                Segment::Literal(_) => return None,
                Segment::Variable(name) if !part.is_empty() => {
                    values.push((name.clone(), percent_decode(part)))
                }
                Segment::Variable(_) => return None,
                Segment::Mixed(regex, names) => {
                    let captures = regex.captures(part)?;
                    for (i, name) in names.iter().enumerate() {
                        let value = captures.get(i + 1).map(|m| m.as_str()).unwrap_or("");
                        values.push((name.clone(), percent_decode(value)));
                    }
                }
            }
        }
        Some((literals, values))
    }

    pub fn operation(&self, method: &str) -> Option<&Operation> {
        self.operations
            .iter()
            .find(|o| o.method.eq_ignore_ascii_case(method))
    }

    pub fn methods(&self) -> String {
        self.operations
            .iter()
            .map(|o| o.method.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
