//! The run folder's `pki/`: CA certificate and key, server and console identities. Keys are
//! written with mode 0600. Agents' identities are issued in memory by the site processes from the
//! CA written here, so a 10,000-agent run does not write 20,000 files.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::ca::{Ca, Identity};
use crate::PkiError;

/// Paths of the files of one run's PKI.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PkiPaths {
    /// CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// CA key (PEM, 0600).
    pub ca_key: PathBuf,
    /// Server certificate (PEM).
    pub server_cert: PathBuf,
    /// Server key (PEM, 0600).
    pub server_key: PathBuf,
}

impl PkiPaths {
    /// The paths inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `contents` to `path`, created with `mode`.
pub fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    f.write_all(contents.as_bytes()).map_err(io(path))
}

/// Writes CA and server identity into `dir` (created if missing).
pub fn write(dir: &Path, ca: &Ca, server: &Identity) -> Result<PkiPaths, PkiError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let p = PkiPaths::in_dir(dir);
    write_file(&p.ca_cert, &ca.cert_pem(), 0o644)?;
    write_file(&p.ca_key, ca.key_pem(), 0o600)?;
    write_file(&p.server_cert, &server.cert_pem(), 0o644)?;
    write_file(&p.server_key, &server.key_pem(), 0o600)?;
    Ok(p)
}

/// Writes `id` as `<name>.pem` and `<name>.key` (0600) into `dir` (which must exist); returns
/// the two paths (e.g. the client certificate every agent presents to a broker of your own).
pub fn write_identity(
    dir: &Path,
    name: &str,
    id: &Identity,
) -> Result<(PathBuf, PathBuf), PkiError> {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    write_file(&cert, &id.cert_pem(), 0o644)?;
    write_file(&key, &id.key_pem(), 0o600)?;
    Ok((cert, key))
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io(path))
}

/// Reloads the CA (for issuing agent certificates in a site process).
pub fn read_ca(p: &PkiPaths) -> Result<Ca, PkiError> {
    Ca::from_pem(&read(&p.ca_cert)?, &read(&p.ca_key)?)
}

/// Reloads the server identity (for the edge).
pub fn read_server(p: &PkiPaths) -> Result<Identity, PkiError> {
    let bad = |path: &Path, why: String| PkiError::Pem {
        path: path.display().to_string(),
        why,
    };
    let cert = pem::parse(read(&p.server_cert)?).map_err(|e| bad(&p.server_cert, e.to_string()))?;
    let key = pem::parse(read(&p.server_key)?).map_err(|e| bad(&p.server_key, e.to_string()))?;
    if key.tag() != "PRIVATE KEY" {
        return Err(bad(
            &p.server_key,
            format!("expected a PKCS#8 PRIVATE KEY, found {}", key.tag()),
        ));
    }
    Ok(Identity {
        cert: cert.into_contents().into(),
        key: key.into_contents().into(),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_are_private_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate().unwrap();
        let server = ca
            .issue_server(&["localhost"], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        let p = write(dir.path(), &ca, &server).unwrap();
        let client = ca.issue_client("agents").unwrap();
        let (cert, client_key) = write_identity(dir.path(), "client", &client).unwrap();
        assert!(fs::read_to_string(cert)
            .unwrap()
            .contains("BEGIN CERTIFICATE"));
        for key in [&p.ca_key, &p.server_key, &client_key] {
            assert_eq!(
                fs::metadata(key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let ca2 = read_ca(&p).unwrap();
        assert_eq!(ca2.cert(), ca.cert());
        let s2 = read_server(&p).unwrap();
        assert_eq!(s2.cert, server.cert);
    }
}
