//! What a contract check finds: each [`Violation`], typed (who, which operation, where, which
//! field, what kind), and [`ContractViolations`], the error that lists them all.

use std::{fmt, path::PathBuf};

/// Who broke the contract: a stub (mounted, or read from a mapping file) or a request the system
/// under test sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// A stub.
    Stub {
        /// Its id, if it has one.
        id: Option<String>,
        /// Its name, else `METHOD url`.
        label: String,
        /// The namespace it is mounted in (empty for the root, or for a file).
        namespace: String,
        /// The mapping file it was read from.
        file: Option<PathBuf>,
    },
    /// A request from the stub's journal.
    Request {
        /// The journal's id for it.
        id: String,
        /// Its method.
        method: String,
        /// Its path and query string.
        url: String,
        /// The namespace that received it (empty for the root).
        namespace: String,
    },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Stub {
                id,
                label,
                namespace,
                file,
            } => {
                write!(f, "stub `{label}`")?;
                let mut details = Vec::new();
                if let Some(id) = id {
                    details.push(format!("id {id}"));
                }
                if !namespace.is_empty() {
                    details.push(format!("namespace {namespace}"));
                }
                if let Some(file) = file {
                    details.push(format!("file {}", file.display()));
                }
                if !details.is_empty() {
                    write!(f, " ({})", details.join(", "))?;
                }
                Ok(())
            }
            Subject::Request {
                id,
                method,
                url,
                namespace,
            } => {
                write!(f, "request {method} {url} (journal id {id}")?;
                if !namespace.is_empty() {
                    write!(f, ", namespace {namespace}")?;
                }
                write!(f, ")")
            }
        }
    }
}

/// Where in the exchange a violation is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Place {
    /// The request's path.
    Path,
    /// The request's method.
    Method,
    /// A path parameter.
    PathParameter(String),
    /// A query parameter.
    Query(String),
    /// A request header.
    RequestHeader(String),
    /// The request body.
    RequestBody,
    /// The response's status.
    Response(u16),
    /// A response header.
    ResponseHeader(u16, String),
    /// The response body.
    ResponseBody(u16),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Path => write!(f, "path"),
            Place::Method => write!(f, "method"),
            Place::PathParameter(name) => write!(f, "path parameter `{name}`"),
            Place::Query(name) => write!(f, "query parameter `{name}`"),
            Place::RequestHeader(name) => write!(f, "request header `{name}`"),
            Place::RequestBody => write!(f, "request body"),
            Place::Response(status) => write!(f, "response {status}"),
            Place::ResponseHeader(status, name) => write!(f, "response {status} header `{name}`"),
            Place::ResponseBody(status) => write!(f, "response {status} body"),
        }
    }
}

/// What kind of violation: to assert on without matching text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ViolationKind {
    /// No path of the spec fits.
    UnknownPath,
    /// The path is declared, without this method.
    UnknownMethod,
    /// The operation declares neither this status nor `default`.
    UndeclaredStatus,
    /// The operation declares no body of this content type.
    UndeclaredContentType,
    /// A body where the operation declares none.
    UnexpectedBody,
    /// No body where the operation declares one (a required request body, a response's content).
    MissingBody,
    /// The body is declared JSON and is not.
    InvalidJson,
    /// A required parameter or response header is missing (or the stub asks for it absent).
    MissingParameter,
    /// A query parameter the operation does not declare.
    UnknownParameter,
    /// A parameter's or header's value does not fit its schema.
    InvalidParameter,
    /// A required field is missing (`required`).
    Required,
    /// A field is not allowed (`additionalProperties: false`, `unevaluatedProperties`).
    NotAllowed,
    /// A value of the wrong type.
    Type,
    /// A value outside the `enum` (or other than the `const`).
    Enum,
    /// A string of the wrong `format`.
    Format,
    /// Any other schema keyword: `minimum`, `maxLength`, `pattern`, `oneOf`, …
    Constraint,
}

/// One way a stub or request breaks the spec.
///
/// ```
/// use drydock_stub::{contract::{OpenApi, ViolationKind}, Response, Stub};
/// use serde_json::json;
///
/// let spec = OpenApi::from_yaml_str(r#"
/// openapi: 3.0.3
/// info: {title: payments, version: "1"}
/// paths:
///   /v1/charges:
///     post:
///       responses:
///         "201":
///           description: created
///           content:
///             application/json:
///               schema:
///                 type: object
///                 required: [amount_cents]
///                 additionalProperties: false
///                 properties: {amount_cents: {type: integer}}
/// "#).unwrap();
/// let drifted = Stub::post("/v1/charges").respond(Response::status(201).json(json!({"amount": 1})));
/// let violations = spec.check_stub(&drifted).unwrap_err();
/// let pointers: Vec<_> = violations.iter().map(|v| (v.pointer(), v.kind())).collect();
/// assert!(pointers.contains(&("/amount", ViolationKind::NotAllowed)));
/// assert!(pointers.contains(&("/amount_cents", ViolationKind::Required)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub(crate) subject: Subject,
    pub(crate) operation: Option<String>,
    pub(crate) place: Place,
    pub(crate) pointer: String,
    pub(crate) kind: ViolationKind,
    pub(crate) message: String,
}

impl Violation {
    /// The stub or request at fault.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The operation, as `POST /v1/charges` (the spec's path template); `None` when no operation
    /// fits.
    pub fn operation(&self) -> Option<&str> {
        self.operation.as_deref()
    }

    /// Where in the exchange.
    pub fn place(&self) -> &Place {
        &self.place
    }

    /// The field, as a JSON pointer into the body (`/status`, `/items/0/sku`); empty for the
    /// body itself and outside bodies.
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// The kind.
    pub fn kind(&self) -> ViolationKind {
        self.kind
    }

    /// What was expected and what was found.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.subject)?;
        if let Some(operation) = &self.operation {
            write!(f, "{operation}, ")?;
        }
        write!(f, "{}", self.place)?;
        if !self.pointer.is_empty() {
            write!(f, " `{}`", self.pointer)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every violation one check found: the error of the `check_*` methods. `Display` lists them,
/// one a line, with a line saying what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractViolations {
    pub(crate) spec: String,
    pub(crate) violations: Vec<Violation>,
}

impl ContractViolations {
    /// The violations, in the order found.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// The violations, in the order found.
    pub fn iter(&self) -> std::slice::Iter<'_, Violation> {
        self.violations.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.violations.len()
    }

    /// Whether there are none (never, in an error).
    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    /// The spec checked against: its file, or what it was read from.
    pub fn spec(&self) -> &str {
        &self.spec
    }
}

impl<'a> IntoIterator for &'a ContractViolations {
    type Item = &'a Violation;
    type IntoIter = std::slice::Iter<'a, Violation>;
    fn into_iter(self) -> Self::IntoIter {
        self.violations.iter()
    }
}

impl fmt::Display for ContractViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.violations.len();
        writeln!(
            f,
            "{n} contract violation{} against {}:",
            if n == 1 { "" } else { "s" },
            self.spec
        )?;
        for violation in &self.violations {
            writeln!(f, "  - {violation}")?;
        }
        write!(
            f,
            "  to fix: make the stub or the system under test follow the spec; if the provider \
             changed its API, update the spec first"
        )
    }
}

impl std::error::Error for ContractViolations {}

/// What a check that passed looked at, and what it could not decide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContractReport {
    pub(crate) checked: usize,
    pub(crate) unchecked: Vec<Unchecked>,
}

impl ContractReport {
    /// How many stubs or requests were checked.
    pub fn checked(&self) -> usize {
        self.checked
    }

    /// What was left unchecked, and why (a path regex no spec path can be tied to, a body
    /// from a file on the server, a fault instead of a response, …).
    pub fn unchecked(&self) -> &[Unchecked] {
        &self.unchecked
    }
}

/// A stub or request, or a part of one, a check could not decide on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unchecked {
    /// The stub or request.
    pub subject: Subject,
    /// What was not checked, and why.
    pub reason: String,
}

impl fmt::Display for Unchecked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.reason)
    }
}
