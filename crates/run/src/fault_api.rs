//! `--fault-api`: Toxiproxy's API over a running scenario. Its proxies are the run's port roles,
//! `primary` and `fallback` (they exist from the start and cannot be created or deleted); a
//! change to one reaches every site's middlebox, where its toxics apply after the scenario's
//! rules, to open and new connections.

use std::net::SocketAddr;
use std::sync::Arc;

use pushsim_netfault::api::{router, ApiError, Backend, Registry};
use pushsim_netfault::toxics::ProxyJson;
use tokio::sync::{mpsc, watch};

/// Hands proxy changes to the orchestrator, which sends them to the sites.
struct RunBackend {
    tx: mpsc::UnboundedSender<ProxyJson>,
}

const FIXED: &str = "a run's proxies are its port roles, primary and fallback; they cannot be created or deleted (add toxics to them)";

impl Backend for RunBackend {
    fn open(&self, _: &ProxyJson) -> Result<String, ApiError> {
        Err(ApiError::bad(FIXED))
    }

    fn close(&self, _: &str) -> Result<(), ApiError> {
        Err(ApiError::bad(FIXED))
    }

    fn apply(&self, proxy: &ProxyJson) {
        let _ = self.tx.send(proxy.clone());
    }
}

/// Serves the API on `listener` for a run whose service listens on `primary` and `fallback`,
/// until `stop` turns true; proxy changes arrive on the returned channel.
pub fn serve(
    listener: tokio::net::TcpListener,
    primary: SocketAddr,
    fallback: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> mpsc::UnboundedReceiver<ProxyJson> {
    let (tx, rx) = mpsc::unbounded_channel();
    let proxy = |name: &str, upstream: SocketAddr| ProxyJson {
        name: name.into(),
        // Every site has its own listeners (one per group); there is no single address.
        listen: "in each site".into(),
        upstream: upstream.to_string(),
        enabled: true,
        toxics: Vec::new(),
    };
    let registry = Arc::new(Registry::with(
        RunBackend { tx },
        vec![proxy("primary", primary), proxy("fallback", fallback)],
    ));
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, router(registry))
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(error = %e, "fault API stopped");
        }
    });
    rx
}
