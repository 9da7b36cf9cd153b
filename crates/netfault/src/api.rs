//! Toxiproxy's HTTP API, served over anything that can carry rules out ([`Backend`]): the
//! stand-alone middlebox (`pushsim toxiproxy`) or a running scenario's sites (`--fault-api`).
//!
//! Routes and JSON shapes are Toxiproxy 2.x's: `GET /version`, `GET|POST /proxies`,
//! `POST /populate`, `POST /reset`, `GET|POST|PATCH|DELETE /proxies/{name}`,
//! `GET|POST /proxies/{name}/toxics`, `GET|POST|PATCH|DELETE /proxies/{name}/toxics/{toxic}`.
//! Errors are `{"error": "...", "status": N}`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pushsim_scenario::{Fault, NetRule};
use serde_json::json;

use crate::rule::Rule;
use crate::toxics::{toxic_to_rule, ProxyJson, ProxyPatch, ToxicJson, ToxicPatch};

/// The version `/version` reports: Toxiproxy's API level, and this project.
pub const VERSION: &str = concat!("2.12.0 (pushsim ", env!("CARGO_PKG_VERSION"), ")");

/// An API error: an HTTP status and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// What is wrong.
    pub message: String,
}

impl ApiError {
    /// A 400.
    pub fn bad(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
        }
    }
    fn not_found(what: &str) -> Self {
        Self {
            status: 404,
            message: format!("{what} not found"),
        }
    }
    fn conflict(what: &str) -> Self {
        Self {
            status: 409,
            message: format!("{what} already exists"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (
            status,
            Json(json!({"error": self.message, "status": self.status})),
        )
            .into_response()
    }
}

/// What carries a proxy's rules out.
pub trait Backend: Send + Sync + 'static {
    /// Starts a new proxy; returns the address it listens on (Toxiproxy reports the bound one).
    fn open(&self, proxy: &ProxyJson) -> Result<String, ApiError>;
    /// Stops a proxy.
    fn close(&self, name: &str) -> Result<(), ApiError>;
    /// A proxy changed (enabled, toxics): put its rules ([`proxy_rules`]) in force.
    fn apply(&self, proxy: &ProxyJson);
}

/// The proxies and their toxics.
pub struct Registry<B> {
    proxies: Mutex<BTreeMap<String, ProxyJson>>,
    backend: B,
}

type Shared<B> = State<Arc<Registry<B>>>;
type ApiResult<T> = Result<T, ApiError>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A toxic's rule, checked.
fn checked(t: &ToxicJson) -> ApiResult<(NetRule, Fault)> {
    let r = toxic_to_rule(t).map_err(|e| ApiError::bad(format!("toxic {}: {e}", t.name)))?;
    let f = r
        .typed()
        .map_err(|e| ApiError::bad(format!("toxic {}: {e}", t.name)))?;
    if !(0.0..=1.0).contains(&t.toxicity) {
        return Err(ApiError::bad(format!(
            "toxic {}: toxicity {} must be from 0 to 1",
            t.name, t.toxicity
        )));
    }
    Ok((r, f))
}

/// The rules of a proxy: a disabled one refuses and closes everything.
pub fn proxy_rules(p: &ProxyJson) -> Vec<Rule> {
    if !p.enabled {
        return vec![
            Rule::new(0, "disabled", Fault::Refuse),
            Rule::new(1, "disabled", Fault::Close),
        ];
    }
    p.toxics
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let (r, fault) = checked(t).ok()?;
            Some(Rule {
                direction: r.direction,
                toxicity: r.toxicity,
                ..Rule::new(i as u32, t.name.clone(), fault)
            })
        })
        .collect()
}

impl<B: Backend> Registry<B> {
    /// An empty registry over `backend`.
    pub fn new(backend: B) -> Self {
        Self {
            proxies: Mutex::new(BTreeMap::new()),
            backend,
        }
    }

    /// A registry whose proxies exist already (a run's port roles); they cannot be created or
    /// deleted through the API.
    pub fn with(backend: B, proxies: Vec<ProxyJson>) -> Self {
        let r = Self::new(backend);
        for p in proxies {
            lock(&r.proxies).insert(p.name.clone(), p);
        }
        r
    }

    fn apply(&self, p: &ProxyJson) {
        self.backend.apply(p);
    }

    fn create(&self, mut p: ProxyJson) -> ApiResult<ProxyJson> {
        if p.name.is_empty() {
            return Err(ApiError::bad("missing required field: name"));
        }
        if lock(&self.proxies).contains_key(&p.name) {
            return Err(ApiError::conflict("proxy"));
        }
        for t in &mut p.toxics {
            name_toxic(t);
            checked(t)?;
        }
        p.listen = self.backend.open(&p)?;
        self.apply(&p);
        lock(&self.proxies).insert(p.name.clone(), p.clone());
        Ok(p)
    }

    fn update<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut ProxyJson) -> ApiResult<T>,
    ) -> ApiResult<(T, ProxyJson)> {
        let mut all = lock(&self.proxies);
        let p = all
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found("proxy"))?;
        let mut next = p.clone();
        let out = f(&mut next)?;
        *p = next.clone();
        drop(all);
        self.apply(&next);
        Ok((out, next))
    }

    fn get(&self, name: &str) -> ApiResult<ProxyJson> {
        lock(&self.proxies)
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::not_found("proxy"))
    }
}

fn name_toxic(t: &mut ToxicJson) {
    if t.name.is_empty() {
        t.name = format!("{}_{}", t.kind, t.stream);
    }
}

/// The API's routes over `registry`.
pub fn router<B: Backend>(registry: Arc<Registry<B>>) -> Router {
    Router::new()
        .route(
            "/version",
            get(|| async { Json(json!({ "version": VERSION })) }),
        )
        .route("/proxies", get(list::<B>).post(create::<B>))
        .route("/populate", post(populate::<B>))
        .route("/reset", post(reset::<B>))
        .route(
            "/proxies/:name",
            get(show::<B>)
                .post(patch::<B>)
                .patch(patch::<B>)
                .delete(delete::<B>),
        )
        .route(
            "/proxies/:name/toxics",
            get(toxics::<B>).post(add_toxic::<B>),
        )
        .route(
            "/proxies/:name/toxics/:toxic",
            get(show_toxic::<B>)
                .post(patch_toxic::<B>)
                .patch(patch_toxic::<B>)
                .delete(delete_toxic::<B>),
        )
        .with_state(registry)
}

/// A JSON body, or a 400 naming what is wrong with it.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad(format!("bad request body: {e}")))
}

async fn list<B: Backend>(State(r): Shared<B>) -> Json<BTreeMap<String, ProxyJson>> {
    Json(lock(&r.proxies).clone())
}

async fn create<B: Backend>(State(r): Shared<B>, b: axum::body::Bytes) -> ApiResult<Response> {
    let p = r.create(body(&b)?)?;
    Ok((StatusCode::CREATED, Json(p)).into_response())
}

async fn populate<B: Backend>(State(r): Shared<B>, b: axum::body::Bytes) -> ApiResult<Response> {
    let wanted: Vec<ProxyJson> = body(&b)?;
    let mut out = Vec::new();
    for p in wanted {
        // Toxiproxy keeps a proxy that is already as asked, and replaces one that differs.
        if let Ok(have) = r.get(&p.name) {
            if have.upstream == p.upstream && (p.listen.is_empty() || have.listen == p.listen) {
                out.push(have);
                continue;
            }
            r.backend.close(&p.name)?;
            lock(&r.proxies).remove(&p.name);
        }
        out.push(r.create(p)?);
    }
    Ok((StatusCode::CREATED, Json(json!({ "proxies": out }))).into_response())
}

async fn reset<B: Backend>(State(r): Shared<B>) -> StatusCode {
    let names: Vec<String> = lock(&r.proxies).keys().cloned().collect();
    for n in names {
        let _ = r.update(&n, |p| {
            p.enabled = true;
            p.toxics.clear();
            Ok(())
        });
    }
    StatusCode::NO_CONTENT
}

async fn show<B: Backend>(
    State(r): Shared<B>,
    Path(name): Path<String>,
) -> ApiResult<Json<ProxyJson>> {
    r.get(&name).map(Json)
}

async fn patch<B: Backend>(
    State(r): Shared<B>,
    Path(name): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult<Json<ProxyJson>> {
    let patch: ProxyPatch = body(&b)?;
    if patch.listen.is_some() || patch.upstream.is_some() {
        let mut p = r.get(&name)?;
        if patch.listen.as_ref().is_some_and(|l| *l != p.listen)
            || patch.upstream.as_ref().is_some_and(|u| *u != p.upstream)
        {
            // A new address is a new proxy with the same toxics.
            p.listen = patch.listen.unwrap_or(p.listen);
            p.upstream = patch.upstream.unwrap_or(p.upstream);
            p.enabled = patch.enabled.unwrap_or(p.enabled);
            r.backend.close(&name)?;
            lock(&r.proxies).remove(&name);
            return r.create(p).map(Json);
        }
    }
    r.update(&name, |p| {
        if let Some(e) = patch.enabled {
            p.enabled = e;
        }
        Ok(())
    })
    .map(|(_, p)| Json(p))
}

async fn delete<B: Backend>(
    State(r): Shared<B>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    r.get(&name)?;
    r.backend.close(&name)?;
    lock(&r.proxies).remove(&name);
    Ok(StatusCode::NO_CONTENT)
}

async fn toxics<B: Backend>(
    State(r): Shared<B>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<ToxicJson>>> {
    r.get(&name).map(|p| Json(p.toxics))
}

async fn add_toxic<B: Backend>(
    State(r): Shared<B>,
    Path(name): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult<Json<ToxicJson>> {
    let mut t: ToxicJson = body(&b)?;
    name_toxic(&mut t);
    checked(&t)?;
    r.update(&name, |p| {
        if p.toxics.iter().any(|x| x.name == t.name) {
            return Err(ApiError::conflict("toxic"));
        }
        p.toxics.push(t.clone());
        Ok(t)
    })
    .map(|(t, _)| Json(t))
}

async fn show_toxic<B: Backend>(
    State(r): Shared<B>,
    Path((name, toxic)): Path<(String, String)>,
) -> ApiResult<Json<ToxicJson>> {
    r.get(&name)?
        .toxics
        .into_iter()
        .find(|t| t.name == toxic)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("toxic"))
}

async fn patch_toxic<B: Backend>(
    State(r): Shared<B>,
    Path((name, toxic)): Path<(String, String)>,
    b: axum::body::Bytes,
) -> ApiResult<Json<ToxicJson>> {
    let patch: ToxicPatch = body(&b)?;
    r.update(&name, |p| {
        let t = p
            .toxics
            .iter_mut()
            .find(|t| t.name == toxic)
            .ok_or_else(|| ApiError::not_found("toxic"))?;
        let mut next = t.clone();
        if let Some(x) = patch.toxicity {
            next.toxicity = x;
        }
        next.attributes.extend(patch.attributes);
        checked(&next)?;
        *t = next.clone();
        Ok(next)
    })
    .map(|(t, _)| Json(t))
}

async fn delete_toxic<B: Backend>(
    State(r): Shared<B>,
    Path((name, toxic)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    r.update(&name, |p| {
        let before = p.toxics.len();
        p.toxics.retain(|t| t.name != toxic);
        if p.toxics.len() == before {
            return Err(ApiError::not_found("toxic"));
        }
        Ok(())
    })
    .map(|_| StatusCode::NO_CONTENT)
}
