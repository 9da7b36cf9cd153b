//! The middlebox on its own, behind Toxiproxy's API: one [`Middlebox`] per proxy, created and
//! configured over HTTP (`pushsim toxiproxy`, and the API's tests).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

use pushsim_scenario::PortRole;

use crate::api::{proxy_rules, ApiError, Backend, Registry};
use crate::proxy::{Middlebox, NoEvents, Tag};
use crate::rule::RuleSet;
use crate::toxics::ProxyJson;

/// Proxies that are middleboxes of this process.
#[derive(Default)]
pub struct Standalone {
    proxies: Mutex<BTreeMap<String, Middlebox>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn resolve(what: &str, addr: &str) -> Result<SocketAddr, ApiError> {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ApiError::bad(format!("{what} {addr:?} is not a host:port")))
}

impl Backend for Standalone {
    fn open(&self, p: &ProxyJson) -> Result<String, ApiError> {
        let listen = if p.listen.is_empty() {
            "127.0.0.1:0"
        } else {
            p.listen.as_str()
        };
        let listen = resolve("listen", listen)?;
        let upstream = resolve("upstream", &p.upstream)?;
        let mb = Middlebox::new(RuleSet::default(), Arc::new(NoEvents));
        let tag = Tag {
            role: PortRole::Primary,
            group: 0,
        };
        let bound = mb
            .listen(listen, upstream, tag)
            .map_err(|e| ApiError::bad(format!("cannot listen on {listen}: {e}")))?;
        lock(&self.proxies).insert(p.name.clone(), mb);
        Ok(bound.to_string())
    }

    fn close(&self, name: &str) -> Result<(), ApiError> {
        if let Some(mb) = lock(&self.proxies).remove(name) {
            mb.stop();
        }
        Ok(())
    }

    fn apply(&self, proxy: &ProxyJson) {
        if let Some(mb) = lock(&self.proxies).get(&proxy.name) {
            mb.set_rules(proxy_rules(proxy));
        }
    }
}

/// Serves Toxiproxy's API for stand-alone proxies on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::new(Standalone::default()));
    axum::serve(listener, crate::api::router(registry))
        .with_graceful_shutdown(stop)
        .await
}
