//! One agent's life over rumqttc: wait for its start time, connect (TCP + TLS + CONNACK under
//! the connect timeout), subscribe to its wake-up topic, record what arrives, and reconnect
//! after a loss. Stops (with an MQTT DISCONNECT) when the site says so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushsim_metrics::clock::mono_ns;
use pushsim_metrics::wakeup::{topic, Wakeup};
use pushsim_metrics::Recorder;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS, SubscribeReasonCode,
};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::watch;

use crate::site::SiteConfig;

/// Everything one agent needs.
pub struct AgentRun {
    /// Agent id (client id and certificate CN).
    pub id: String,
    /// Its TLS configuration (built once).
    pub tls: Arc<rustls::ClientConfig>,
    /// When to start, ns on the run clock.
    pub start_ns: u64,
}

fn options(cfg: &SiteConfig, run: &AgentRun) -> MqttOptions {
    let mut o = MqttOptions::new(run.id.clone(), cfg.server_name.clone(), cfg.target.port());
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        run.tls.clone(),
    )));
    o.set_keep_alive(cfg.keep_alive);
    o.set_clean_session(true);
    // One in flight: agents only receive; saves ~6 KB per agent.
    o.set_inflight(1);
    o.set_max_packet_size(4 * 1024, 4 * 1024);
    o
}

/// Sleeps until `at_ns` on the run clock.
pub async fn sleep_until_ns(at_ns: u64) {
    let now = mono_ns();
    if at_ns > now {
        tokio::time::sleep(Duration::from_nanos(at_ns - now)).await;
    }
}

/// Runs one agent until `stop` turns true.
pub async fn run(
    cfg: Arc<SiteConfig>,
    run: AgentRun,
    rec: Arc<Mutex<Recorder>>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = sleep_until_ns(run.start_ns) => {}
        _ = stopped(&mut stop) => return,
    }
    let topic = topic(&run.id);
    let (client, mut ev) = AsyncClient::new(options(&cfg, &run), 4);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    // Our own timeout governs the attempt; rumqttc's (whole seconds) is only a backstop.
    net.set_connection_timeout(cfg.connect_timeout.as_secs() + 2);
    ev.set_network_options(net);
    let mut cold = true;
    loop {
        let connected = tokio::select! {
            c = connect(&cfg, &mut ev, &rec) => c,
            _ = stopped(&mut stop) => return,
        };
        if connected {
            if client
                .try_subscribe(topic.clone(), QoS::AtLeastOnce)
                .is_err()
            {
                lock(&rec).subscribe_failed();
            }
            tokio::select! {
                lost = listen(&mut ev, &rec, &mut cold) => {
                    tracing::debug!(agent = %run.id, error = %lost, "connection lost");
                    lock(&rec).disconnected(mono_ns());
                }
                _ = stopped(&mut stop) => {
                    disconnect(&client, &mut ev).await;
                    return;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.reconnect_delay) => {}
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Resolves once the site says stop (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn lock(rec: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    // A poisoned recorder still holds valid counts.
    rec.lock().unwrap_or_else(|p| p.into_inner())
}

/// One connect attempt; true when CONNACK accepted the session.
async fn connect(cfg: &SiteConfig, ev: &mut EventLoop, rec: &Mutex<Recorder>) -> bool {
    lock(rec).connect_attempt();
    let start = mono_ns();
    let ok = match tokio::time::timeout(cfg.connect_timeout, ev.poll()).await {
        Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
            ack.code == rumqttc::ConnectReturnCode::Success
        }
        Ok(Ok(_)) => false,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connect failed");
            false
        }
        Err(_) => false,
    };
    let now = mono_ns();
    let mut r = lock(rec);
    if ok {
        r.connected(start, now);
    } else {
        r.connect_failed();
        // A timed-out attempt may have left a half-open connection behind.
        ev.network = None;
    }
    ok
}

/// Listens until the connection fails; returns the error.
async fn listen(
    ev: &mut EventLoop,
    rec: &Mutex<Recorder>,
    cold: &mut bool,
) -> rumqttc::ConnectionError {
    loop {
        match ev.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let now = mono_ns();
                let mut r = lock(rec);
                match Wakeup::decode(&p.payload) {
                    Ok(w) => {
                        r.wakeup_received(w.seq, w.intended_ns, now, *cold);
                        *cold = false;
                    }
                    Err(_) => r.malformed(),
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    lock(rec).subscribe_failed();
                }
            }
            Ok(_) => {}
            Err(e) => return e,
        }
    }
}

/// A clean MQTT DISCONNECT, bounded.
async fn disconnect(client: &AsyncClient, ev: &mut EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            match ev.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}
