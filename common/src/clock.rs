//! The clock the runtime reads expiry against: wall time in whole seconds since the Unix epoch,
//! one per server (in [`crate::mcp::Services`]). Tests move it forward to see sessions,
//! invites, codes and approvals expire, instead of waiting for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Wall time plus however far it has been moved forward (never back: expiry never undoes).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    ahead: Arc<AtomicU64>,
}

impl Clock {
    /// Seconds since the Unix epoch, as this server sees them.
    pub fn now(&self) -> u64 {
        crate::now_unix().saturating_add(self.ahead.load(Ordering::Relaxed))
    }

    /// Moves this clock `secs` forward, for every holder of a clone of it.
    pub fn advance(&self, secs: u64) {
        self.ahead.fetch_add(secs, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_reads_wall_time_and_moves_forward_for_every_clone() {
        let clock = Clock::default();
        let seen = clock.clone();
        let before = crate::now_unix();
        assert!((before..=before + 1).contains(&clock.now()));
        clock.advance(3_600);
        assert!(seen.now() >= before + 3_600);
    }
}
