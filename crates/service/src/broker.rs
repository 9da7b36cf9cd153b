//! rumqttd behind the edge: plain MQTT 3.1.1 listeners on loopback only.
//!
//! rumqttd 0.20 facts this module works around: `Broker::start()` blocks forever (it runs on its
//! own thread here and dies with the process); `RouterConfig::default()` has
//! `max_connections = 0`, which silently drops every CONNECT (sized to the run here); a failed
//! bind is only logged (so [`wait_ready`] probes every listener with a real MQTT CONNECT); its
//! accept loop manages fewer than 1,000 accepts/s per listener (so it gets several).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::ServiceError;

/// Connections above the agents that rumqttd must accept: console, probes, margin.
pub const EXTRA_CONNECTIONS: usize = 64;

/// rumqttd's configuration for `listeners`, accepting up to `agents` +
/// [`EXTRA_CONNECTIONS`] connections.
pub fn config(listeners: &[SocketAddr], agents: usize) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: 64 * 1024,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let v4 = listeners
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let name = format!("plain-{i}");
            let server = ServerSettings {
                name: name.clone(),
                listen: *addr,
                tls: None,
                next_connection_delay_ms: 0,
                connections: connections.clone(),
            };
            (name, server)
        })
        .collect::<HashMap<_, _>>();
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: agents + EXTRA_CONNECTIONS,
            max_outgoing_packet_count: 200,
            max_segment_size: 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        ..Default::default()
    }
}

/// How many plain listeners to give rumqttd for `agents` (one per 2,500 agents, 2 to 8): its
/// accept loop is the bottleneck of a ramp-up, not the listeners' cost.
pub fn listeners_for(agents: usize) -> usize {
    agents.div_ceil(2_500).clamp(2, 8)
}

/// Starts rumqttd on its own thread (it cannot be stopped; it ends with the process).
pub fn start(config: Config) -> Result<(), ServiceError> {
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "rumqttd stopped");
            }
        })
        .map_err(|source| ServiceError::Io {
            what: "spawning rumqttd".into(),
            source,
        })?;
    Ok(())
}

/// Waits until every listener answers an MQTT CONNECT with CONNACK, at most `bound`.
pub async fn wait_ready(listeners: &[SocketAddr], bound: Duration) -> Result<(), ServiceError> {
    for (i, addr) in listeners.iter().enumerate() {
        probe(*addr, &format!("pushsim-probe-{i}"), bound).await?;
    }
    Ok(())
}

/// One MQTT CONNECT/CONNACK against `addr`, retried on refusal until `bound` has passed.
pub async fn probe(addr: SocketAddr, client_id: &str, bound: Duration) -> Result<(), ServiceError> {
    let start = Instant::now();
    let mut last = String::from("no attempt");
    let mut attempt = 0u32;
    while start.elapsed() < bound {
        attempt += 1;
        // A fresh client id per attempt: rumqttd 0.20 panics on a CONNECT that reuses the id of
        // a connection whose set-up failed (rumqtt issue #1062), and its listener never recovers.
        let mut opts = rumqttc::MqttOptions::new(
            format!("{client_id}-{attempt}"),
            addr.ip().to_string(),
            addr.port(),
        );
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut ev) = rumqttc::AsyncClient::new(opts, 1);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(2);
        ev.set_network_options(net);
        match tokio::time::timeout(Duration::from_secs(3), ev.poll()).await {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))))
                if ack.code == rumqttc::ConnectReturnCode::Success =>
            {
                let _ = client.try_disconnect();
                let _ = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
                return Ok(());
            }
            Ok(Ok(other)) => last = format!("unexpected {other:?}"),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "no CONNACK within 3 s".into(),
        }
        // Polling a component that offers no readiness signal; bounded by `bound`.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(ServiceError::BrokerNotReady {
        addr,
        waited_ms: start.elapsed().as_millis() as u64,
        why: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_sized_and_loopback() {
        let addrs: Vec<SocketAddr> = vec![
            "127.0.0.1:1883".parse().unwrap(),
            "127.0.0.1:1884".parse().unwrap(),
        ];
        let c = config(&addrs, 10_000);
        assert_eq!(c.router.max_connections, 10_000 + EXTRA_CONNECTIONS);
        let v4 = c.v4.unwrap();
        assert_eq!(v4.len(), 2);
        for s in v4.values() {
            assert!(s.listen.ip().is_loopback());
            assert!(s.tls.is_none());
            assert_eq!(s.next_connection_delay_ms, 0);
            assert!(s.connections.dynamic_filters);
        }
    }

    #[test]
    fn listener_count_grows_with_agents() {
        assert_eq!(listeners_for(300), 2);
        assert_eq!(listeners_for(10_000), 4);
        assert_eq!(listeners_for(100_000), 8);
    }
}
