//! Exponential back-off with full jitter.
//!
//! Attempt `n` waits a uniformly random time in `0..=min(max, min_ms * 2^n)` ("full jitter"), so
//! a thousand tabs that lost the same server do not come back in lock-step. A server-given
//! floor (SSE `retry:`, Bayeux `advice.interval`) is honoured on top of that.

use super::rng::Rng;
use super::Millis;

/// Back-off bounds, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The cap of the first attempt's jitter window (the first retry comes within this).
    pub min_ms: Millis,
    /// The largest window any attempt may use.
    pub max_ms: Millis,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            min_ms: 250,
            max_ms: 30_000,
        }
    }
}

/// Back-off state: how many attempts have failed in a row.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    /// Fresh state: the next delay is drawn from the smallest window.
    pub fn new(config: BackoffConfig) -> Self {
        Backoff { config, attempt: 0 }
    }

    /// How many delays were handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Forget earlier failures (after a healthy period).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The upper bound of the jitter window for the current attempt.
    pub fn window(&self) -> Millis {
        let shift = self.attempt.min(32);
        let min = self.config.min_ms;
        // `min * 2^shift`, saturating: a shift after a comparison, not `saturating_mul`, which
        // is a 128-bit multiply (`__multi3`) in wasm32.
        let grown = if min > u64::MAX >> shift {
            u64::MAX
        } else {
            min << shift
        };
        grown
            .min(self.config.max_ms)
            .max(self.config.min_ms.min(self.config.max_ms))
    }

    /// The delay before the next attempt, at least `floor` when the server asked for one.
    pub fn next_delay(&mut self, rng: &mut Rng, floor: Option<Millis>) -> Millis {
        let delay = rng.up_to(self.window());
        self.attempt = self.attempt.saturating_add(1);
        delay.max(floor.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_double_up_to_the_cap() {
        let mut b = Backoff::new(BackoffConfig {
            min_ms: 250,
            max_ms: 4_000,
        });
        let mut rng = Rng::new(1);
        let mut windows = Vec::new();
        for _ in 0..7 {
            windows.push(b.window());
            b.next_delay(&mut rng, None);
        }
        assert_eq!(windows, vec![250, 500, 1000, 2000, 4000, 4000, 4000]);
        b.reset();
        assert_eq!(b.window(), 250);
    }

    #[test]
    fn delays_stay_inside_the_window_and_respect_the_floor() {
        let mut rng = Rng::new(99);
        for attempt in 0..40 {
            let mut b = Backoff::new(BackoffConfig::default());
            for _ in 0..attempt {
                b.next_delay(&mut rng, None);
            }
            let w = b.window();
            let d = b.next_delay(&mut rng, None);
            assert!(d <= w, "attempt {attempt}: {d} > {w}");
            assert!(w <= 30_000);
        }
        let mut b = Backoff::new(BackoffConfig::default());
        assert!(b.next_delay(&mut rng, Some(3_000)) >= 3_000);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(BackoffConfig {
            min_ms: u64::MAX / 2,
            max_ms: u64::MAX,
        });
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            b.next_delay(&mut rng, None);
        }
        assert_eq!(b.window(), u64::MAX);
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        /// The window grows as `min_ms.saturating_mul(2^attempt)`, capped.
        #[test]
        fn windows_are_saturating_doublings(min in proptest::prelude::any::<u64>(), max in proptest::prelude::any::<u64>(), attempts in 0u32..40) {
            let mut b = Backoff::new(BackoffConfig { min_ms: min, max_ms: max });
            let mut rng = Rng::new(5);
            for _ in 0..attempts {
                b.next_delay(&mut rng, None);
            }
            let want = min.saturating_mul(1u64 << attempts.min(32)).min(max).max(min.min(max));
            proptest::prop_assert_eq!(b.window(), want);
        }
    }
}
