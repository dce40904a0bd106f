use std::{path::PathBuf, time::Duration};

use testcontainers::bollard::{errors::Error as DockerError, Docker, API_DEFAULT_VERSION};

use super::host::{self, HostAddress};
use crate::error::{Error, Result};

/// How long an unanswered engine is waited for before the error: an engine either answers a ping
/// in milliseconds or is not there.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Per-request timeout of the Docker client, in seconds.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// A connection to a Docker engine and the address its published ports are reached at.
///
/// ```no_run
/// # async fn demo() -> drydock::Result<()> {
/// let engine = drydock::docker::Engine::connect().await?;
/// println!("engine at {}, ports reached on {}", engine.endpoint(), engine.host());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    endpoint: String,
    address: HostAddress,
}

impl Engine {
    /// Finds the engine (`DOCKER_HOST`, then the usual sockets), checks that it answers, and
    /// resolves the host address for published ports. Fails within a few seconds when there is
    /// no engine, with an error listing every place it looked.
    ///
    /// A `tcp://` engine is reached over mutual TLS when `DOCKER_TLS_VERIFY` is set (to anything
    /// but `0`), an `https://` one always, with `ca.pem`, `cert.pem` and `key.pem` from
    /// `DOCKER_CERT_PATH` (default: the Docker config directory, `$DOCKER_CONFIG` or `~/.docker`),
    /// as the `docker` CLI does.
    pub async fn connect() -> Result<Self> {
        let candidates = endpoint_candidates();
        let looked_at = candidates
            .iter()
            .map(|c| c.describe())
            .collect::<Vec<_>>()
            .join(", ");
        let Some(chosen) = candidates.iter().find(|c| c.plausible()) else {
            return Err(Error::DockerUnavailable {
                endpoint: "nowhere".into(),
                looked_at,
                cause: "no DOCKER_HOST is set and none of the usual sockets exists".into(),
                fix: None,
            });
        };
        let endpoint = chosen.url();
        let unavailable = |cause: String| Error::DockerUnavailable {
            endpoint: endpoint.clone(),
            looked_at: looked_at.clone(),
            cause,
            fix: None,
        };
        // The engine may be fine: its TLS settings here are not.
        let transport =
            Transport::choose(&endpoint, &env_var).map_err(|cause| Error::DockerUnavailable {
                endpoint: endpoint.clone(),
                looked_at: looked_at.clone(),
                cause,
                fix: Some(
                    "correct DOCKER_TLS_VERIFY / DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem), as \
                     the docker CLI reads them"
                        .into(),
                ),
            })?;
        let docker = transport
            .connect(&endpoint)
            .map_err(|e| unavailable(transport.explain(&e)))?;
        let docker = tokio::time::timeout(PING_TIMEOUT, async {
            docker.ping().await?;
            docker.negotiate_version().await
        })
        .await
        .map_err(|_| {
            unavailable(transport.with_context(format!("no answer within {PING_TIMEOUT:?}")))
        })?
        .map_err(|e| unavailable(transport.explain(&e)))?;
        let address = host::resolve(&docker, &endpoint).await?;
        tracing::debug!(%endpoint, host = %address.host, bind = %address.bind_ip, "docker engine answered");
        Ok(Engine {
            docker,
            endpoint,
            address,
        })
    }

    /// The bollard client, for calls testcontainers does not wrap.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The engine's address (`unix:///var/run/docker.sock`, `tcp://…`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The host name or address at which published ports are reached from this process.
    pub fn host(&self) -> &str {
        &self.address.host
    }

    /// The host address ports are published on (loopback unless the host resolution says otherwise).
    pub(crate) fn bind_ip(&self) -> &str {
        &self.address.bind_ip
    }
}

/// How the client reaches the chosen endpoint.
#[derive(Debug, PartialEq, Eq)]
enum Transport {
    /// A unix socket at this path.
    Unix(String),
    /// Plain HTTP to `tcp://` or `http://` (an engine's unauthenticated port, usually 2375).
    Http {
        /// `DOCKER_CERT_PATH` is set although TLS is off: worth a hint when the engine does not
        /// answer, since the usual cause is a forgotten `DOCKER_TLS_VERIFY=1`.
        cert_path_set: bool,
    },
    /// Mutual TLS, as `docker --tlsverify` talks to an engine started with `--tlsverify`.
    Tls(TlsSettings),
    /// Any other scheme (`ssh://`, `npipe://`, …): bollard's own parser, whose error names it.
    Other,
}

impl Transport {
    /// Picks the transport for `endpoint` from Docker's client variables, read through `env`.
    /// For TLS the certificate files are checked here, so a missing one is named instead of
    /// surfacing later as an anonymous handshake failure.
    fn choose(
        endpoint: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, String> {
        if let Some(path) = endpoint.strip_prefix("unix://") {
            return Ok(Transport::Unix(path.to_string()));
        }
        let scheme = endpoint
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        let verify = env("DOCKER_TLS_VERIFY");
        let tls = match scheme.as_deref() {
            Some("https") => {
                TlsSettings::from_env(endpoint, format!("DOCKER_HOST={endpoint}"), env)?
            }
            Some("tcp" | "http") if tls_verify_requested(verify.as_deref()) => {
                let verify = verify.unwrap_or_default();
                TlsSettings::from_env(endpoint, format!("DOCKER_TLS_VERIFY={verify}"), env)?
            }
            Some("tcp" | "http") => {
                return Ok(Transport::Http {
                    cert_path_set: env("DOCKER_CERT_PATH").is_some_and(|v| !v.trim().is_empty()),
                })
            }
            _ => return Ok(Transport::Other),
        };
        tls.check_files()?;
        Ok(Transport::Tls(tls))
    }

    fn connect(&self, endpoint: &str) -> std::result::Result<Docker, DockerError> {
        match self {
            Transport::Unix(path) => {
                Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
            }
            Transport::Http { .. } => {
                Docker::connect_with_http(endpoint, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
            }
            Transport::Tls(tls) => Docker::connect_with_ssl(
                &tls.authority,
                &tls.file(KEY_FILE),
                &tls.file(CERT_FILE),
                &tls.file(CA_FILE),
                REQUEST_TIMEOUT_SECS,
                API_DEFAULT_VERSION,
            ),
            Transport::Other => Docker::connect_with_host(endpoint),
        }
    }

    /// The cause of a failed connection, with the error's whole chain: bollard's top-level
    /// message ("client error (Connect)") hides the TLS or socket error that says what happened.
    fn explain(&self, error: &DockerError) -> String {
        self.with_context(crate::error::chain(error))
    }

    /// Adds what a reader needs to know about this transport to a failure's cause.
    fn with_context(&self, cause: String) -> String {
        match self {
            Transport::Tls(tls) => format!(
                "{cause}\n  over TLS with client certificate {} and CA {} (from {}); an engine \
                 started with --tlsverify rejects a client certificate that its CA did not sign",
                tls.file(CERT_FILE).display(),
                tls.file(CA_FILE).display(),
                tls.cert_dir_origin,
            ),
            Transport::Http {
                cert_path_set: true,
            } => format!(
                "{cause}\n  this was plain HTTP: DOCKER_CERT_PATH is set but DOCKER_TLS_VERIFY is \
                 not; set DOCKER_TLS_VERIFY=1 if the engine listens with TLS"
            ),
            _ => cause,
        }
    }
}

/// Whether a `DOCKER_TLS_VERIFY` value turns TLS on: the `docker` CLI takes any non-empty value;
/// `0` is read as off too, since that is what people write to mean it.
fn tls_verify_requested(value: Option<&str>) -> bool {
    value.is_some_and(|v| !v.trim().is_empty() && v.trim() != "0")
}

const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

/// Docker's client-side TLS settings for an engine at a network address.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TlsSettings {
    /// `host:port`: bollard takes the address without a scheme for TLS.
    authority: String,
    /// The directory holding `ca.pem`, `cert.pem` and `key.pem`.
    cert_dir: PathBuf,
    /// Which setting chose `cert_dir`, for errors (`DOCKER_CERT_PATH=…`, or the default).
    cert_dir_origin: String,
    /// What asked for TLS, for errors (`DOCKER_TLS_VERIFY=1`, `DOCKER_HOST=https://…`).
    requested_by: String,
}

impl TlsSettings {
    /// Reads the certificate directory as the `docker` CLI does: `DOCKER_CERT_PATH`, else the
    /// config directory (`DOCKER_CONFIG`, else `~/.docker`).
    fn from_env(
        endpoint: &str,
        requested_by: String,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, String> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let rest = endpoint
            .split_once("://")
            .map_or(endpoint, |(_, rest)| rest);
        let authority = rest.split('/').next().unwrap_or_default().to_string();
        if authority.is_empty() {
            return Err(format!(
                "DOCKER_HOST={endpoint} names no host:port; to fix: set it like \
                 DOCKER_HOST=tcp://docker.example:2376"
            ));
        }
        let (cert_dir, cert_dir_origin) = if let Some(dir) = set("DOCKER_CERT_PATH") {
            (PathBuf::from(&dir), format!("DOCKER_CERT_PATH={dir}"))
        } else if let Some(dir) = set("DOCKER_CONFIG") {
            (
                PathBuf::from(&dir),
                format!("DOCKER_CONFIG={dir}, as DOCKER_CERT_PATH is not set"),
            )
        } else if let Some(home) = set("HOME") {
            (
                PathBuf::from(home).join(".docker"),
                "~/.docker, as DOCKER_CERT_PATH is not set".to_string(),
            )
        } else {
            return Err(format!(
                "{requested_by} asks for TLS, but DOCKER_CERT_PATH is not set and there is no HOME \
                 to find ~/.docker in; to fix: set DOCKER_CERT_PATH to the directory holding \
                 ca.pem, cert.pem and key.pem"
            ));
        };
        Ok(TlsSettings {
            authority,
            cert_dir,
            cert_dir_origin,
            requested_by,
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.cert_dir.join(name)
    }

    /// Checks that the three files exist and hold PEM of the right kind. bollard reads the
    /// client key only during the handshake and, if it cannot, silently sends no certificate;
    /// the engine then fails the handshake with nothing that points at the file.
    fn check_files(&self) -> std::result::Result<(), String> {
        let missing: Vec<String> = [CA_FILE, CERT_FILE, KEY_FILE]
            .into_iter()
            .map(|name| self.file(name))
            .filter(|path| !path.is_file())
            .map(|path| path.display().to_string())
            .collect();
        if let Some((last, rest)) = missing.split_last() {
            let (what, verb) = if rest.is_empty() {
                (last.clone(), "is")
            } else {
                (format!("{} and {last}", rest.join(", ")), "are")
            };
            return Err(format!(
                "{} asks for TLS, but {what} {verb} missing; the directory {} must hold \
                 ca.pem (the CA that signed the engine's certificate), cert.pem and key.pem \
                 (this client's certificate and key)\n  \
                 to fix: point DOCKER_CERT_PATH at the directory holding them (the one \
                 `docker --tlsverify` uses), or, for an engine that listens without TLS, use \
                 tcp:// without DOCKER_TLS_VERIFY",
                self.requested_by, self.cert_dir_origin
            ));
        }
        for (name, marker, kind) in [
            (CA_FILE, "-----BEGIN CERTIFICATE-----", "certificate"),
            (CERT_FILE, "-----BEGIN CERTIFICATE-----", "certificate"),
            (KEY_FILE, "PRIVATE KEY-----", "private key"),
        ] {
            let path = self.file(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
            if !text.contains(marker) {
                return Err(format!(
                    "{} holds no PEM {kind} (it must, as the file {name} in {}); \
                     to fix: put the engine's TLS files there, as `docker --tlsverify` expects",
                    path.display(),
                    self.cert_dir_origin
                ));
            }
        }
        Ok(())
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

enum Candidate {
    DockerHost(String),
    Socket(PathBuf),
}

impl Candidate {
    fn plausible(&self) -> bool {
        match self {
            Candidate::DockerHost(_) => true,
            Candidate::Socket(path) => path.exists(),
        }
    }

    fn url(&self) -> String {
        match self {
            Candidate::DockerHost(url) => url.clone(),
            Candidate::Socket(path) => format!("unix://{}", path.display()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Candidate::DockerHost(url) => format!("DOCKER_HOST={url}"),
            Candidate::Socket(path) if path.exists() => format!("{}", path.display()),
            Candidate::Socket(path) => format!("{} (absent)", path.display()),
        }
    }
}

/// Where an engine may be, in testcontainers' order: `DOCKER_HOST` alone when set (an explicit
/// choice must not silently fall back), otherwise the system socket, then rootless and Desktop ones.
fn endpoint_candidates() -> Vec<Candidate> {
    if let Ok(url) = std::env::var("DOCKER_HOST") {
        if !url.trim().is_empty() {
            return vec![Candidate::DockerHost(url.trim().to_string())];
        }
    }
    let mut sockets = vec![PathBuf::from("/var/run/docker.sock")];
    if let Ok(dir) = std::env::var("XDG_RUNTIME_DIR") {
        sockets.push(PathBuf::from(dir).join("docker.sock"));
    }
    if let Ok(home) = std::env::var("HOME") {
        sockets.push(PathBuf::from(&home).join(".docker/run/docker.sock"));
        sockets.push(PathBuf::from(&home).join(".docker/desktop/docker.sock"));
    }
    sockets.into_iter().map(Candidate::Socket).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// An environment of its own for each test: the process environment is shared by the
    /// tests running in parallel, so none of them changes it.
    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    /// A directory removed when the test ends.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("drydock-engine-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }

        fn write(&self, name: &str, content: &str) {
            std::fs::write(self.0.join(name), content).expect("write temp file");
        }

        fn path(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const PEM_CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    const PEM_KEY: &str = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

    #[test]
    fn tls_verify_is_any_non_empty_value_but_zero() {
        for off in [None, Some(""), Some("  "), Some("0")] {
            assert!(!tls_verify_requested(off), "{off:?}");
        }
        for on in ["1", "true", "yes"] {
            assert!(tls_verify_requested(Some(on)), "{on}");
        }
    }

    #[test]
    fn sockets_plain_tcp_and_unknown_schemes_keep_their_transport() {
        let none = env_of(&[]);
        assert_eq!(
            Transport::choose("unix:///var/run/docker.sock", &none),
            Ok(Transport::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            Transport::choose("tcp://127.0.0.1:2375", &none),
            Ok(Transport::Http {
                cert_path_set: false
            })
        );
        assert_eq!(
            Transport::choose(
                "tcp://127.0.0.1:2375",
                &env_of(&[("DOCKER_TLS_VERIFY", "0")])
            ),
            Ok(Transport::Http {
                cert_path_set: false
            })
        );
        assert_eq!(
            Transport::choose(
                "tcp://127.0.0.1:2375",
                &env_of(&[("DOCKER_CERT_PATH", "/c")])
            ),
            Ok(Transport::Http {
                cert_path_set: true
            })
        );
        assert_eq!(
            Transport::choose("ssh://me@host", &none),
            Ok(Transport::Other)
        );
    }

    #[test]
    fn cert_dir_is_docker_cert_path_then_config_dir_then_home() {
        let all = env_of(&[
            ("DOCKER_CERT_PATH", "/certs"),
            ("DOCKER_CONFIG", "/config"),
            ("HOME", "/home/me"),
        ]);
        let tls =
            TlsSettings::from_env("tcp://docker.example:2376", "x".into(), &all).expect("settings");
        assert_eq!(tls.authority, "docker.example:2376");
        assert_eq!(tls.cert_dir, PathBuf::from("/certs"));
        assert_eq!(tls.cert_dir_origin, "DOCKER_CERT_PATH=/certs");

        let config = env_of(&[
            ("DOCKER_CERT_PATH", ""),
            ("DOCKER_CONFIG", "/config"),
            ("HOME", "/home/me"),
        ]);
        let tls = TlsSettings::from_env("https://docker.example:2376/", "x".into(), &config)
            .expect("settings");
        assert_eq!(tls.authority, "docker.example:2376");
        assert_eq!(tls.cert_dir, PathBuf::from("/config"));

        let home = env_of(&[("HOME", "/home/me")]);
        let tls =
            TlsSettings::from_env("tcp://10.0.0.1:2376", "x".into(), &home).expect("settings");
        assert_eq!(tls.cert_dir, PathBuf::from("/home/me/.docker"));
        assert!(tls.cert_dir_origin.contains("~/.docker"));
    }

    #[test]
    fn without_a_cert_dir_or_host_the_error_says_what_to_set() {
        let err = TlsSettings::from_env("tcp://h:2376", "DOCKER_TLS_VERIFY=1".into(), &env_of(&[]))
            .expect_err("no HOME");
        assert!(err.contains("DOCKER_CERT_PATH"), "{err}");
        let err = TlsSettings::from_env("https://", "x".into(), &env_of(&[("HOME", "/h")]))
            .expect_err("no host");
        assert!(err.contains("names no host"), "{err}");
    }

    #[test]
    fn missing_cert_files_are_named_with_the_variable_and_the_fix() {
        let dir = TempDir::new();
        dir.write(CA_FILE, PEM_CERT);
        let env = env_of(&[
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", &dir.path()),
        ]);
        let err = Transport::choose("tcp://127.0.0.1:2376", &env).expect_err("files missing");
        assert!(err.contains(&format!("{}/cert.pem", dir.path())), "{err}");
        assert!(err.contains(&format!("{}/key.pem", dir.path())), "{err}");
        assert!(!err.contains(&format!("{}/ca.pem", dir.path())), "{err}");
        assert!(err.contains("DOCKER_TLS_VERIFY=1"), "{err}");
        assert!(
            err.contains(&format!("DOCKER_CERT_PATH={}", dir.path())),
            "{err}"
        );
        assert!(err.contains("to fix"), "{err}");
    }

    #[test]
    fn a_key_file_without_a_key_is_named() {
        let dir = TempDir::new();
        dir.write(CA_FILE, PEM_CERT);
        dir.write(CERT_FILE, PEM_CERT);
        dir.write(KEY_FILE, PEM_CERT);
        let env = env_of(&[("DOCKER_CERT_PATH", &dir.path())]);
        let err = Transport::choose("https://127.0.0.1:2376", &env).expect_err("no key");
        assert!(err.contains(&format!("{}/key.pem", dir.path())), "{err}");
        assert!(err.contains("private key"), "{err}");
    }

    #[test]
    fn complete_cert_files_choose_tls_to_the_address_without_scheme() {
        let dir = TempDir::new();
        dir.write(CA_FILE, PEM_CERT);
        dir.write(CERT_FILE, PEM_CERT);
        dir.write(KEY_FILE, PEM_KEY);
        let env = env_of(&[
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", &dir.path()),
        ]);
        match Transport::choose("tcp://127.0.0.1:2376", &env) {
            Ok(Transport::Tls(tls)) => {
                assert_eq!(tls.authority, "127.0.0.1:2376");
                assert_eq!(tls.file(KEY_FILE), dir.0.join("key.pem"));
                let context = Transport::Tls(tls).with_context("refused".into());
                assert!(context.contains("cert.pem"), "{context}");
            }
            other => panic!("expected TLS, got {other:?}"),
        }
    }

    #[test]
    fn error_chains_name_each_source_once() {
        #[derive(Debug)]
        struct Layer(&'static str, Option<Box<Layer>>);
        impl std::fmt::Display for Layer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Layer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let error = Layer(
            "client error (Connect)",
            Some(Box::new(Layer(
                "Connect",
                Some(Box::new(Layer("received fatal alert: UnknownCA", None))),
            ))),
        );
        assert_eq!(
            crate::error::chain(&error),
            "client error (Connect): received fatal alert: UnknownCA"
        );
    }
}
