//! # drydock-stub
//!
//! An HTTP stub server for integration tests, as a library and as a binary (the image drydock
//! runs when a system under test in a container must call the stub).
//!
//! - **Matching**: method; path exact, prefix, regex or template (`/orders/{id}`); query
//!   parameters, headers and cookies (equal, contains, regex, not-regex, absent); basic-auth
//!   credentials; bodies (text, regex, JSON equal or partial, JSON path, XML, bytes); priorities;
//!   stateful scenarios.
//! - **Responses**: status and reason phrase, headers, text/JSON/binary/file bodies, bodies built
//!   from the request (templates), fixed and random delays, chunked dribble; HTTPS with a CA made
//!   per server ([`CertificateAuthority`]).
//! - **Faults**: connection reset, empty response, malformed chunk, random data then close,
//!   close after N bytes.
//! - **Verification**: expected call counts (`expect(1)`, `expect(1..=3)`, `expect(2..)`) checked
//!   on demand and on drop, the request journal (bounded, WireMock's serve events), and for an
//!   unmatched request the nearest stub and what did not match.
//! - **WireMock compatible**: mapping files and the admin API under `/__admin`, checked against
//!   WireMock itself; the subset and the deliberate differences are in [`mappings`].
//! - **Record and replay** with secret scrubbing ([`Recording`], [`OnMiss`]).
//! - **Contracts** (feature `openapi`): mounted stubs, the requests received and recorded
//!   mappings checked against the provider's OpenAPI 3.0/3.1 document, each violation naming
//!   the stub or request, the operation, the place and the field ([`contract`]).
//! - **Namespaces**: `/__ns/<name>/…` isolates stubs and journal per test on one server.
//! - **Closed to others**: the admin API asks for HTTP basic credentials ([`AdminCredentials`],
//!   WireMock's `--admin-api-basic-auth`; an in-process server makes its own), and proxying and
//!   recording reach only the upstreams configured
//!   ([`StubServerBuilder::allowed_upstreams`]). Stubbed endpoints stay open.
//!
//! ```
//! use drydock_stub::{BodyPattern, Response, Stub, StubServer};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let payments = StubServer::start().await?;
//! payments
//!     .mount(
//!         Stub::post("/charges")
//!             .body(BodyPattern::json_partial(json!({"currency": "EUR"})))
//!             .respond(Response::status(201).json(json!({"id": "ch_1"})))
//!             .expect(1),
//!     )
//!     .await?;
//!
//! let client = reqwest::Client::new();
//! let created = client
//!     .post(format!("{}/charges", payments.url()))
//!     .body(r#"{"amount": 10, "currency": "EUR"}"#)
//!     .send()
//!     .await?;
//! assert_eq!(created.status(), 201);
//! # Ok(()) }
//! // dropping `payments` verifies that /charges was called exactly once
//! ```

#[cfg(feature = "openapi")]
pub mod contract;
mod error;
mod guard;
mod handle;
mod invalid;
mod journal;
pub mod mappings;
mod matching;
mod model;
mod mounted;
mod namespace;
mod record;
mod request;
mod respond;
mod server;
mod tls;
mod verify;

pub use error::StubError;
pub use guard::{AdminCredentials, ADMIN_USER};
pub use handle::{StubServer, StubServerBuilder};
pub use invalid::InvalidStub;
pub use journal::{JournalStats, ServeEvent, DEFAULT_JOURNAL_LIMIT};
pub use model::{
    BasicCredentials, BodyPattern, ChunkedDribble, DelayDistribution, Fault, HeaderValues,
    JsonPathPattern, RequestPattern, Response, StringMatcher, Stub, Times, DEFAULT_PRIORITY,
    STARTED,
};
pub use namespace::{Scenario, Settings};
pub use record::{OnMiss, Recording, ALWAYS_SCRUBBED};
pub use request::{LoggedRequest, QueryParameter};
pub use tls::CertificateAuthority;
pub use verify::{Check, CheckReport, FailedExpectation, NearMiss, Unmatched, VerificationFailure};
