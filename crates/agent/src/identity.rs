//! Each agent's client certificate (CN = agent id) and its rustls configuration, built once per
//! agent and reused for every connect. The provider and server verifier are shared by all.

use std::sync::Arc;

use pushsim_pki::tls::ClientTls;
use pushsim_pki::{Ca, PkiError};
use rustls::ClientConfig;

use crate::ids::agent_id;

/// Client configurations for the agents `indices`, in order. Issues on all cores.
pub async fn issue(
    ca: Arc<Ca>,
    tls: ClientTls,
    indices: &[u32],
) -> Result<Vec<Arc<ClientConfig>>, PkiError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let chunk = indices.len().div_ceil(threads).max(1);
    let jobs: Vec<_> = indices
        .chunks(chunk)
        .map(|part| {
            let part = part.to_vec();
            let (ca, tls) = (ca.clone(), tls.clone());
            tokio::task::spawn_blocking(move || {
                part.iter()
                    .map(|&i| tls.config(&ca.issue_client(&agent_id(i))?))
                    .collect::<Result<Vec<_>, PkiError>>()
            })
        })
        .collect();
    let mut out = Vec::with_capacity(indices.len());
    for j in jobs {
        let part = j.await.map_err(|e| PkiError::Pem {
            path: "agent identities".into(),
            why: e.to_string(),
        })??;
        out.extend(part);
    }
    Ok(out)
}
