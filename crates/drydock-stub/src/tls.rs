//! HTTPS: a certificate authority made for one server, the server certificate it signs, and what
//! a test needs to trust it.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::{
    rustls::{
        self,
        pki_types::{CertificateDer, PrivatePkcs8KeyDer},
        ServerConfig,
    },
    TlsAcceptor,
};

use crate::error::StubError;

/// The certificate authority a stub server's certificate comes from: trust it, and only it, to
/// call the server over HTTPS.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = drydock_stub::StubServer::builder().https().start().await?;
/// let ca = server.certificate_authority().expect("an HTTPS server has a CA");
/// let client = reqwest::Client::builder()
///     .tls_built_in_root_certs(false)
///     .add_root_certificate(ca.reqwest_certificate()?)
///     .build()?;
/// assert!(server.url().starts_with("https://"));
/// # let _ = client;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateAuthority {
    pem: String,
}

impl CertificateAuthority {
    /// A CA certificate in PEM (made elsewhere, e.g. fetched from a stub server's
    /// `GET /__admin/tls/ca`).
    pub fn from_pem(pem: impl Into<String>) -> Self {
        CertificateAuthority { pem: pem.into() }
    }

    /// The CA certificate in PEM, for clients configured by file (`curl --cacert`,
    /// `SSL_CERT_FILE`, `NODE_EXTRA_CA_CERTS`).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The CA certificate for `reqwest::ClientBuilder::add_root_certificate`.
    pub fn reqwest_certificate(&self) -> Result<reqwest::Certificate, StubError> {
        reqwest::Certificate::from_pem(self.pem.as_bytes()).map_err(|e| StubError::Tls {
            message: format!("the CA certificate does not parse: {e}"),
        })
    }
}

/// What a server serves HTTPS with.
#[derive(Clone)]
pub(crate) struct Tls {
    pub ca: CertificateAuthority,
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("ca", &self.ca).finish()
    }
}

impl Tls {
    /// A fresh CA and a server certificate it signs for `localhost`, `127.0.0.1`, `::1` and
    /// `hosts` (names or addresses, e.g. a container's name on its network).
    pub fn generate(hosts: &[String]) -> Result<Tls, StubError> {
        let failed = |what: &str, e: rcgen::Error| StubError::Tls {
            message: format!("{what}: {e}"),
        };
        let mut ca =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("CA parameters", e))?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "drydock-stub test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let ca_key = KeyPair::generate().map_err(|e| failed("CA key", e))?;
        let ca_cert = ca
            .self_signed(&ca_key)
            .map_err(|e| failed("CA certificate", e))?;
        let issuer = Issuer::new(ca, ca_key);

        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        names.extend(hosts.iter().filter(|h| !h.is_empty()).cloned());
        let mut server =
            CertificateParams::new(names).map_err(|e| failed("server certificate names", e))?;
        server
            .distinguished_name
            .push(DnType::CommonName, "drydock-stub");
        server
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        let server_key = KeyPair::generate().map_err(|e| failed("server key", e))?;
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .map_err(|e| failed("server certificate", e))?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth().with_single_cert(
                    vec![
                        server_cert.der().clone(),
                        CertificateDer::from(ca_cert.der().to_vec()),
                    ],
                    PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
                )
            })
            .map_err(|e| StubError::Tls {
                message: format!("TLS configuration: {e}"),
            })?;
        Ok(Tls {
            ca: CertificateAuthority { pem: ca_cert.pem() },
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}
