//! Replication: an agent checks in with the management server (the console's HTTP endpoint)
//! every replication interval, and at once when a wake-up arrives. One HTTP client per site,
//! its connections pooled, and a bound on check-ins in flight so a broadcast's burst of
//! check-ins cannot exhaust the site's file descriptors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

/// Check-ins in flight per site at most.
pub const MAX_IN_FLIGHT: usize = 256;

/// The site's check-in client.
pub struct Checkin {
    client: Client<HttpConnector, Empty<Bytes>>,
    base: String,
    permits: Semaphore,
    timeout: Duration,
}

impl Checkin {
    /// Checks in at `http://<addr>/checkin/<agent index>`.
    pub fn new(addr: SocketAddr) -> Arc<Self> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .build(http);
        Arc::new(Self {
            client,
            base: format!("http://{addr}/checkin/"),
            permits: Semaphore::new(MAX_IN_FLIGHT),
            timeout: Duration::from_secs(10),
        })
    }

    /// One check-in of agent `index`; Ok with the round trip, Err when it failed.
    pub async fn check_in(&self, index: u32) -> Result<Duration, String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let req = hyper::Request::post(format!("{}{index}", self.base))
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let start = std::time::Instant::now();
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(Ok(resp)) if resp.status().is_success() => Ok(start.elapsed()),
            Ok(Ok(resp)) => Err(format!("status {}", resp.status())),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}
