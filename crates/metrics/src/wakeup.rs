//! The wake-up payload: what the console publishes and agents decode.
//!
//! 16 bytes, big-endian: the wake-up's sequence number (unique in the run), then its *intended*
//! send time on the run clock ([`crate::clock::mono_ns`]). Latency is measured from the intended
//! time, so a console that falls behind its schedule shows up in the numbers.

/// One wake-up call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wakeup {
    /// Sequence number, unique in the run.
    pub seq: u64,
    /// Intended send time, ns on `CLOCK_MONOTONIC`.
    pub intended_ns: u64,
}

/// Length of an encoded wake-up.
pub const LEN: usize = 16;

impl Wakeup {
    /// Wire form.
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..].copy_from_slice(&self.intended_ns.to_be_bytes());
        out
    }

    /// Parses the wire form; anything but exactly 16 bytes is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let b: &[u8; LEN] = bytes.try_into().map_err(|_| PayloadError(bytes.len()))?;
        let (seq, at) = b.split_at(8);
        Ok(Self {
            seq: u64::from_be_bytes(seq.try_into().map_err(|_| PayloadError(bytes.len()))?),
            intended_ns: u64::from_be_bytes(at.try_into().map_err(|_| PayloadError(bytes.len()))?),
        })
    }
}

/// A payload that is not a wake-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("wake-up payload must be {LEN} bytes, got {0}")]
pub struct PayloadError(pub usize);

/// The topic an agent subscribes to and the console publishes its wake-ups on.
pub fn topic(agent_id: &str) -> String {
    format!("epns/agents/{agent_id}/wakeup")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let w = Wakeup {
            seq: 42,
            intended_ns: 1_234_567_890_123,
        };
        assert_eq!(Wakeup::decode(&w.encode()), Ok(w));
    }

    #[test]
    fn wrong_length_is_refused() {
        assert_eq!(Wakeup::decode(b"short"), Err(PayloadError(5)));
        assert_eq!(Wakeup::decode(&[0u8; 17]), Err(PayloadError(17)));
    }

    #[test]
    fn topic_names_the_agent() {
        assert_eq!(topic("agent-000001"), "epns/agents/agent-000001/wakeup");
    }
}
