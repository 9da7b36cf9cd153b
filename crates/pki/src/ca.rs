//! The run's CA and the certificates it issues.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::PkiError;

/// Common name of every run's CA.
pub const CA_NAME: &str = "pushsim run CA";

/// A CA able to issue certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    key_pem: String,
}

/// A certificate and its private key.
pub struct Identity {
    /// The certificate.
    pub cert: CertificateDer<'static>,
    /// Its PKCS#8 private key.
    pub key: PrivatePkcs8KeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            cert: self.cert.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// The key in the form rustls takes.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// The certificate as PEM.
    pub fn cert_pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.cert.to_vec()))
    }

    /// The key as PEM.
    pub fn key_pem(&self) -> String {
        pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            self.key.secret_pkcs8_der().to_vec(),
        ))
    }
}

/// The CA's parameters; the same every time, so a CA reloaded from its key issues certificates
/// that chain to the CA certificate written at the start of the run.
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "pushsim");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

impl Ca {
    /// A new CA with a fresh ECDSA P-256 key.
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let params = ca_params();
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_der: cert.der().clone(),
            key_pem,
        })
    }

    /// Reloads a CA from its certificate and key PEM (as [`crate::files`] wrote them).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let bad = |why: String| PkiError::Pem {
            path: "CA".into(),
            why,
        };
        let cert = pem::parse(cert_pem).map_err(|e| bad(format!("CA certificate: {e}")))?;
        if cert.tag() != "CERTIFICATE" {
            return Err(bad(format!("expected a CERTIFICATE, found {}", cert.tag())));
        }
        let key = KeyPair::from_pem(key_pem)?;
        Ok(Self {
            issuer: Issuer::new(ca_params(), key),
            cert_der: CertificateDer::from(cert.into_contents()),
            key_pem: key_pem.to_string(),
        })
    }

    /// The CA certificate.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate as PEM.
    pub fn cert_pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.cert_der.to_vec()))
    }

    /// The CA key as PEM (secret: write it 0600).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A server certificate for `dns_names` and `ips` (e.g. `localhost`, 127.0.0.1, ::1).
    pub fn issue_server(&self, dns_names: &[&str], ips: &[IpAddr]) -> Result<Identity, PkiError> {
        let mut p =
            CertificateParams::new(dns_names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        p.subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        p.distinguished_name.push(
            DnType::CommonName,
            dns_names.first().copied().unwrap_or("pushsim service"),
        );
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(p)
    }

    /// A client certificate with `common_name` (an agent id, or `console`).
    pub fn issue_client(&self, common_name: &str) -> Result<Identity, PkiError> {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, common_name);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(p)
    }

    fn issue(&self, params: CertificateParams) -> Result<Identity, PkiError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Identity {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }
}
