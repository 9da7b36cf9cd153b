//! The HTTP proxy on the agents' path as a scenario writes it (`[proxy]`): an external proxy's
//! URL, or the embedded proxy's faults, one flat table each
//! (`{ fault = "error", status = 503, at = "10s", until = "40s" }`); their typed form
//! ([`ProxyFault`]); and the agents' route order over proxy and direct endpoints ([`Route`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fault::{only_params, unknown_kind};
use crate::units::Dur;

/// `[proxy]`: agents whose route includes the proxy go through it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Proxy {
    /// An external proxy, `"http://host:port"`; without it each site runs the embedded proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The embedded proxy's faults; the first live one that applies decides.
    pub faults: Vec<ProxyRule>,
}

/// One fault of the embedded proxy as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyRule {
    /// The fault kind (see [`PROXY_FAULT_KINDS`]).
    pub fault: String,
    /// Name in the report (default `proxy.<index>.<fault>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only these groups' agents (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// When it switches on (offset of the run).
    #[serde(default)]
    pub at: Dur,
    /// When it switches off (default: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Dur>,
    /// error: the status answered (400 to 599).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// allow_ports: the CONNECT ports allowed; 8883 and 443 stand for the service's primary and
    /// fallback endpoints (whatever ports they have in the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// max_tunnels: open tunnels allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// max_tunnels: `"503"` (answer Service Unavailable) or `"refuse"` (reset the connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// tunnel_idle_timeout: idle time before the proxy closes a tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Dur>,
    /// latency: added before the CONNECT answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Dur>,
}

/// One fault of the proxy, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyFault {
    /// Connections refused (RST at accept).
    Down,
    /// `407 Proxy Authentication Required` with `Proxy-Authenticate` (agents send no
    /// credentials).
    AuthRequired,
    /// This status (e.g. 502, 503, 403) instead of a tunnel.
    Error(u16),
    /// Accepts, reads the request, never answers.
    Hang,
    /// Only CONNECTs to these ports; others get 403 (a stock Apache allows 443 and 563).
    AllowPorts(Vec<u16>),
    /// At most this many open tunnels; over it, 503 or a refused connection.
    MaxTunnels {
        /// Open tunnels allowed.
        limit: u32,
        /// Refuse the connection (RST) rather than answer 503.
        refuse: bool,
    },
    /// Tunnels idle this long (no byte either way) are closed.
    TunnelIdleTimeout(Duration),
    /// The CONNECT answer comes this much later.
    Latency(Duration),
}

/// Every proxy fault kind, as written.
pub const PROXY_FAULT_KINDS: &[&str] = &[
    "down",
    "auth_required",
    "error",
    "hang",
    "allow_ports",
    "max_tunnels",
    "tunnel_idle_timeout",
    "latency",
];

impl ProxyRule {
    /// A rule of `fault` on for the whole run, every parameter unset.
    pub fn new(fault: &str) -> Self {
        Self {
            fault: fault.into(),
            name: None,
            groups: Vec::new(),
            at: Dur::secs(0),
            until: None,
            status: None,
            ports: None,
            limit: None,
            mode: None,
            after: None,
            latency: None,
        }
    }

    /// Its name in the report: its own, or `proxy.<index>.<fault>`.
    pub fn label(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("proxy.{index}.{}", self.fault))
    }

    fn given(&self) -> Vec<&'static str> {
        let all: [(&str, bool); 6] = [
            ("status", self.status.is_some()),
            ("ports", self.ports.is_some()),
            ("limit", self.limit.is_some()),
            ("mode", self.mode.is_some()),
            ("after", self.after.is_some()),
            ("latency", self.latency.is_some()),
        ];
        all.iter().filter(|(_, g)| *g).map(|(n, _)| *n).collect()
    }

    /// The typed fault, or what is wrong with the parameters.
    pub fn typed(&self) -> Result<ProxyFault, String> {
        let positive = |d: Option<Dur>, name: &str| match d.map(|d| d.get()) {
            None => Err(format!("needs `{name}` (a duration, e.g. \"20s\")")),
            Some(d) if d.is_zero() => Err(format!("{name} must be more than 0s")),
            Some(d) => Ok(d),
        };
        let (allowed, fault): (&[&str], Result<ProxyFault, String>) = match self.fault.as_str() {
            "down" => (&[], Ok(ProxyFault::Down)),
            "auth_required" => (&[], Ok(ProxyFault::AuthRequired)),
            "hang" => (&[], Ok(ProxyFault::Hang)),
            "error" => (
                &["status"],
                match self.status {
                    None => Err("needs `status` (e.g. status = 503)".into()),
                    Some(407) => Err("status = 407 is the fault \"auth_required\"".into()),
                    Some(s) if (400..=599).contains(&s) => Ok(ProxyFault::Error(s)),
                    Some(s) => Err(format!("status = {s} must be from 400 to 599")),
                },
            ),
            "allow_ports" => (
                &["ports"],
                match &self.ports {
                    Some(p) if !p.is_empty() && !p.contains(&0) => {
                        Ok(ProxyFault::AllowPorts(p.clone()))
                    }
                    Some(_) => Err("ports must be a non-empty list of ports 1 to 65535".into()),
                    None => Err("needs `ports` (e.g. ports = [443, 563], Apache's default)".into()),
                },
            ),
            "max_tunnels" => (
                &["limit", "mode"],
                self.limit
                    .ok_or_else(|| "needs `limit` (open tunnels, e.g. limit = 500)".to_string())
                    .and_then(|limit| {
                        let refuse = match self.mode.as_deref() {
                            None | Some("503") => false,
                            Some("refuse") => true,
                            Some(m) => {
                                return Err(format!(
                                    "mode = \"{m}\" is not one of \"503\", \"refuse\""
                                ))
                            }
                        };
                        Ok(ProxyFault::MaxTunnels { limit, refuse })
                    }),
            ),
            "tunnel_idle_timeout" => (
                &["after"],
                positive(self.after, "after").map(ProxyFault::TunnelIdleTimeout),
            ),
            "latency" => (
                &["latency"],
                positive(self.latency, "latency").map(ProxyFault::Latency),
            ),
            other => return Err(unknown_kind(other, PROXY_FAULT_KINDS)),
        };
        only_params(&self.fault, &self.given(), allowed)?;
        fault
    }
}

/// An external proxy's address as agents reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyAddr {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Reads an external proxy URL: `http://host:port`, on this machine. Anything else is refused
/// with the reason.
pub fn proxy_url(s: &str) -> Result<ProxyAddr, String> {
    let u =
        url::Url::parse(s).map_err(|e| format!("is not a URL ({e}); write http://host:port"))?;
    if u.scheme() == "https" {
        return Err("https proxies are not supported: agents speak plain HTTP CONNECT to their proxy; write http://host:port".into());
    }
    if u.scheme() != "http" {
        return Err(format!(
            "scheme `{}` is not supported; write http://host:port",
            u.scheme()
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("proxy credentials are not supported: the agents simulated here (like ESET's) do not authenticate to proxies; remove user:password@".into());
    }
    if !matches!(u.path(), "" | "/") || u.query().is_some() || u.fragment().is_some() {
        return Err("must be just http://host:port (no path, query or fragment)".into());
    }
    let host = match u.host() {
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => d.to_string(),
        Some(url::Host::Ipv4(ip)) if ip.is_loopback() => ip.to_string(),
        Some(url::Host::Ipv6(ip)) if ip.is_loopback() => ip.to_string(),
        Some(h) => return Err(format!(
            "host `{h}` is not on loopback: the proxy must run on this machine, since it tunnels to pushsim's service on loopback"
        )),
        None => return Err("has no host; write http://host:port".into()),
    };
    let port = u
        .port()
        .ok_or("has no port; write http://host:port (e.g. tinyproxy's 8888)")?;
    Ok(ProxyAddr { host, port })
}

/// The order of an agent's routes when a proxy is configured (without one, agents go direct).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// Every endpoint through the proxy, then every endpoint direct (what an agent with a
    /// proxy in its policy does).
    #[default]
    ProxyFirst,
    /// Direct first, then through the proxy.
    DirectFirst,
    /// Only through the proxy.
    ProxyOnly,
    /// Never through the proxy.
    DirectOnly,
}

impl Route {
    /// Proxy (`true`) and direct (`false`) in the order tried, with a proxy configured or not.
    pub fn vias(self, proxy: bool) -> &'static [bool] {
        match (self, proxy) {
            (_, false) | (Route::DirectOnly, _) => &[false],
            (Route::ProxyFirst, true) => &[true, false],
            (Route::DirectFirst, true) => &[false, true],
            (Route::ProxyOnly, true) => &[true],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(src: &str) -> ProxyRule {
        toml::from_str(src).unwrap()
    }

    #[test]
    fn kinds_type_with_their_parameters() {
        assert_eq!(
            rule("fault = \"error\"\nstatus = 503").typed(),
            Ok(ProxyFault::Error(503))
        );
        assert_eq!(
            rule("fault = \"allow_ports\"\nports = [443, 563]").typed(),
            Ok(ProxyFault::AllowPorts(vec![443, 563]))
        );
        assert_eq!(
            rule("fault = \"max_tunnels\"\nlimit = 5\nmode = \"refuse\"").typed(),
            Ok(ProxyFault::MaxTunnels {
                limit: 5,
                refuse: true
            })
        );
        assert_eq!(
            rule("fault = \"tunnel_idle_timeout\"\nafter = \"20s\"").typed(),
            Ok(ProxyFault::TunnelIdleTimeout(Duration::from_secs(20)))
        );
        assert_eq!(rule("fault = \"hang\"").typed(), Ok(ProxyFault::Hang));
    }

    #[test]
    fn wrong_parameters_are_named() {
        let e = |src: &str| rule(src).typed().unwrap_err();
        assert!(e("fault = \"error\"").contains("needs `status`"));
        assert!(e("fault = \"error\"\nstatus = 407").contains("auth_required"));
        assert!(e("fault = \"error\"\nstatus = 200").contains("400 to 599"));
        assert!(e("fault = \"down\"\nstatus = 503").contains("`status` is not a parameter of down"));
        assert!(e("fault = \"allow_ports\"\nports = []").contains("non-empty"));
        assert!(e("fault = \"max_tunnels\"\nlimit = 1\nmode = \"x\"").contains("\"503\""));
        assert!(e("fault = \"tunnel_idle_timeout\"\nafter = \"0s\"").contains("more than 0s"));
        assert!(e("fault = \"nope\"").contains("\"tunnel_idle_timeout\""));
    }

    #[test]
    fn proxy_urls_are_http_host_port_on_loopback() {
        assert_eq!(
            proxy_url("http://127.0.0.1:8888"),
            Ok(ProxyAddr {
                host: "127.0.0.1".into(),
                port: 8888
            })
        );
        assert_eq!(
            proxy_url("http://localhost:3128/").map(|a| a.port),
            Ok(3128)
        );
        let e = |s: &str| proxy_url(s).unwrap_err();
        assert!(e("https://127.0.0.1:8888").contains("https proxies are not supported"));
        assert!(e("http://u:p@127.0.0.1:8888").contains("credentials are not supported"));
        assert!(e("http://u@127.0.0.1:8888").contains("credentials"));
        assert!(e("http://127.0.0.1").contains("no port"));
        assert!(e("http://10.0.0.1:8888").contains("not on loopback"));
        assert!(e("http://127.0.0.1:8888/x").contains("no path"));
        assert!(e("socks5://127.0.0.1:1080").contains("socks5"));
        assert!(e("127.0.0.1:8888").contains("http://host:port"));
    }

    #[test]
    fn routes_order_proxy_and_direct() {
        assert_eq!(Route::default().vias(true), &[true, false]);
        assert_eq!(Route::ProxyFirst.vias(false), &[false]);
        assert_eq!(Route::DirectFirst.vias(true), &[false, true]);
        assert_eq!(Route::ProxyOnly.vias(true), &[true]);
        assert_eq!(Route::DirectOnly.vias(true), &[false]);
    }
}
