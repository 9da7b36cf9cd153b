//! A client of Toxiproxy's API: how a run drives an external Toxiproxy server
//! (`network.backend = "toxiproxy"`) for the toxics it has.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::toxics::{ProxyJson, ToxicJson};

/// Bound of one API call.
const CALL: Duration = Duration::from_secs(5);

/// What went wrong talking to Toxiproxy.
#[derive(Debug, thiserror::Error)]
pub enum ToxiproxyError {
    /// Not an `http://host:port` URL.
    #[error("toxiproxy_url {0:?} is not an http://host:port URL")]
    Url(String),
    /// No answer.
    #[error("Toxiproxy at {url} did not answer {what}: {why}")]
    Unreachable {
        /// The server.
        url: String,
        /// The call.
        what: String,
        /// Why.
        why: String,
    },
    /// An error status.
    #[error("Toxiproxy at {url} refused {what}: HTTP {status}: {body}")]
    Refused {
        /// The server.
        url: String,
        /// The call.
        what: String,
        /// HTTP status.
        status: u16,
        /// Its answer.
        body: String,
    },
}

/// A Toxiproxy server's API.
pub struct Toxiproxy {
    url: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Toxiproxy {
    /// The server at `url` (`http://host:port`).
    pub fn new(url: &str) -> Result<Self, ToxiproxyError> {
        let base = url.trim_end_matches('/');
        if !base.starts_with("http://") || base.len() <= "http://".len() {
            return Err(ToxiproxyError::Url(url.into()));
        }
        Ok(Self {
            url: base.into(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ToxiproxyError> {
        let what = format!("{method} {path}");
        let unreachable = |why: String| ToxiproxyError::Unreachable {
            url: self.url.clone(),
            what: what.clone(),
            why,
        };
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| unreachable(e.to_string()))?;
        let resp = tokio::time::timeout(CALL, async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        })
        .await
        .map_err(|_| unreachable(format!("no answer within {CALL:?}")))?
        .map_err(unreachable)?;
        let (status, body) = resp;
        if !(200..300).contains(&status) {
            return Err(ToxiproxyError::Refused {
                url: self.url.clone(),
                what,
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        v: Value,
    ) -> Result<T, ToxiproxyError> {
        serde_json::from_value(v.clone()).map_err(|e| ToxiproxyError::Refused {
            url: self.url.clone(),
            what: what.into(),
            status: 200,
            body: format!("unexpected answer {v} ({e})"),
        })
    }

    /// Creates a proxy; returns it as the server has it (with the address it listens on).
    pub async fn create_proxy(&self, p: &ProxyJson) -> Result<ProxyJson, ToxiproxyError> {
        let v = self
            .call("POST", "/proxies", serde_json::to_value(p).ok())
            .await?;
        self.parse("POST /proxies", v)
    }

    /// Deletes a proxy.
    pub async fn delete_proxy(&self, name: &str) -> Result<(), ToxiproxyError> {
        self.call("DELETE", &format!("/proxies/{name}"), None)
            .await
            .map(|_| ())
    }

    /// Adds a toxic to a proxy.
    pub async fn add_toxic(&self, proxy: &str, t: &ToxicJson) -> Result<(), ToxiproxyError> {
        let path = format!("/proxies/{proxy}/toxics");
        self.call("POST", &path, serde_json::to_value(t).ok())
            .await
            .map(|_| ())
    }

    /// Removes a toxic from a proxy.
    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ToxiproxyError> {
        self.call("DELETE", &format!("/proxies/{proxy}/toxics/{toxic}"), None)
            .await
            .map(|_| ())
    }
}
