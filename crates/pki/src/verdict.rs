//! One verdict on the service's certificate chain for all the agents of a process.
//!
//! Every agent of a site verifies the same server chain on every connect: one P-256 signature
//! and the path building around it, about a tenth of an agent's CPU per handshake (perf, 10,000
//! agents). [`SharedVerdict`] wraps the webpki verifier and remembers, for [`VERDICT_TTL`], the
//! chains it accepted, keyed by their exact bytes, the server name and the OCSP response. The
//! service sees the same handshake either way; what is not repeated is a client-side
//! computation whose answer cannot differ for the same bytes within a minute.
//!
//! What each handshake still checks itself: the server's CertificateVerify signature over that
//! handshake's transcript (`verify_tls13_signature` / `verify_tls12_signature` are not cached),
//! so a peer without the certificate's private key still fails. Refusals are never remembered:
//! a bad chain is verified, and refused, every time. A remembered chain is verified again once
//! its minute is over, so a certificate that expires mid-run is refused at most a minute late.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// How long an accepted chain is taken as accepted without verifying it again.
pub const VERDICT_TTL: Duration = Duration::from_secs(60);

/// At most this many accepted chains are remembered (a run has one or two service
/// certificates; an external broker one).
const CAPACITY: usize = 8;

/// A chain that was accepted, and when.
#[derive(Debug)]
struct Accepted {
    end_entity: Vec<u8>,
    intermediates: Vec<Vec<u8>>,
    name: ServerName<'static>,
    ocsp: Vec<u8>,
    at: UnixTime,
}

impl Accepted {
    fn matches(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
    ) -> bool {
        self.end_entity == end_entity.as_ref()
            && self.intermediates.len() == intermediates.len()
            && self
                .intermediates
                .iter()
                .zip(intermediates)
                .all(|(a, b)| a.as_slice() == b.as_ref())
            && &self.name == name
            && self.ocsp == ocsp
    }

    /// Still good at `now`: younger than [`VERDICT_TTL`], and the clock has not gone back past
    /// it.
    fn fresh(&self, now: UnixTime) -> bool {
        now.as_secs()
            .checked_sub(self.at.as_secs())
            .is_some_and(|age| age < VERDICT_TTL.as_secs())
    }
}

/// A [`ServerCertVerifier`] that verifies a chain once and then remembers that it accepted it;
/// see the module documentation for what is and is not remembered.
#[derive(Debug)]
pub struct SharedVerdict {
    inner: Arc<dyn ServerCertVerifier>,
    accepted: Mutex<VecDeque<Accepted>>,
    /// Chains handed to `inner` (accepted or not).
    verified: AtomicU64,
}

impl SharedVerdict {
    /// Remembers `inner`'s acceptances for [`VERDICT_TTL`].
    pub fn new(inner: Arc<dyn ServerCertVerifier>) -> Self {
        Self {
            inner,
            accepted: Mutex::new(VecDeque::with_capacity(CAPACITY)),
            verified: AtomicU64::new(0),
        }
    }

    /// How many chains were verified in full (the rest were remembered).
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    fn accepted(&self) -> std::sync::MutexGuard<'_, VecDeque<Accepted>> {
        // The list is valid whatever a panicking holder was doing: entries are whole.
        self.accepted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ServerCertVerifier for SharedVerdict {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let remembered = |accepted: &VecDeque<Accepted>| {
            accepted
                .iter()
                .any(|a| a.matches(end_entity, intermediates, server_name, ocsp_response))
        };
        {
            let mut accepted = self.accepted();
            accepted.retain(|a| a.fresh(now));
            if remembered(&accepted) {
                return Ok(ServerCertVerified::assertion());
            }
        }
        self.verified.fetch_add(1, Ordering::Relaxed);
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let mut accepted = self.accepted();
        if remembered(&accepted) {
            // Another handshake verified the same chain meanwhile.
            return Ok(verified);
        }
        if accepted.len() == CAPACITY {
            accepted.pop_front();
        }
        accepted.push_back(Accepted {
            end_entity: end_entity.as_ref().to_vec(),
            intermediates: intermediates.iter().map(|c| c.as_ref().to_vec()).collect(),
            name: server_name.to_owned(),
            ocsp: ocsp_response.to_vec(),
            at: now,
        });
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

#[cfg(test)]
mod tests {
    use rustls::client::WebPkiServerVerifier;

    use super::*;
    use crate::tls::{provider, roots};
    use crate::Ca;

    struct Fixture {
        ca: Ca,
        verdict: SharedVerdict,
    }

    fn fixture() -> Fixture {
        let ca = Ca::generate().unwrap();
        let inner = WebPkiServerVerifier::builder_with_provider(
            roots([ca.cert().clone()]).unwrap(),
            provider(),
        )
        .build()
        .unwrap();
        Fixture {
            ca,
            verdict: SharedVerdict::new(inner),
        }
    }

    fn name(s: &str) -> ServerName<'static> {
        ServerName::try_from(s.to_string()).unwrap()
    }

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    fn now_secs() -> u64 {
        UnixTime::now().as_secs()
    }

    #[test]
    fn an_accepted_chain_is_verified_once_per_ttl() {
        let f = fixture();
        let server = f.ca.issue_server(&["localhost"], &[]).unwrap();
        let t0 = now_secs();
        for dt in [0, 1, 59] {
            f.verdict
                .verify_server_cert(&server.cert, &[], &name("localhost"), &[], at(t0 + dt))
                .unwrap();
        }
        assert_eq!(f.verdict.verified(), 1);
        // A minute on, the chain is verified again.
        f.verdict
            .verify_server_cert(&server.cert, &[], &name("localhost"), &[], at(t0 + 60))
            .unwrap();
        assert_eq!(f.verdict.verified(), 2);
        // A clock that went back before the acceptance does not reuse it.
        f.verdict
            .verify_server_cert(&server.cert, &[], &name("localhost"), &[], at(t0 + 30))
            .unwrap();
        assert_eq!(f.verdict.verified(), 3);
    }

    #[test]
    fn refusals_are_never_remembered_and_other_bytes_are_verified() {
        let f = fixture();
        let good = f.ca.issue_server(&["localhost"], &[]).unwrap();
        let t = at(now_secs());
        f.verdict
            .verify_server_cert(&good.cert, &[], &name("localhost"), &[], t)
            .unwrap();
        // The same certificate for another name: verified, and refused, every time.
        for _ in 0..2 {
            let err = f
                .verdict
                .verify_server_cert(&good.cert, &[], &name("other.example"), &[], t)
                .unwrap_err();
            assert!(matches!(err, Error::InvalidCertificate(_)), "{err:?}");
        }
        // A certificate of another CA: refused every time.
        let stranger = Ca::generate()
            .unwrap()
            .issue_server(&["localhost"], &[])
            .unwrap();
        for _ in 0..2 {
            assert!(f
                .verdict
                .verify_server_cert(&stranger.cert, &[], &name("localhost"), &[], t)
                .is_err());
        }
        // Another good certificate, and the first with an extra intermediate, are new chains.
        let second = f.ca.issue_server(&["localhost"], &[]).unwrap();
        f.verdict
            .verify_server_cert(&second.cert, &[], &name("localhost"), &[], t)
            .unwrap();
        let _ = f.verdict.verify_server_cert(
            &good.cert,
            &[f.ca.cert().clone()],
            &name("localhost"),
            &[],
            t,
        );
        assert_eq!(f.verdict.verified(), 1 + 2 + 2 + 1 + 1);
        // Both good chains are now remembered.
        for c in [&good.cert, &second.cert] {
            f.verdict
                .verify_server_cert(c, &[], &name("localhost"), &[], t)
                .unwrap();
        }
        assert_eq!(f.verdict.verified(), 7);
    }

    #[test]
    fn it_remembers_a_bounded_number_of_chains() {
        let f = fixture();
        let t = at(now_secs());
        let certs: Vec<_> = (0..CAPACITY + 1)
            .map(|_| f.ca.issue_server(&["localhost"], &[]).unwrap().cert)
            .collect();
        for c in &certs {
            f.verdict
                .verify_server_cert(c, &[], &name("localhost"), &[], t)
                .unwrap();
        }
        assert_eq!(f.verdict.accepted().len(), CAPACITY);
        // The oldest went out; the newest are still remembered.
        let before = f.verdict.verified();
        f.verdict
            .verify_server_cert(&certs[CAPACITY], &[], &name("localhost"), &[], t)
            .unwrap();
        assert_eq!(f.verdict.verified(), before);
        f.verdict
            .verify_server_cert(&certs[0], &[], &name("localhost"), &[], t)
            .unwrap();
        assert_eq!(f.verdict.verified(), before + 1);
    }
}
