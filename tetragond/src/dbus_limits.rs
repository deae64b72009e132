//! How much of the daemon a caller that is not root may use over D-Bus.
//!
//! Reads are open to every user, and each one is served by the main loop.
//! Without a limit, a few clients looping on ListPolicies queue so many
//! requests that root's SetMode waits behind them for seconds. So calls from
//! each non-root uid are held to a token bucket, and root's calls travel on
//! a lane of their own that the main loop serves beside the shared one.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Calls a non-root uid may make per second, sustained.
pub const CALLS_PER_SECOND: f64 = 20.0;
/// Calls a non-root uid may make in a burst.
pub const BURST: f64 = 40.0;
/// Distinct uids tracked before the oldest state is dropped.
const MAX_UIDS: usize = 4096;

/// One bucket per non-root uid.
#[derive(Debug, Default)]
pub struct CallerLimits {
    buckets: Mutex<HashMap<u32, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl CallerLimits {
    /// Takes one call from `uid`'s allowance; `Err` holds how long until
    /// the next call would be allowed. Root is never limited.
    pub fn admit(&self, uid: u32, now: Instant) -> Result<(), Duration> {
        if uid == 0 {
            return Ok(());
        }
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_UIDS && !buckets.contains_key(&uid) {
            buckets.clear();
        }
        let bucket = buckets.entry(uid).or_insert(Bucket {
            tokens: BURST,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * CALLS_PER_SECOND;
        bucket.tokens = (bucket.tokens + refill).min(BURST);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / CALLS_PER_SECOND,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_gets_its_burst_then_its_rate_and_root_is_never_limited() {
        let limits = CallerLimits::default();
        let t0 = Instant::now();
        for _ in 0..BURST as usize {
            assert!(limits.admit(1000, t0).is_ok());
        }
        let wait = limits.admit(1000, t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(50),
            "{wait:?}"
        );
        assert!(
            limits.admit(1001, t0).is_ok(),
            "another uid has its own bucket"
        );
        for _ in 0..1000 {
            assert!(limits.admit(0, t0).is_ok());
        }
        let later = t0 + Duration::from_millis(100);
        let allowed = (0..10)
            .filter(|_| limits.admit(1000, later).is_ok())
            .count();
        assert_eq!(allowed, 2, "20 calls a second: 2 in 100 ms");
    }
}
