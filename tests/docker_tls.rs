//! `Engine::connect` against an engine endpoint protected by mutual TLS, as `dockerd --tlsverify`
//! serves it: `DOCKER_HOST=tcp://…` with `DOCKER_TLS_VERIFY=1` and `DOCKER_CERT_PATH`.
//!
//! The endpoint is made here: a CA, a server certificate for 127.0.0.1 and client certificates
//! from `rcgen`, and a TLS-terminating proxy (tokio-rustls, client certificates required) on a
//! free loopback port that forwards to the local engine's unix socket. Each case connects in a
//! child process of this test binary, so the Docker variables it sets never reach the tests
//! running in parallel here.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use drydock::docker::Engine;
use drydock_tests::{assert_child_passed, run_child};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::{
    rustls::{
        self,
        pki_types::{CertificateDer, PrivatePkcs8KeyDer},
        server::WebPkiClientVerifier,
        RootCertStore, ServerConfig,
    },
    TlsAcceptor,
};

/// Set for the child runs only: the `child_*` tests do nothing when run by hand with `--ignored`.
const CHILD_MARKER: &str = "DRYDOCK_TEST_TLS_CHILD";
/// A child connects once and makes one call: seconds, even on a loaded machine.
const CHILD_BOUND: Duration = Duration::from_secs(60);

#[test]
fn an_engine_behind_mutual_tls_answers_with_a_client_certificate_its_ca_signed() {
    let pki = Pki::generate();
    let proxy = Proxy::start(&pki);
    let endpoint = proxy.endpoint();
    let output = run_child(
        "child_connects_and_calls_the_api",
        &tls_env(&endpoint, &pki.client_dir()),
        CHILD_BOUND,
    );
    assert_child_passed("child_connects_and_calls_the_api", &output);
    assert!(
        proxy.accepted() >= 1,
        "the child did not go through the TLS proxy (accepted {}, rejected {})",
        proxy.accepted(),
        proxy.rejected()
    );
}

#[test]
fn a_client_certificate_from_another_ca_is_refused_with_an_error_naming_the_endpoint() {
    let pki = Pki::generate();
    let proxy = Proxy::start(&pki);
    let endpoint = proxy.endpoint();
    let output = run_child(
        "child_is_refused",
        &tls_env(&endpoint, &pki.rogue_client_dir()),
        CHILD_BOUND,
    );
    assert_child_passed("child_is_refused", &output);
    assert_eq!(
        proxy.accepted(),
        0,
        "the proxy accepted a client certificate its CA did not sign"
    );
    assert!(
        proxy.rejections_seen(),
        "the refusal did not come from the TLS handshake"
    );
}

#[test]
fn plain_http_to_a_tls_endpoint_fails_with_an_error_naming_the_endpoint() {
    let pki = Pki::generate();
    let proxy = Proxy::start(&pki);
    let endpoint = proxy.endpoint();
    let cert_dir = pki.client_dir();
    let mut env = tls_env(&endpoint, &cert_dir);
    env.retain(|(key, _)| *key != "DOCKER_TLS_VERIFY");
    env.push(("DOCKER_TLS_VERIFY", None));
    let output = run_child("child_is_refused", &env, CHILD_BOUND);
    assert_child_passed("child_is_refused", &output);
    assert_eq!(proxy.accepted(), 0, "plain HTTP passed the TLS proxy");
}

#[test]
fn tls_without_the_certificate_files_names_the_missing_file() {
    let half = tempfile::tempdir().expect("tempdir");
    // Only the CA: the client certificate and key are what a half-copied directory lacks.
    std::fs::write(half.path().join("ca.pem"), Pki::generate().ca_pem).expect("write ca.pem");
    let cert_dir = half.path().display().to_string();
    // Nothing listens there: the error must come before any connection is tried.
    let output = run_child(
        "child_names_the_missing_file",
        &tls_env("tcp://127.0.0.1:9", &cert_dir),
        CHILD_BOUND,
    );
    assert_child_passed("child_names_the_missing_file", &output);
}

#[tokio::test]
#[ignore = "run by an_engine_behind_mutual_tls_answers_… in a child process"]
async fn child_connects_and_calls_the_api() {
    let Some(endpoint) = child_endpoint() else {
        return;
    };
    let engine = Engine::connect()
        .await
        .unwrap_or_else(|e| panic!("connecting over TLS to {endpoint}: {e}"));
    assert_eq!(engine.endpoint(), endpoint);
    let version = engine
        .docker()
        .version()
        .await
        .unwrap_or_else(|e| panic!("GET /version through TLS: {e}"));
    assert!(
        version.api_version.is_some(),
        "the engine's answer has no API version: {version:?}"
    );
    println!(
        "engine {} answered over TLS at {endpoint}",
        version.version.unwrap_or_default()
    );
}

#[tokio::test]
#[ignore = "run by the refusal tests in a child process"]
async fn child_is_refused() {
    let Some(endpoint) = child_endpoint() else {
        return;
    };
    let error = Engine::connect()
        .await
        .expect_err("the TLS endpoint must refuse this client");
    let message = error.to_string();
    println!("{message}");
    assert!(
        matches!(error, drydock::Error::DockerUnavailable { .. }),
        "{error:?}"
    );
    assert!(
        message.contains(&format!("no Docker engine answered at {endpoint}")),
        "the error does not name the endpoint {endpoint}: {message}"
    );
}

#[tokio::test]
#[ignore = "run by tls_without_the_certificate_files_names_the_missing_file in a child process"]
async fn child_names_the_missing_file() {
    let Some(endpoint) = child_endpoint() else {
        return;
    };
    let dir = std::env::var("DOCKER_CERT_PATH").expect("DOCKER_CERT_PATH is set by the parent");
    let error = Engine::connect()
        .await
        .expect_err("the client certificate files are missing");
    let message = error.to_string();
    println!("{message}");
    for expected in [
        endpoint.as_str(),
        &format!("{dir}/cert.pem"),
        &format!("{dir}/key.pem"),
        &format!("DOCKER_CERT_PATH={dir}"),
        "to fix: correct DOCKER_TLS_VERIFY / DOCKER_CERT_PATH",
    ] {
        assert!(
            message.contains(expected),
            "the error lacks {expected:?}: {message}"
        );
    }
    assert!(
        !message.contains(&format!("{dir}/ca.pem")),
        "ca.pem is there, yet named: {message}"
    );
}

/// The endpoint a child was started for, or `None` when it was run by hand.
fn child_endpoint() -> Option<String> {
    if std::env::var_os(CHILD_MARKER).is_none() {
        println!("skipped: this test is run in a child process by its parent test");
        return None;
    }
    Some(std::env::var("DOCKER_HOST").expect("DOCKER_HOST is set by the parent"))
}

/// Docker's client variables for a TLS engine at `endpoint` with certificates in `cert_dir`.
fn tls_env<'a>(endpoint: &'a str, cert_dir: &'a str) -> Vec<(&'a str, Option<&'a str>)> {
    vec![
        (CHILD_MARKER, Some("1")),
        ("DOCKER_HOST", Some(endpoint)),
        ("DOCKER_TLS_VERIFY", Some("1")),
        ("DOCKER_CERT_PATH", Some(cert_dir)),
    ]
}

/// A CA with a server certificate for loopback and a client certificate, written as Docker
/// expects them, plus a client certificate from another CA.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    server_cert: CertificateDer<'static>,
    server_key: Vec<u8>,
}

impl Pki {
    fn generate() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca_pem, ca) = certificate_authority("drydock test CA");
        let (_, rogue_ca) = certificate_authority("some other CA");

        let mut server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params");
        server
            .distinguished_name
            .push(DnType::CommonName, "drydock test engine");
        server
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = server.signed_by(&server_key, &ca).expect("server cert");

        for (name, issuer) in [("client", &ca), ("rogue", &rogue_ca)] {
            let (cert_pem, key_pem) = client_certificate(issuer);
            let client_dir = dir.path().join(name);
            std::fs::create_dir_all(&client_dir).expect("create cert dir");
            // Both trust the right CA for the engine; only the client certificate differs.
            for (file, content) in [
                ("ca.pem", &ca_pem),
                ("cert.pem", &cert_pem),
                ("key.pem", &key_pem),
            ] {
                std::fs::write(client_dir.join(file), content).expect("write pem");
            }
        }
        Pki {
            dir,
            ca_pem,
            server_cert: server_cert.der().clone(),
            server_key: server_key.serialize_der(),
        }
    }

    /// `DOCKER_CERT_PATH` with a client certificate the engine's CA signed.
    fn client_dir(&self) -> String {
        self.dir.path().join("client").display().to_string()
    }

    /// `DOCKER_CERT_PATH` with a client certificate from another CA.
    fn rogue_client_dir(&self) -> String {
        self.dir.path().join("rogue").display().to_string()
    }

    /// The server side of mutual TLS: this certificate, and client certificates from the CA only.
    fn server_config(&self) -> ServerConfig {
        // ring explicitly: the test must not depend on which rustls provider is the default.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        let ca = rustls::pki_types::pem::PemObject::from_pem_slice(self.ca_pem.as_bytes())
            .expect("CA PEM");
        roots.add(ca).expect("CA into the root store");
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .expect("client verifier");
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![self.server_cert.clone()],
                PrivatePkcs8KeyDer::from(self.server_key.clone()).into(),
            )
            .expect("server config")
    }
}

fn certificate_authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA cert");
    (cert.pem(), Issuer::new(params, key))
}

/// A client certificate and its key, in PEM, as `docker --tlsverify` uses them.
fn client_certificate(issuer: &Issuer<'static, KeyPair>) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
    params
        .distinguished_name
        .push(DnType::CommonName, "drydock test client");
    params
        .extended_key_usages
        .push(ExtendedKeyUsagePurpose::ClientAuth);
    let key = KeyPair::generate().expect("client key");
    let cert = params.signed_by(&key, issuer).expect("client cert");
    (cert.pem(), key.serialize_pem())
}

/// A TLS-terminating proxy on a free loopback port that forwards each accepted connection to
/// the local engine's unix socket. It runs on a thread of its own, since the parent test blocks
/// while its child runs; dropping it stops it.
struct Proxy {
    port: u16,
    accepted: Arc<AtomicUsize>,
    rejected: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(pki: &Pki) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("local addr").port();
        let acceptor = TlsAcceptor::from(Arc::new(pki.server_config()));
        let socket = engine_socket();
        let accepted = Arc::new(AtomicUsize::new(0));
        let rejected = Arc::new(AtomicUsize::new(0));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let counters = (accepted.clone(), rejected.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        connection = listener.accept() => {
                            let Ok((tcp, _)) = connection else { continue };
                            let (acceptor, socket) = (acceptor.clone(), socket.clone());
                            let (accepted, rejected) = counters.clone();
                            tokio::spawn(async move {
                                let Ok(mut tls) = acceptor.accept(tcp).await else {
                                    rejected.fetch_add(1, Ordering::SeqCst);
                                    return;
                                };
                                accepted.fetch_add(1, Ordering::SeqCst);
                                let mut engine = tokio::net::UnixStream::connect(&socket)
                                    .await
                                    .unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
                                let _ = tokio::io::copy_bidirectional(&mut tls, &mut engine).await;
                            });
                        }
                    }
                }
            });
        });
        Proxy {
            port,
            accepted,
            rejected,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Connections whose TLS handshake (with a client certificate from the CA) succeeded.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections whose handshake failed: no TLS, or a client certificate the CA did not sign.
    fn rejected(&self) -> usize {
        self.rejected.load(Ordering::SeqCst)
    }

    /// Whether a handshake failed. The proxy counts a failure just after its alert reaches the
    /// client, so the child may have exited a moment before: wait a little for the count.
    fn rejections_seen(&self) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.rejected() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.rejected() > 0
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The local engine's unix socket: `DOCKER_HOST` when it names one, else the system socket.
fn engine_socket() -> PathBuf {
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    assert!(
        socket.exists(),
        "these tests need a local Docker engine at {} (scripts/ensure-docker starts one)",
        socket.display()
    );
    socket
}
