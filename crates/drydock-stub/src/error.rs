//! Errors, each saying what went wrong, where, and what to do.

use std::path::PathBuf;

use crate::{invalid::InvalidStub, verify::VerificationFailure};

/// What can go wrong with a stub server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StubError {
    /// A stub was rejected.
    #[error("stub {stub} is invalid: {source}\n  to fix: correct that field of the stub")]
    InvalidStub {
        /// The stub's name or `METHOD url`.
        stub: String,
        /// The field and the reason.
        #[source]
        source: InvalidStub,
    },
    /// A mapping file could not be read or is outside the supported WireMock subset.
    #[error(
        "{}: {message}\n  to fix: correct that file; `drydock_stub::mappings` lists the \
         WireMock subset that is supported",
        file.display()
    )]
    Mapping {
        /// The file.
        file: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The server could not listen.
    #[error("the stub server could not listen on {address}: {cause}")]
    Bind {
        /// The address asked for.
        address: String,
        /// The system's reason.
        cause: String,
    },
    /// A remote server's admin API refused or failed a request.
    #[error("stub server {url}: {operation} failed: {message}")]
    Admin {
        /// The server's base URL.
        url: String,
        /// What was asked (`POST /__admin/mappings`).
        operation: String,
        /// Its answer or the transport error.
        message: String,
    },
    /// No stub has this id.
    #[error("no stub has id {0}; `stubs()` lists the mounted ones")]
    NoSuchStub(String),
    /// Expectations were not met.
    #[error("{0}")]
    Verification(VerificationFailure),
    /// HTTPS could not be set up.
    #[error("HTTPS: {message}")]
    Tls {
        /// What failed.
        message: String,
    },
    /// An OpenAPI document could not be read or is not a usable OpenAPI 3.0/3.1 document.
    #[cfg(feature = "openapi")]
    #[error(
        "OpenAPI spec {spec}{}: {message}\n  to fix: {fix}",
        line.map(|l| format!(", line {l}")).unwrap_or_default()
    )]
    OpenApi {
        /// The file, or what the document was read from.
        spec: String,
        /// The line at fault, when the parser knows it.
        line: Option<usize>,
        /// What is wrong, naming the place in the document (a JSON pointer).
        message: String,
        /// What to do.
        fix: String,
    },
    /// Stubs or requests break the contract: every violation, typed.
    #[cfg(feature = "openapi")]
    #[error("{0}")]
    Contract(crate::contract::ContractViolations),
    /// Recorded stubs could not be saved.
    #[error("could not save recordings to {}: {cause}", dir.display())]
    Save {
        /// The directory.
        dir: PathBuf,
        /// The reason.
        cause: String,
    },
}
