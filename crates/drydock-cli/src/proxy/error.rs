//! Toxiproxy's errors: a message and an HTTP status, sent as `{"error": "...", "status": N}`.

use hyper::StatusCode;

/// An API error, with Toxiproxy's messages (clients match on some of them).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON expected; says where.
    #[error("bad request body: {0}")]
    BadBody(String),
    /// A required field is missing or empty.
    #[error("missing required field: {0}")]
    MissingField(String),
    /// No proxy of that name.
    #[error("proxy not found")]
    ProxyNotFound,
    /// A proxy of that name exists.
    #[error("proxy already exists")]
    ProxyExists,
    /// `stream` is neither `upstream` nor `downstream`.
    #[error("stream was invalid, can be either upstream or downstream")]
    InvalidStream,
    /// A toxic type drydock does not know.
    #[error("invalid toxic type: {0}")]
    InvalidToxicType(String),
    /// A toxic of that name exists on the proxy.
    #[error("toxic already exists")]
    ToxicExists,
    /// No toxic of that name on the proxy.
    #[error("toxic not found")]
    ToxicNotFound,
    /// The proxy cannot listen where asked.
    #[error("listen: {0}")]
    Listen(String),
    /// No such path, or not with this method.
    #[error("{1}")]
    Route(StatusCode, &'static str),
    /// Something this server got wrong.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status Toxiproxy answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadBody(_)
            | ApiError::MissingField(_)
            | ApiError::InvalidStream
            | ApiError::InvalidToxicType(_)
            | ApiError::Listen(_) => StatusCode::BAD_REQUEST,
            ApiError::ProxyNotFound | ApiError::ToxicNotFound => StatusCode::NOT_FOUND,
            ApiError::ProxyExists | ApiError::ToxicExists => StatusCode::CONFLICT,
            ApiError::Route(status, _) => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Toxiproxy's error body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.to_string(), "status": self.status().as_u16() })
    }
}
