//! A site's HTTP proxy: the embedded CONNECT proxy (one listener per group, on a thread of its
//! own, its faults on the run clock) or an external proxy's address; tunnels the proxy cuts are
//! recorded as drops of their group, with the time their agent took to notice.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pushsim_metrics::Recorder;
use pushsim_netfault::connect::{ConnectProxy, ProxyEvents, ProxyStats, TunnelRecord};
use pushsim_netfault::connect_rule::ProxyRule;
use pushsim_scenario::ProxyAddr;

/// The proxy agents of a site go through.
#[derive(Debug, Clone)]
pub enum ProxySetup {
    /// The embedded proxy, with these rules.
    Embedded(Vec<ProxyRule>),
    /// A proxy run by someone else.
    External(ProxyAddr),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records the tunnels the proxy cuts.
struct Cuts {
    recorders: Vec<Arc<Mutex<Recorder>>>,
    stopping: AtomicBool,
}

impl ProxyEvents for Cuts {
    fn cut(&self, group: u16, at_ns: u64) {
        if let Some(r) = self.recorders.get(usize::from(group)) {
            lock(r).dropped(at_ns);
        }
    }

    fn noticed(&self, group: u16, cut_ns: u64, at_ns: u64) {
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        if let Some(r) = self.recorders.get(usize::from(group)) {
            lock(r).drop_noticed(cut_ns, at_ns);
        }
    }
}

/// The embedded proxy of one site.
pub struct SiteProxy {
    proxy: ConnectProxy,
    cuts: Arc<Cuts>,
    done: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl SiteProxy {
    /// Starts the proxy with `rules` and a listener per group (one recorder each, and its
    /// service endpoints: primary, fallback) on loopback; returns it and each group's proxy
    /// address. Rules see the endpoints' ports as 8883 and 443, the ports they stand for.
    pub fn start(
        rules: Vec<ProxyRule>,
        recorders: Vec<Arc<Mutex<Recorder>>>,
        targets: &[[SocketAddr; 2]],
    ) -> std::io::Result<(Self, Vec<ProxyAddr>)> {
        let cuts = Arc::new(Cuts {
            recorders,
            stopping: AtomicBool::new(false),
        });
        let proxy = ConnectProxy::new(rules, cuts.clone());
        let (handle, done) = crate::netthread::own_thread("proxy")?;
        let _in_its_runtime = handle.enter();
        let any = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
        let addrs = targets
            .iter()
            .enumerate()
            .map(|(g, [p, f])| {
                let nominal = vec![(p.port(), 8883), (f.port(), 443)];
                proxy.listen(any, g as u16, nominal).map(|a| ProxyAddr {
                    host: a.ip().to_string(),
                    port: a.port(),
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok((
            Self {
                proxy,
                cuts,
                done: Mutex::new(Some(done)),
            },
            addrs,
        ))
    }

    /// The site is stopping its agents: their closes are no longer detections.
    pub fn stopping(&self) {
        self.cuts.stopping.store(true, Ordering::Relaxed);
    }

    /// Stops the proxy (every connection it serves closes and is recorded, within a bound);
    /// returns what it did, summed and request by request.
    pub async fn stop(&self) -> (ProxyStats, Vec<TunnelRecord>) {
        self.proxy.stop();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.proxy.drained()).await;
        if let Some(d) = lock(&self.done).take() {
            let _ = d.send(());
        }
        (self.proxy.stats(), self.proxy.records())
    }
}
