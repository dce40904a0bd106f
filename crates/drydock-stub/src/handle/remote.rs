//! A stub server reached over HTTP: its admin API, called with a bounded client.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::{error::StubError, guard::AdminCredentials, verify::VerificationFailure};

/// How long one admin request to a remote server may take.
pub(super) const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin API of a server at `root`.
#[derive(Clone, Debug)]
pub(super) struct Remote {
    pub client: reqwest::Client,
    /// The server's root URL, without a namespace (nor credentials: it goes into errors).
    pub root: String,
    /// Sent with every admin request, when the server asks for them.
    pub credentials: Option<AdminCredentials>,
}

impl Remote {
    pub fn new(root: &str, credentials: Option<AdminCredentials>) -> Result<Remote, StubError> {
        let client = reqwest::Client::builder()
            .timeout(ADMIN_TIMEOUT)
            .build()
            .map_err(|e| StubError::Admin {
                url: root.to_string(),
                operation: "building an HTTP client".into(),
                message: e.to_string(),
            })?;
        Ok(Remote {
            client,
            root: root.to_string(),
            credentials,
        })
    }

    /// The same server with a client of its own.
    pub fn fresh(&self) -> Result<Remote, StubError> {
        Remote::new(&self.root, self.credentials.clone())
    }

    /// Adds upstreams to the server's allow-list (`POST /__admin/upstreams`). A server that
    /// has no such endpoint (WireMock itself) has no allow-list either: its `404` is no error.
    pub async fn allow_upstreams(&self, origins: &[String]) -> Result<(), StubError> {
        let url = format!("{}/__admin/upstreams", self.root);
        let failed = |message: String| StubError::Admin {
            url: self.root.clone(),
            operation: format!("POST {url}"),
            message,
        };
        let response = self
            .authorized(self.client.post(&url))
            .header("content-type", "application/json")
            .body(json!({ "origins": origins }).to_string())
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) || status == 404 {
            return Ok(());
        }
        let bytes = response.bytes().await.map_err(|e| failed(e.to_string()))?;
        Err(failed(format!("{status}: {}", detail(&bytes))))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Some(credentials) => request.header("authorization", credentials.authorization()),
            None => request,
        }
    }

    fn base(&self, namespace: &str) -> String {
        if namespace.is_empty() {
            self.root.clone()
        } else {
            format!("{}/__ns/{namespace}", self.root)
        }
    }

    /// One admin request: `path` is below `/__admin`, in `namespace`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        namespace: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, StubError> {
        let base = self.base(namespace);
        let operation = format!("{method} {base}/__admin{path}");
        let failed = |message: String| StubError::Admin {
            url: base.clone(),
            operation: operation.clone(),
            message,
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request =
            self.authorized(self.client.request(method, format!("{base}/__admin{path}")));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| failed(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| failed(e.to_string()))?;
        let reply = reply(&bytes);
        if (200..300).contains(&status) {
            return serde_json::from_value(reply)
                .map_err(|e| failed(format!("unexpected answer: {e}")));
        }
        if status == 409 {
            if let Ok(failure) =
                serde_json::from_value::<VerificationFailure>(reply["verification"].clone())
            {
                return Err(StubError::Verification(failure));
            }
        }
        if status == 404 && reply["errors"][0]["title"] == "No such stub" {
            let id = path.rsplit('/').next().unwrap_or_default();
            return Err(StubError::NoSuchStub(id.to_string()));
        }
        Err(failed(format!("{status}: {}", detail(&bytes))))
    }
}

fn reply(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(
        |_| json!({"errors": [{"title": "Not JSON", "detail": String::from_utf8_lossy(bytes)}]}),
    )
}

/// The first error's detail of an admin answer, or the answer.
fn detail(bytes: &[u8]) -> String {
    let reply = reply(bytes);
    reply["errors"][0]["detail"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| reply.to_string())
}
