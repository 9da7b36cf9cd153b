//! The console's MQTT connection and the loop that publishes the schedule on time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushsim_metrics::clock::mono_ns;
use pushsim_metrics::wakeup::{topic, Wakeup};
use pushsim_metrics::{Ledger, Recorder};
use rumqttc::{
    AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::checkins::Board;
use crate::schedule::Schedule;
use crate::timer::Deadline;

/// Why the console could not work.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The first connect failed.
    #[error("console cannot connect to the service at {addr}: {why}")]
    Connect {
        /// The service endpoint.
        addr: SocketAddr,
        /// What went wrong.
        why: String,
    },
}

/// The console's MQTT client, connected.
pub struct Console {
    client: AsyncClient,
    driver: JoinHandle<()>,
    closing: Arc<AtomicBool>,
    agent_ids: Arc<Vec<String>>,
}

impl Console {
    /// Connects as `client_id` to `addr` (certificate checked against `server_name`), waiting at
    /// most `timeout` for CONNACK. `agent_ids[i]` is the id of run index `i`.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        tls: Arc<rustls::ClientConfig>,
        client_id: &str,
        agent_ids: Arc<Vec<String>>,
        timeout: Duration,
    ) -> Result<Self, ConsoleError> {
        let mut o = MqttOptions::new(client_id, server_name, addr.port());
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        o.set_keep_alive(Duration::from_secs(30));
        o.set_inflight(100);
        o.set_clean_session(false);
        let (client, mut ev) = AsyncClient::new(o, 1024);
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(timeout.as_secs().max(1));
        ev.set_network_options(net);
        let err = |why: String| ConsoleError::Connect { addr, why };
        match tokio::time::timeout(timeout, ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(a))))
                if a.code == rumqttc::ConnectReturnCode::Success => {}
            Ok(Ok(other)) => return Err(err(format!("unexpected {other:?}"))),
            Ok(Err(e)) => return Err(err(e.to_string())),
            Err(_) => return Err(err(format!("no CONNACK within {timeout:?}"))),
        }
        let closing = Arc::new(AtomicBool::new(false));
        let closed = closing.clone();
        let driver = tokio::spawn(async move {
            loop {
                if let Err(e) = ev.poll().await {
                    if closed.load(Ordering::Relaxed)
                        || matches!(e, rumqttc::ConnectionError::RequestsDone)
                    {
                        return;
                    }
                    tracing::debug!(error = %e, "console connection lost; reconnecting");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Ok(Self {
            client,
            driver,
            closing,
            agent_ids,
        })
    }

    /// Publishes `schedule` against run start `t0_ns`: each wake-up is entered in `ledger`
    /// (which gives its sequence number) and published at its intended time, or at once when
    /// the console is behind (latency still counts from the intended time). Returns early when
    /// `stop` turns true; returns the number published.
    pub async fn run(
        &self,
        schedule: &Schedule,
        t0_ns: u64,
        ledger: &Mutex<Ledger>,
        rec: &Mutex<Recorder>,
        board: Option<&Board>,
        mut stop: watch::Receiver<bool>,
    ) -> u64 {
        let mut sent = 0;
        let mut timer = match Deadline::new() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "no timerfd: wake-ups leave on tokio's millisecond timer");
                None
            }
        };
        for p in &schedule.items {
            let intended_ns = t0_ns + p.offset_ns;
            let now = mono_ns();
            if intended_ns > now {
                let wait = async {
                    let on_time = match timer.as_mut() {
                        Some(t) => t.until(intended_ns).await.is_ok(),
                        None => false,
                    };
                    if !on_time {
                        let left = intended_ns.saturating_sub(mono_ns());
                        tokio::time::sleep(Duration::from_nanos(left)).await;
                    }
                };
                tokio::select! {
                    _ = wait => {}
                    _ = stopped(&mut stop) => return sent,
                }
            } else if *stop.borrow() {
                return sent;
            }
            let Some(id) = self.agent_ids.get(p.agent as usize) else {
                continue;
            };
            let seq = ledger
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(p.agent, intended_ns);
            if let Some(b) = board {
                b.sent(p.agent, intended_ns);
            }
            let payload = Wakeup { seq, intended_ns }.encode().to_vec();
            if self
                .client
                .publish(topic(id), QoS::AtLeastOnce, false, payload)
                .await
                .is_err()
            {
                // The event loop is gone; the wake-up stays in the ledger and counts as lost.
                tracing::warn!("console event loop ended; wake-up {seq} not published");
            }
            rec.lock()
                .unwrap_or_else(|e| e.into_inner())
                .wakeup_sent(mono_ns());
            sent += 1;
        }
        sent
    }

    /// Disconnects (bounded).
    pub async fn close(self) {
        self.closing.store(true, Ordering::Relaxed);
        let _ = self.client.disconnect().await;
        let mut driver = self.driver;
        if tokio::time::timeout(Duration::from_secs(2), &mut driver)
            .await
            .is_err()
        {
            driver.abort();
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
