//! rustls configurations from the run's PKI. One crypto provider (ring) everywhere; TLS 1.3
//! preferred, 1.2 allowed. Session resumption is off on both sides: every connect is a full
//! handshake with client-certificate verification, as a fleet of agents after a restart does.
//! The clients of one process share one verdict on the service's chain ([`SharedVerdict`]); each
//! handshake still checks the server's signature over its own transcript.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ca::Identity;
use crate::verdict::SharedVerdict;
use crate::PkiError;

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The ring crypto provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A root store of `cas`.
pub(crate) fn roots(
    cas: impl IntoIterator<Item = CertificateDer<'static>>,
) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca)?;
    }
    Ok(Arc::new(roots))
}

/// The service's TLS configuration: `server` identity, client certificates signed by `ca`
/// required.
pub fn server_config(
    ca: &CertificateDer<'static>,
    server: &Identity,
) -> Result<Arc<ServerConfig>, PkiError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots([ca.clone()])?, provider.clone())
            .build()?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server.cert.clone()], server.key_der())?;
    cfg.send_tls13_tickets = 0;
    Ok(Arc::new(cfg))
}

/// What every client configuration of one process shares: the provider and the verifier of
/// the service's certificate, with its remembered verdicts. Build it once;
/// [`ClientTls::config`] per identity.
#[derive(Clone)]
pub struct ClientTls {
    provider: Arc<CryptoProvider>,
    verifier: Arc<SharedVerdict>,
}

impl ClientTls {
    /// Clients that trust `ca`.
    pub fn new(ca: &CertificateDer<'static>) -> Result<Self, PkiError> {
        Self::with_roots(vec![ca.clone()])
    }

    /// Clients that trust every certificate in `cas`.
    pub fn with_roots(cas: Vec<CertificateDer<'static>>) -> Result<Self, PkiError> {
        let provider = provider();
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(cas)?, provider.clone())
            .build()
            .map_err(|e| PkiError::Pem {
                path: "CA".into(),
                why: e.to_string(),
            })?;
        Ok(Self {
            provider,
            verifier: Arc::new(SharedVerdict::new(verifier)),
        })
    }

    /// How many service chains these clients verified in full; every other handshake reused a
    /// remembered verdict ([`SharedVerdict::verified`]).
    pub fn chains_verified(&self) -> u64 {
        self.verifier.verified()
    }

    /// A configuration presenting `id` as client certificate. Build it once per identity and
    /// reuse the `Arc` for every connect.
    pub fn config(&self, id: &Identity) -> Result<Arc<ClientConfig>, PkiError> {
        self.config_with(vec![id.cert.clone()], id.key_der())
    }

    /// A configuration presenting `chain` (leaf first) with `key`.
    pub fn config_with(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<ClientConfig>, PkiError> {
        let mut cfg = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(VERSIONS)?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier.clone())
            .with_client_auth_cert(chain, key)?;
        cfg.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(cfg))
    }

    /// A configuration with no client certificate (tests of refusal; external brokers that
    /// take none).
    pub fn config_without_cert(&self) -> Result<Arc<ClientConfig>, PkiError> {
        let cfg = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(VERSIONS)?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier.clone())
            .with_no_client_auth();
        Ok(Arc::new(cfg))
    }
}
