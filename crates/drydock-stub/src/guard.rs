//! Who may drive a server, and where it may send requests.
//!
//! A stub server listens on a port every local user (and, in a container, every container on
//! its network) can reach. Its stubbed endpoints must stay open: the system under test calls them
//! with no credentials, which is the point of a stub. Its admin API must not: whoever reaches it
//! can replace the answers a test relies on, read the journal (with the requests' credentials),
//! and, through proxy stubs and recordings, make the server send requests to any address it
//! reaches (server-side request forgery). So:
//!
//! - [`AdminCredentials`]: `/__admin/*` asks for HTTP basic credentials, as WireMock's
//!   `--admin-api-basic-auth user:pass` does (so WireMock clients pass them the way they already
//!   can); without them, `401` saying what is needed — on every admin path, health included, as
//!   WireMock (the differential test checks that).
//! - [`Upstreams`]: the origins proxy stubs, pass-through and recording may forward to. Only
//!   what was configured at start (`--allowed-upstreams`, the proxies of the mapping files) and
//!   what an authenticated caller adds (`POST /__admin/upstreams`) is reached; anything else is
//!   refused with `403` naming the upstream and the setting.

use std::{collections::BTreeSet, fmt, sync::Mutex};

use base64::Engine;

/// The user name of generated credentials.
pub const ADMIN_USER: &str = "drydock";

/// The credentials the admin API asks for: HTTP basic, as WireMock's `--admin-api-basic-auth`.
///
/// `Debug` leaves the password out; [`authorization`](Self::authorization) is the header value
/// a client sends.
///
/// ```
/// use drydock_stub::AdminCredentials;
///
/// let credentials = AdminCredentials::parse("admin:s3cret").unwrap();
/// assert_eq!(credentials.authorization(), "Basic YWRtaW46czNjcmV0");
/// assert!(!format!("{credentials:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AdminCredentials {
    user: String,
    password: String,
}

impl AdminCredentials {
    /// Credentials of the caller's choosing.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        AdminCredentials {
            user: user.into(),
            password: password.into(),
        }
    }

    /// User `drydock` and a fresh random password (32 hex characters, 122 bits from the OS
    /// generator): what an in-process server and drydock's container get.
    pub fn generate() -> Self {
        AdminCredentials::new(ADMIN_USER, uuid::Uuid::new_v4().simple().to_string())
    }

    /// `user:password`, WireMock's `--admin-api-basic-auth` format (the password may hold `:`).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                Ok(AdminCredentials::new(user, password))
            }
            _ => Err("expected `user:password`, both non-empty".into()),
        }
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password. Keep it out of logs.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The `Authorization` header value: `Basic <base64(user:password)>`.
    pub fn authorization(&self) -> String {
        let pair = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// Whether a request's `Authorization` header carries these credentials. Compared in time
    /// independent of where the first difference is, so timing tells an attacker nothing.
    pub(crate) fn admits(&self, header: Option<&[u8]>) -> bool {
        let Some(given) = header else {
            return false;
        };
        let expected = self.authorization();
        let expected = expected.as_bytes();
        // The scheme is case-insensitive (RFC 7235); the credentials are not.
        let scheme = b"basic ".len();
        if given.len() != expected.len()
            || !given[..scheme].eq_ignore_ascii_case(&expected[..scheme])
        {
            return false;
        }
        given[scheme..]
            .iter()
            .zip(&expected[scheme..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdminCredentials({}:<masked>)", self.user)
    }
}

/// The body of a `401`: what the admin API needs and where a test finds it.
pub(crate) const UNAUTHORIZED: &str =
    "this stub server's admin API (/__admin) requires HTTP basic \
credentials (`Authorization: Basic <base64(user:password)>`, as WireMock's \
--admin-api-basic-auth). to fix: drydock's handles send them; drydock puts them in STUB_ADMIN_URL \
(http://user:password@host:port) for other tools; an in-process server's are \
`StubServer::admin_credentials()`; a drydock-stub binary's are what it was started with \
(--admin-api-basic-auth, DRYDOCK_STUB_ADMIN_API_BASIC_AUTH). Stubbed endpoints need none.";

/// The origin of an http(s) URL (`http://host:port`, the default port left out), which is what
/// the allow-list holds and compares.
pub(crate) fn origin(url: &str) -> Result<String, String> {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
            Ok(parsed.origin().ascii_serialization())
        }
        _ => Err(format!("{url:?} is not an http(s) URL")),
    }
}

/// The upstreams a server may forward to: any (`None`, a server started without an allow-list,
/// as WireMock) or the origins listed.
#[derive(Debug, Default)]
pub(crate) struct Upstreams {
    allowed: Option<Mutex<BTreeSet<String>>>,
}

impl Upstreams {
    /// Only these (origins or URLs; an empty list allows none).
    pub fn only(urls: &[String]) -> Result<Self, String> {
        let origins = urls
            .iter()
            .map(|u| origin(u))
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(Upstreams {
            allowed: Some(Mutex::new(origins)),
        })
    }

    /// Whether an allow-list applies.
    pub fn restricted(&self) -> bool {
        self.allowed.is_some()
    }

    /// The allowed origins; `None` when any is.
    pub fn list(&self) -> Option<Vec<String>> {
        self.allowed.as_ref().map(|allowed| {
            allowed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect()
        })
    }

    /// Adds `url`'s origin (nothing to do when any is allowed).
    pub fn allow(&self, url: &str) -> Result<(), String> {
        let origin = origin(url)?;
        if let Some(allowed) = &self.allowed {
            allowed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(origin);
        }
        Ok(())
    }

    /// Whether the server may forward to `url`; the refusal names the upstream and the setting.
    pub fn check(&self, url: &str) -> Result<(), String> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        let origin = origin(url)?;
        let allowed = allowed.lock().unwrap_or_else(|e| e.into_inner());
        if allowed.contains(&origin) {
            return Ok(());
        }
        let listed = if allowed.is_empty() {
            "none".to_string()
        } else {
            allowed.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        Err(format!(
            "upstream {origin} is not one this stub server may forward to (allowed upstreams: \
             {listed}). to fix: declare it where the server is configured — drydock's \
             `HttpStub::allow_upstream(\"{origin}\")`, the binary's --allowed-upstreams \
             (DRYDOCK_STUB_ALLOWED_UPSTREAMS), a proxy stub in the mapping files — or add it with \
             the admin credentials: POST /__admin/upstreams {{\"origins\": [\"{origin}\"]}} \
             (drydock's handles do that when they mount a proxy stub or start a recording)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_checked_exactly_and_the_scheme_in_any_case() {
        let credentials = AdminCredentials::new("drydock", "secret");
        let header = credentials.authorization();
        assert!(credentials.admits(Some(header.as_bytes())));
        assert!(credentials.admits(Some(header.replace("Basic", "bAsIc").as_bytes())));
        assert!(!credentials.admits(None));
        assert!(!credentials.admits(Some(b"Bearer secret")));
        let wrong = AdminCredentials::new("drydock", "secreT").authorization();
        assert!(!credentials.admits(Some(wrong.as_bytes())));
    }

    #[test]
    fn upstreams_compare_origins() {
        let upstreams =
            Upstreams::only(&["http://payments:8080/v1".to_string()]).expect("a valid URL");
        assert!(upstreams.check("http://payments:8080/other").is_ok());
        let refused = upstreams
            .check("http://169.254.169.254/latest")
            .expect_err("not allowed");
        assert!(refused.contains("http://169.254.169.254"), "{refused}");
        assert!(refused.contains("--allowed-upstreams"), "{refused}");
        upstreams
            .allow("http://169.254.169.254")
            .expect("a valid URL");
        assert!(upstreams.check("http://169.254.169.254/latest").is_ok());
        assert!(Upstreams::default().check("http://anywhere").is_ok());
        let none = Upstreams::only(&[]).expect("an empty list");
        assert!(none.check("http://a").is_err());
    }
}
