//! TLS for an external broker: the CA, client certificate and key are files the user gives
//! (`--ca`, `--cert`, `--key`), not the run's PKI. One `ClientConfig` is built from them and
//! shared by every agent of a process.

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::tls::ClientTls;
use crate::PkiError;

fn pem_err(path: &Path, why: impl ToString) -> PkiError {
    PkiError::Pem {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// Every certificate in a PEM file (at least one).
fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(pem_err(path, "no CERTIFICATE in this file"));
    }
    Ok(certs)
}

/// A client configuration trusting the certificates in `ca` and presenting `cert` (the chain
/// in that file) with `key` (PKCS#8, SEC1 or PKCS#1), or no client certificate.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, PkiError> {
    let tls = ClientTls::with_roots(certs(ca)?)?;
    match identity {
        None => tls.config_without_cert(),
        Some((cert, key)) => {
            let chain = certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e))?;
            tls.config_with(chain, key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{files, Ca};

    #[test]
    fn reads_what_the_run_pki_writes_and_names_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate().unwrap();
        let client = ca.issue_client("outside").unwrap();
        let p = files::write(dir.path(), &ca, &client).unwrap();
        client_config(&p.ca_cert, Some((&p.server_cert, &p.server_key))).unwrap();
        client_config(&p.ca_cert, None).unwrap();
        // A key where the CA should be.
        let e = client_config(&p.ca_key, None).unwrap_err().to_string();
        assert!(e.contains("ca.key") && e.contains("no CERTIFICATE"), "{e}");
        let e = client_config(&dir.path().join("nope.pem"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.pem"), "{e}");
        // A certificate where the key should be.
        let e = client_config(&p.ca_cert, Some((&p.server_cert, &p.ca_cert)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ca.pem"), "{e}");
    }
}
