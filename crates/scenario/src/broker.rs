//! `service.broker`: which MQTT broker the run measures — rumqttd behind pushsim's TLS edge,
//! a mosquitto process pushsim manages, or an external broker at `mqtts://host:port`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which broker the service runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Broker {
    /// rumqttd behind pushsim's TLS edge (a child process each).
    #[default]
    Rumqttd,
    /// The `mosquitto` binary, configured and started by pushsim: TLS with the run's PKI on the
    /// two listener roles, client certificates required, loopback only.
    Mosquitto,
    /// A broker pushsim does not run: both listener roles point at it, and nothing can kill it.
    External(External),
}

/// An external broker's address, from `mqtts://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// Host name or address; also the name its certificate is checked against.
    pub host: String,
    /// TLS port.
    pub port: u16,
}

impl Broker {
    /// Whether pushsim runs the broker's process (so `service.*` events can act on it).
    pub fn managed(&self) -> bool {
        !matches!(self, Broker::External(_))
    }

    /// The name in reports: `rumqttd`, `mosquitto`, or the URL.
    pub fn name(&self) -> String {
        String::from(self.clone())
    }
}

/// The choices, for error messages.
pub const CHOICES: &str = "\"rumqttd\", \"mosquitto\" or \"mqtts://host:port\"";

impl TryFrom<String> for Broker {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "rumqttd" => return Ok(Broker::Rumqttd),
            "mosquitto" => return Ok(Broker::Mosquitto),
            _ => {}
        }
        let bad = |why: &str| format!("broker {s:?}: {why}; expected {CHOICES}");
        let url = url::Url::parse(&s).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "mqtts" {
            return Err(bad(
                "only TLS brokers (mqtts://) can be measured: agents always use TLS",
            ));
        }
        if !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
        {
            return Err(bad("only mqtts://host:port (no path, query or user)"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port().unwrap_or(8883);
        if port == 0 {
            return Err(bad("port 0 is not a broker's port"));
        }
        Ok(Broker::External(External { host, port }))
    }
}

impl From<Broker> for String {
    fn from(b: Broker) -> String {
        match b {
            Broker::Rumqttd => "rumqttd".into(),
            Broker::Mosquitto => "mosquitto".into(),
            Broker::External(e) if e.host.contains(':') => {
                format!("mqtts://[{}]:{}", e.host, e.port)
            }
            Broker::External(e) => format!("mqtts://{}:{}", e.host, e.port),
        }
    }
}

impl fmt::Display for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}
