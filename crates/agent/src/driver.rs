//! One agent's life over rumqttc, as its [`Policy`] decides: wait for its start time, connect
//! to the endpoint the policy names (TCP + TLS + CONNACK under the connect timeout), subscribe
//! to its wake-up topic, record what arrives, declare the link dead when PINGRESP does not come
//! in time, go back to the primary when the policy says so, and reconnect after a loss. Stops
//! (with an MQTT DISCONNECT) when the site says so. Check-ins run beside it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushsim_metrics::clock::mono_ns;
use pushsim_metrics::wakeup::{topic, Wakeup};
use pushsim_metrics::Recorder;
use pushsim_scenario::{PortRole, Profile, Session};
use rand::Rng;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, QoS};
use rumqttc::{Proxy, ProxyAuth, ProxyType, SubscribeReasonCode, TlsConfiguration, Transport};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::liveness::Liveness;
use crate::policy::{agent_rng, Decision, Endpoint, Policy};
use crate::site::Shared;

/// Everything one agent needs.
pub struct AgentRun {
    /// Run index.
    pub index: u32,
    /// Agent id (client id and certificate CN).
    pub id: String,
    /// Its TLS configuration (built once).
    pub tls: Arc<rustls::ClientConfig>,
    /// When to start, ns on the run clock.
    pub start_ns: u64,
    /// Its group (index into the site's recorders and profiles).
    pub group: usize,
}

fn options(shared: &Shared, run: &AgentRun, profile: &Profile, to: Endpoint) -> MqttOptions {
    let role = match to.role {
        PortRole::Primary => 0,
        PortRole::Fallback => 1,
    };
    let target = shared.targets[run.group][role];
    let mut o = MqttOptions::new(run.id.clone(), shared.server_name.clone(), target.port());
    if to.proxy {
        if let Some(Some(p)) = shared.proxies.get(run.group) {
            // CONNECT server_name:port; never credentials (agents do not authenticate).
            o.set_proxy(Proxy {
                ty: ProxyType::Http,
                auth: ProxyAuth::None,
                addr: p.host.clone(),
                port: p.port,
            });
        }
    }
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        run.tls.clone(),
    )));
    o.set_keep_alive(profile.keep_alive.get());
    o.set_clean_session(profile.session == Session::Clean);
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

/// Resolves once the site says stop (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn lock(rec: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    // A poisoned recorder still holds valid counts.
    rec.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a connection ended.
enum End {
    Lost(String),
    PingrespTimeout,
    PrimaryRetry,
    Stop,
}

/// Runs one agent until `stop` turns true.
pub async fn run(shared: Arc<Shared>, run: AgentRun, mut stop: watch::Receiver<bool>) {
    tokio::select! {
        _ = sleep_until_ns(run.start_ns) => {}
        _ = stopped(&mut stop) => return,
    }
    let Some(profile) = shared.profiles.get(run.group) else {
        return;
    };
    let Some(rec) = shared.recorders.get(run.group).cloned() else {
        return;
    };
    if let Some(c) = &shared.checkin {
        tokio::spawn(replicate(
            c.clone(),
            run.index,
            profile.replication_interval.get(),
            shared.seed,
            rec.clone(),
            stop.clone(),
        ));
    }
    let topic = topic(&run.id);
    let proxy = shared.proxies.get(run.group).is_some_and(Option::is_some);
    let mut policy = Policy::new(profile, shared.seed, run.index, proxy);
    let first = Endpoint::direct(PortRole::Primary);
    let (client, mut ev) = AsyncClient::new(options(&shared, &run, profile, first), 4);
    // rumqttc reserves room for 100 events of 144 bytes per connection (14 KB per agent); an
    // agent takes each event as it comes, so a handful is all the queue ever holds.
    ev.state.events.shrink_to_fit();
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    // Our own timeout governs the attempt; rumqttc's (whole seconds) is only a backstop.
    net.set_connection_timeout(profile.connect_timeout.get().as_secs() + 2);
    ev.set_network_options(net);
    let mut cold = true;
    let mut lost_ns: Option<u64> = None;
    let mut first_attempt: Option<u64> = None;
    let mut first_done = false;
    let mut decision = policy.decide();
    loop {
        let to = match decision {
            Decision::Wait(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = stopped(&mut stop) => return,
                }
                decision = policy.decide();
                continue;
            }
            Decision::Connect(to) => to,
        };
        ev.mqtt_options = options(&shared, &run, profile, to);
        let start = mono_ns();
        first_attempt.get_or_insert(start);
        lock(&rec).connect_attempt();
        let attempt = tokio::select! {
            r = tokio::time::timeout(profile.connect_timeout.get(), ev.poll()) => r,
            _ = stopped(&mut stop) => return,
        };
        let ok = matches!(&attempt, Ok(Ok(Event::Incoming(Packet::ConnAck(a)))) if a.code == rumqttc::ConnectReturnCode::Success);
        let now = mono_ns();
        if !ok {
            lock(&rec).connect_failed(now);
            // A timed-out attempt may have left a half-open connection behind.
            ev.clean();
            decision = policy.connect_failed();
            continue;
        }
        {
            let mut r = lock(&rec);
            r.connected(start, now, to.path(), lost_ns.take());
            if !first_done {
                r.first_connected(first_attempt.unwrap_or(start), now, to.path());
                first_done = true;
            }
        }
        policy.connected(to, Duration::from_nanos(now.saturating_sub(shared.t0_ns)));
        if client
            .try_subscribe(topic.clone(), QoS::AtLeastOnce)
            .is_err()
        {
            lock(&rec).subscribe_failed();
        }
        let retry_at = policy.primary_retry_at().map(|at| {
            Instant::now()
                + at.saturating_sub(Duration::from_nanos(now.saturating_sub(shared.t0_ns)))
        });
        let end = listen(
            &mut ev, &rec, &shared, &run, profile, &mut cold, retry_at, &mut stop,
        )
        .await;
        let now = mono_ns();
        let down = shared.path_down_ns().filter(|d| *d >= start && *d <= now);
        match end {
            End::Stop => {
                disconnect(&client, &mut ev).await;
                return;
            }
            End::PrimaryRetry => {
                disconnect(&client, &mut ev).await;
                let mut r = lock(&rec);
                r.disconnected(now, to.path(), false, None);
                r.primary_retry();
                decision = policy.retry_primary();
            }
            lost => {
                if matches!(lost, End::PingrespTimeout) {
                    lock(&rec).pingresp_timeout();
                }
                if let End::Lost(why) = &lost {
                    tracing::debug!(agent = %run.id, error = %why, "connection lost");
                }
                ev.clean();
                lock(&rec).disconnected(now, to.path(), true, down);
                lost_ns = Some(now);
                decision = policy.lost(Duration::from_nanos(now.saturating_sub(shared.t0_ns)));
            }
        }
    }
}

/// Listens on an established connection until it ends.
#[allow(clippy::too_many_arguments)]
async fn listen(
    ev: &mut EventLoop,
    rec: &Mutex<Recorder>,
    shared: &Shared,
    run: &AgentRun,
    profile: &Profile,
    cold: &mut bool,
    retry_at: Option<Instant>,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let origin = Instant::now();
    let mut liveness = Liveness::new(profile.pingresp_timeout.get());
    let far = origin + Duration::from_secs(365 * 24 * 3600);
    loop {
        tokio::select! {
            r = ev.poll() => match r {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let now = mono_ns();
                    match Wakeup::decode(&p.payload) {
                        Ok(w) => {
                            lock(rec).wakeup_received(w.seq, w.intended_ns, now, *cold);
                            *cold = false;
                            if let Some(c) = &shared.checkin {
                                // A woken agent replicates at once.
                                let (c, rec, index) = (c.clone(), shared.recorders[run.group].clone(), run.index);
                                tokio::spawn(async move {
                                    let r = c.check_in(index).await;
                                    lock(&rec).checkin(r.ok().map(|d| d.as_micros() as u64));
                                });
                            }
                        }
                        Err(_) => lock(rec).malformed(),
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                        lock(rec).subscribe_failed();
                    }
                }
                Ok(Event::Outgoing(Outgoing::PingReq)) => liveness.ping_sent(origin.elapsed()),
                Ok(Event::Incoming(Packet::PingResp)) => liveness.pong(),
                Ok(_) => {}
                Err(e) => return End::Lost(e.to_string()),
            },
            _ = tokio::time::sleep_until(liveness.deadline().map(|d| origin + d).unwrap_or(far)), if liveness.deadline().is_some() => {
                return End::PingrespTimeout;
            }
            _ = tokio::time::sleep_until(retry_at.unwrap_or(far)), if retry_at.is_some() => {
                return End::PrimaryRetry;
            }
            _ = stopped(stop) => return End::Stop,
        }
    }
}

/// Checks in every `interval` (±10 %, the first at a random point of the first interval).
async fn replicate(
    c: Arc<crate::checkin::Checkin>,
    index: u32,
    interval: Duration,
    seed: u64,
    rec: Arc<Mutex<Recorder>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = agent_rng(seed ^ 0x5245_504c, index); // "REPL"
    let mut wait = interval.mul_f64(rng.random_range(0.0..1.0));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped(&mut stop) => return,
        }
        // A task of its own: this loop, alive for the whole run in every agent, stays small.
        let (c, rec) = (c.clone(), rec.clone());
        tokio::spawn(async move {
            let r = c.check_in(index).await;
            lock(&rec).checkin(r.ok().map(|d| d.as_micros() as u64));
        });
        wait = interval.mul_f64(rng.random_range(0.9..1.1));
    }
}

/// A clean MQTT DISCONNECT, bounded.
async fn disconnect(client: &AsyncClient, ev: &mut EventLoop) {
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match ev.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
    ev.clean();
}
