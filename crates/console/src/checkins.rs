//! The management server's check-in endpoint: `POST /checkin/<agent index>` on loopback.
//!
//! Every wake-up the console sends is noted per agent; an agent's next check-in answers all of
//! its wake-ups sent before it, whether the wake-up arrived by push or the agent only replicated
//! on its interval. The time from a wake-up's intended send time to that check-in is
//! `wakeup_to_checkin`: what push buys over replication alone.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use pushsim_metrics::clock::{elapsed_us, mono_ns};
use pushsim_metrics::Recorder;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Wake-ups waiting for their agent's check-in, and where answers are recorded.
pub struct Board {
    /// Intended send times (ns) of unanswered wake-ups, per agent.
    pending: Mutex<Vec<Vec<u64>>>,
    /// Group of each agent.
    group_of: Arc<Vec<u16>>,
    /// One recorder per group.
    recorders: Vec<Arc<Mutex<Recorder>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Board {
    /// A board for agents whose groups are `group_of`, recording into `recorders` (per group).
    pub fn new(group_of: Arc<Vec<u16>>, recorders: Vec<Arc<Mutex<Recorder>>>) -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(vec![Vec::new(); group_of.len()]),
            group_of,
            recorders,
        })
    }

    /// A wake-up for `agent`, intended at `intended_ns`, was sent.
    pub fn sent(&self, agent: u32, intended_ns: u64) {
        if let Some(p) = lock(&self.pending).get_mut(agent as usize) {
            p.push(intended_ns);
        }
    }

    /// Agent `agent` checked in at `now_ns`; returns how many wake-ups it answered, or None for
    /// an agent that does not exist.
    pub fn checked_in(&self, agent: u32, now_ns: u64) -> Option<usize> {
        let answered: Vec<u64> = {
            let mut pending = lock(&self.pending);
            let p = pending.get_mut(agent as usize)?;
            let (done, later): (Vec<u64>, Vec<u64>) = p.iter().partition(|&&t| t <= now_ns);
            *p = later;
            done
        };
        let group = *self.group_of.get(agent as usize)? as usize;
        if let Some(rec) = self.recorders.get(group) {
            let mut r = lock(rec);
            for t in &answered {
                r.wakeup_answered(elapsed_us(*t, now_ns));
            }
        }
        Some(answered.len())
    }
}

async fn checkin(State(board): State<Arc<Board>>, Path(agent): Path<u32>) -> StatusCode {
    match board.checked_in(agent, mono_ns()) {
        Some(_) => StatusCode::NO_CONTENT,
        None => StatusCode::NOT_FOUND,
    }
}

/// Serves check-ins on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, board: Arc<Board>, mut stop: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/checkin/:agent", post(checkin))
        .with_state(board);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
}

/// Binds the endpoint on a free loopback port.
pub async fn bind() -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkin_answers_every_earlier_wakeup_once() {
        let recs = vec![
            Arc::new(Mutex::new(Recorder::new(0))),
            Arc::new(Mutex::new(Recorder::new(0))),
        ];
        let b = Board::new(Arc::new(vec![0, 1]), recs.clone());
        b.sent(1, 1_000_000);
        b.sent(1, 2_000_000);
        b.sent(1, 9_000_000_000); // after the check-in: stays pending
        assert_eq!(b.checked_in(1, 5_000_000), Some(2));
        assert_eq!(b.checked_in(1, 6_000_000), Some(0));
        assert_eq!(b.checked_in(0, 6_000_000), Some(0));
        assert_eq!(b.checked_in(7, 6_000_000), None);
        let s = recs[1].lock().unwrap().snapshot();
        assert_eq!(s.wakeup_to_checkin.len(), 2);
        assert_eq!(s.wakeup_to_checkin.summary().min, 3_000);
        assert!(recs[0]
            .lock()
            .unwrap()
            .snapshot()
            .wakeup_to_checkin
            .is_empty());
        assert_eq!(b.checked_in(1, 10_000_000_000), Some(1));
    }
}
