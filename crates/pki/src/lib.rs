//! The run's public-key infrastructure: one CA per run, the service's server certificate, a
//! client certificate per agent (CN = agent id) and for the console, and the rustls
//! configurations built from them (ring provider, TLS 1.3 preferred, 1.2 allowed).
//!
//! # Layout
//! - [`ca`]: CA generation, loading from PEM, issuing server and client certificates.
//! - [`files`]: writing the CA and identities into the run folder (keys 0600) and reading them.
//! - [`external`]: the client configuration for an external broker, from the user's PEM files.
//! - [`tls`]: rustls `ServerConfig` (client certificates required) and `ClientConfig` builders.
//! - [`verdict`]: one verdict on the service's certificate chain for all agents of a process.

pub mod ca;
pub mod external;
pub mod files;
pub mod tls;
pub mod verdict;

pub use ca::{Ca, Identity};

/// Why a certificate or TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or failed to sign.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Tls(#[from] rustls::Error),
    /// A client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A PEM file did not hold what was expected.
    #[error("{path}: {why}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}
