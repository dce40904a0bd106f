//! Contracts that keep stubs honest: stubs, the requests the system under test sent, and
//! recorded mappings, checked against the provider's OpenAPI document (feature `openapi`).
//!
//! ```
//! use drydock_stub::{contract::OpenApi, Response, Stub, StubServer};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = OpenApi::from_yaml_str(r##"
//! openapi: 3.1.0
//! info: {title: payments, version: "1"}
//! paths:
//!   /v1/charges/{id}:
//!     get:
//!       parameters: [{name: id, in: path, required: true, schema: {type: string}}]
//!       responses:
//!         "200":
//!           description: the charge
//!           content:
//!             application/json:
//!               schema: {$ref: "#/components/schemas/Charge"}
//! components:
//!   schemas:
//!     Charge:
//!       type: object
//!       required: [id, status]
//!       properties:
//!         id: {type: string}
//!         status: {enum: [succeeded, declined]}
//! "##)?; // or OpenApi::from_path("payment-api.yaml")?
//! let payments = StubServer::start().await?;
//! payments
//!     .mount(Stub::get("/v1/charges/ch_1").respond(
//!         Response::ok().json(json!({"id": "ch_1", "status": "succeeded"})),
//!     ))
//!     .await?;
//! payments.check_against(&spec).await?; // every mounted stub fits the spec
//! // … run the system under test, then check what it sent:
//! payments.check_received_against(&spec).await?;
//! # Ok(()) }
//! ```
//!
//! # What is checked
//!
//! **A stub** (mounted: [`StubServer::check_against`]; from mapping files or a recording:
//! [`OpenApi::check_mappings_dir`], [`OpenApi::check_stubs`]):
//!
//! - its URL fits a path of the spec: an exact `urlPath`/`url` matches templated paths
//!   (`/v1/charges/ch_1` is `/v1/charges/{id}`, a literal path winning over a template); a
//!   `urlPathTemplate` matches segment by segment; a `urlPathPattern`/`urlPattern` regex is tried
//!   on sample paths of each spec path (the path parameter's `example`, `default` and `enum`,
//!   then common id shapes), and is a violation only when no spec path can start with the
//!   regex's literal prefix (otherwise, when no sample matches, it is reported unchecked); a
//!   `urlPathPrefix` fits the spec paths that start so. The `servers`' base paths may prefix
//!   every path;
//! - its method is declared for that path (no method or `ANY`: any declared one);
//! - path parameters fixed by the URL or `pathParameters` `equalTo`, query parameters (from
//!   `url` or `queryParameters` `equalTo`) and declared request headers (`equalTo`) fit their
//!   schemas; a query parameter the operation does not declare is a violation; a required
//!   parameter the stub asks to be `absent` is a violation;
//! - each `equalToJson` body pattern fits the request body schema (for the stub's
//!   `content-type` matcher, else the JSON media type); with `ignoreExtraElements` missing
//!   fields are not reported, and json-unit placeholders stand for any value;
//! - the response status is declared (exactly, by range `2XX`, or `default`); the response
//!   headers the spec marks required are set and every declared one fits its schema; the body
//!   is there when the spec declares content and absent when it declares none, of a declared
//!   content type, and a JSON body fits its schema. In a templated response, `{{…}}` strings are
//!   not checked.
//!
//! **A received request** ([`StubServer::check_received_against`], [`OpenApi::check_requests`]):
//! path and method declared, path and query parameters' values fit their schemas, required
//! query parameters and headers present, no undeclared query parameter, a required body
//! present, its content type declared, a JSON body valid against its schema.
//!
//! # What is not
//!
//! Cookie parameters; parameter `style`/`explode` other than the simple and form defaults
//! (arrays are read comma-separated); non-JSON bodies beyond their content type (XML, form,
//! multipart); security schemes; `matchesJsonPath`, regex and `contains` body patterns; bodies
//! from files on the server (`bodyFileName` through the API; files loaded with `load_dir` are
//! read); faults and proxied responses (they are listed in [`ContractReport::unchecked`]).
//! `$ref`s must be local (`#/...`): bundle a multi-file spec first.
//!
//! # Dialects
//!
//! OpenAPI 3.1 schemas are JSON Schema 2020-12. OpenAPI 3.0 schemas are read as JSON Schema
//! draft 4 (the dialect 3.0 extends), with `nullable: true` adding `null` to the schema's `type`
//! (and `enum`), or wrapping a schema without `type` in `anyOf: [{type: null}, …]`; `format`s
//! JSON Schema knows (`date-time`, `email`, `uuid`, …) are checked, OpenAPI's own (`int32`,
//! `double`, …) are not. In both, a property marked `readOnly` (on itself or on the component
//! schema it `$ref`s) is not required in a request, and a `writeOnly` one not in a response.

mod check;
mod spec;
mod violation;

use std::path::Path;

use serde_json::Value;

pub use violation::{
    ContractReport, ContractViolations, Place, Subject, Unchecked, Violation, ViolationKind,
};

use crate::{error::StubError, handle::StubServer, mappings, model::Stub, request::LoggedRequest};
use check::Findings;
use spec::Document;

/// A provider's OpenAPI 3.0 or 3.1 document, read and ready to check stubs and requests against.
///
/// ```no_run
/// # fn demo() -> Result<(), drydock_stub::StubError> {
/// let spec = drydock_stub::contract::OpenApi::from_path("payment-api.yaml")?;
/// let report = spec.check_mappings_dir("tests/recordings")?;
/// println!("{} recorded stubs fit the spec", report.checked());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct OpenApi {
    doc: Document,
    name: String,
}

impl OpenApi {
    /// Reads a spec file: JSON when it ends in `.json`, YAML otherwise. The error names the file,
    /// the line when the text does not parse, and the place in the document (a JSON pointer,
    /// and the line of a bad `$ref`, path or status) when it is not a usable OpenAPI 3.0/3.1
    /// document.
    pub fn from_path(path: impl AsRef<Path>) -> Result<OpenApi, StubError> {
        let (value, name, text) = spec::read_file(path.as_ref())?;
        OpenApi::from_value(value, name, Some(&text))
    }

    /// Reads a spec from YAML (or JSON, which is YAML) text.
    pub fn from_yaml_str(text: &str) -> Result<OpenApi, StubError> {
        let name = "the OpenAPI text".to_string();
        let value =
            spec::parse_text(text, false).map_err(|(message, line)| StubError::OpenApi {
                spec: name.clone(),
                line,
                message,
                fix: "correct the syntax at that line".into(),
            })?;
        OpenApi::from_value(value, name, Some(text))
    }

    /// Reads a spec already parsed as JSON.
    pub fn from_json(document: Value) -> Result<OpenApi, StubError> {
        OpenApi::from_value(document, "the OpenAPI document".into(), None)
    }

    fn from_value(value: Value, name: String, text: Option<&str>) -> Result<OpenApi, StubError> {
        let doc = Document::read(&value).map_err(|p| StubError::OpenApi {
            spec: name.clone(),
            line: text.and_then(|text| p.line(text)),
            message: p.message,
            fix: p.fix.into(),
        })?;
        // Every schema compiles now, so a bad one is reported here rather than mid-check.
        for item in &doc.paths {
            for operation in &item.operations {
                let schemas = operation
                    .parameters
                    .iter()
                    .filter_map(|p| p.schema.as_ref())
                    .chain(
                        operation
                            .request_body
                            .iter()
                            .flat_map(|b| b.content.iter().filter_map(|(_, s)| s.as_ref())),
                    )
                    .chain(operation.responses.iter().flat_map(|(_, r)| {
                        r.headers
                            .iter()
                            .filter_map(|h| h.schema.as_ref())
                            .chain(r.content.iter().filter_map(|(_, s)| s.as_ref()))
                    }));
                for schema in schemas {
                    schema.validator().map_err(|message| StubError::OpenApi {
                        spec: name.clone(),
                        line: None,
                        message,
                        fix: "correct that schema (OpenAPI 3.0: JSON Schema draft 4 with \
                              `nullable`; 3.1: JSON Schema 2020-12)"
                            .into(),
                    })?;
                }
            }
        }
        let name = format!("{name} (OpenAPI {})", doc.version_text);
        Ok(OpenApi { doc, name })
    }

    /// The `openapi` version the document states (`3.0.3`, `3.1.0`).
    pub fn version(&self) -> &str {
        &self.doc.version_text
    }

    /// Checks one stub (a mapping): its request pattern and response against the operation it
    /// stands for.
    pub fn check_stub(&self, stub: &Stub) -> Result<ContractReport, ContractViolations> {
        self.check_stubs(std::iter::once(stub))
    }

    /// Checks stubs (mappings), all of them before answering.
    pub fn check_stubs<'a>(
        &self,
        stubs: impl IntoIterator<Item = &'a Stub>,
    ) -> Result<ContractReport, ContractViolations> {
        self.check_labelled(stubs.into_iter().map(|s| (s, "", None)))
    }

    fn check_labelled<'a>(
        &self,
        stubs: impl IntoIterator<Item = (&'a Stub, &'a str, Option<&'a Path>)>,
    ) -> Result<ContractReport, ContractViolations> {
        let findings = stubs.into_iter().map(|(stub, namespace, file)| {
            let mut findings = Findings::new(Subject::Stub {
                id: stub.id.clone(),
                label: stub.label(),
                namespace: namespace.to_string(),
                file: file.map(Path::to_path_buf),
            });
            check::check_stub(&self.doc, stub, &mut findings);
            findings
        });
        self.conclude(findings)
    }

    /// Checks every mapping file under `dir` (WireMock's layout, as [`mappings::load_dir`] reads
    /// it): recorded traffic, or a hand-written stub set. Each violation names its file.
    pub fn check_mappings_dir(&self, dir: impl AsRef<Path>) -> Result<ContractReport, StubError> {
        let stubs = mappings::load_files(dir.as_ref())?;
        self.check_labelled(
            stubs
                .iter()
                .map(|(file, stub)| (stub, "", Some(file.as_path()))),
        )
        .map_err(StubError::Contract)
    }

    /// Checks requests (as the stub's journal lists them): what the system under test sent.
    pub fn check_requests<'a>(
        &self,
        requests: impl IntoIterator<Item = &'a LoggedRequest>,
    ) -> Result<ContractReport, ContractViolations> {
        self.check_requests_in(requests, "")
    }

    fn check_requests_in<'a>(
        &self,
        requests: impl IntoIterator<Item = &'a LoggedRequest>,
        namespace: &str,
    ) -> Result<ContractReport, ContractViolations> {
        let findings = requests.into_iter().map(|request| {
            let mut findings = Findings::new(Subject::Request {
                id: request.id.clone(),
                method: request.method.clone(),
                url: request.url.clone(),
                namespace: namespace.to_string(),
            });
            check::check_request(&self.doc, request, &mut findings);
            findings
        });
        self.conclude(findings)
    }

    fn conclude(
        &self,
        findings: impl Iterator<Item = Findings>,
    ) -> Result<ContractReport, ContractViolations> {
        let mut report = ContractReport::default();
        let mut violations = Vec::new();
        for found in findings {
            report.checked += 1;
            violations.extend(found.violations);
            report.unchecked.extend(found.unchecked);
        }
        if violations.is_empty() {
            Ok(report)
        } else {
            Err(ContractViolations {
                spec: self.name.clone(),
                violations,
            })
        }
    }
}

impl StubServer {
    /// Checks every stub mounted in this handle's namespace against `spec` (in process or
    /// remote: a container's stubs are read through its admin API). The error,
    /// [`StubError::Contract`], lists every violation; see [`contract`](crate::contract) for
    /// what is checked.
    pub async fn check_against(&self, spec: &OpenApi) -> Result<ContractReport, StubError> {
        let stubs = self.stubs().await?;
        let namespace = self.namespace_name();
        spec.check_labelled(stubs.iter().map(|s| (s, namespace, None)))
            .map_err(StubError::Contract)
    }

    /// Checks every request this handle's namespace received (its journal) against `spec`:
    /// what the system under test sent, matched by a stub or not.
    pub async fn check_received_against(
        &self,
        spec: &OpenApi,
    ) -> Result<ContractReport, StubError> {
        let requests = self.requests().await?;
        spec.check_requests_in(&requests, self.namespace_name())
            .map_err(StubError::Contract)
    }
}
