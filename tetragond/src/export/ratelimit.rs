//! Rate limits in events per minute, global and per policy: token buckets
//! that refill continuously (limit/60 per second) and hold at most one
//! minute's worth, so a quiet policy may burst up to its limit at once.

use std::{collections::HashMap, time::Instant};

use super::stats::DropReason;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_minute: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_minute: u64, now: Instant) -> Self {
        TokenBucket {
            per_minute: per_minute as f64,
            tokens: per_minute as f64,
            last: now,
        }
    }

    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_minute / 60.0).min(self.per_minute);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Both limits; 0 means unlimited.
#[derive(Debug)]
pub struct RateLimits {
    global: Option<TokenBucket>,
    per_policy: u64,
    policies: HashMap<String, TokenBucket>,
}

impl RateLimits {
    pub fn new(global_per_minute: u64, policy_per_minute: u64) -> Self {
        RateLimits {
            global: (global_per_minute > 0)
                .then(|| TokenBucket::new(global_per_minute, Instant::now())),
            per_policy: policy_per_minute,
            policies: HashMap::new(),
        }
    }

    /// Whether no limit is set: then no event needs the clock read.
    pub fn unlimited(&self) -> bool {
        self.global.is_none() && self.per_policy == 0
    }

    /// Whether an event of `policy` (empty for process events) may go out.
    /// The policy's own limit is checked first, so an event refused by it
    /// does not use up the global budget.
    pub fn check(&mut self, policy: &str, now: Instant) -> Result<(), DropReason> {
        if self.per_policy > 0 && !policy.is_empty() {
            let limit = self.per_policy;
            let bucket = self
                .policies
                .entry(policy.to_string())
                .or_insert_with(|| TokenBucket::new(limit, now));
            if !bucket.allow(now) {
                return Err(DropReason::PolicyRateLimit);
            }
        }
        match &mut self.global {
            Some(b) => {
                if b.allow(now) {
                    Ok(())
                } else {
                    Err(DropReason::RateLimit)
                }
            }
            None => Ok(()),
        }
    }

    /// Forgets buckets that are full again (their policy went quiet or away).
    pub fn prune(&mut self, now: Instant) {
        let limit = self.per_policy as f64;
        self.policies.retain(|_, b| {
            let refill = now.saturating_duration_since(b.last).as_secs_f64() * limit / 60.0;
            b.tokens + refill < limit
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_a_minute_then_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(60, t0);
        assert_eq!((0..100).filter(|_| b.allow(t0)).count(), 60);
        assert!(!b.allow(t0 + Duration::from_millis(500)));
        assert!(b.allow(t0 + Duration::from_millis(1600)), "one per second");
    }

    #[test]
    fn policy_limit_is_per_policy_and_before_global() {
        let t0 = Instant::now();
        let mut l = RateLimits::new(5, 3);
        let a: Vec<_> = (0..4).map(|_| l.check("a", t0)).collect();
        assert_eq!(a[3], Err(DropReason::PolicyRateLimit));
        assert_eq!(l.check("b", t0), Ok(()));
        assert_eq!(l.check("b", t0), Ok(()));
        assert_eq!(
            l.check("b", t0),
            Err(DropReason::RateLimit),
            "global 5 used"
        );
        assert_eq!(l.check("", t0), Err(DropReason::RateLimit));
    }

    #[test]
    fn unlimited_by_default() {
        let mut l = RateLimits::new(0, 0);
        assert!(l.unlimited());
        assert!(!RateLimits::new(0, 1).unlimited());
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| l.check("a", t0).is_ok()));
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let t0 = Instant::now();
        let mut l = RateLimits::new(0, 60);
        l.check("a", t0).expect("allowed");
        l.prune(t0);
        assert_eq!(l.policies.len(), 1);
        l.prune(t0 + Duration::from_secs(2));
        assert!(l.policies.is_empty());
    }
}
