//! The push service: rumqttd on plain loopback listeners, and the edge that terminates TLS in
//! front of it. Both run in-process here; the orchestrator (`pushsim-run`) runs them as child
//! processes for a run.
//!
//! # Layout
//! - [`ports`]: picking free loopback ports and binding listeners (with `SO_REUSEPORT`).
//! - [`broker`]: rumqttd's configuration, start on its own threads, readiness probe.
//! - [`edge`]: TLS termination with client certificates, concurrent handshakes under a timeout,
//!   byte pipes to rumqttd's listeners spread round-robin.

pub mod broker;
pub mod edge;
pub mod ports;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source} (is the port in use? choose another or 0 for a free one)")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// rumqttd did not answer on a listener within the bound.
    #[error("rumqttd is not answering MQTT on {addr} after {waited_ms} ms: {why}")]
    BrokerNotReady {
        /// The listener.
        addr: std::net::SocketAddr,
        /// How long the probe tried.
        waited_ms: u64,
        /// The last probe error.
        why: String,
    },
    /// rumqttd refused its configuration.
    #[error("rumqttd refused to start: {0}")]
    Broker(String),
    /// TLS configuration problem.
    #[error(transparent)]
    Pki(#[from] pushsim_pki::PkiError),
    /// Other I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}
