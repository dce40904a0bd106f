//! [`InvalidStub`]: a stub that cannot work as written, naming the field at fault.
//!
//! Its own file, so the matchers and responders that raise it depend on nothing else.

/// A stub that cannot work as written: which field, and why.
///
/// ```
/// use drydock_stub::{StringMatcher, Stub, StubServer};
///
/// # async fn demo() -> Result<(), drydock_stub::StubError> {
/// let server = StubServer::start().await?;
/// let bad = Stub::get("/x").header("x-id", StringMatcher::matches("[0-9"));
/// let err = server.mount(bad).await.unwrap_err();
/// assert!(err.to_string().contains("request.headers.x-id.matches"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct InvalidStub {
    /// The field, as a path into the mapping JSON (`request.headers.x-id.matches`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl InvalidStub {
    pub(crate) fn new(field: &str, message: impl Into<String>) -> Self {
        InvalidStub {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl InvalidStub {
    /// The field as a JSON pointer (`/request/headers/x-id/matches`), as WireMock's errors name it.
    pub fn pointer(&self) -> String {
        let mut pointer = String::new();
        let field = self.field.replace('[', ".").replace(']', "");
        for part in field.split('.').filter(|p| !p.is_empty()) {
            pointer.push('/');
            pointer.push_str(&part.replace('~', "~0").replace('/', "~1"));
        }
        pointer
    }
}
