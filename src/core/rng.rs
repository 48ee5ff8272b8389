//! A tiny seeded PRNG for back-off jitter.
//!
//! Jitter needs no cryptographic quality, and a seed makes virtual-time tests repeatable.
//! Hand-written rather than `rand` to keep the wasm build small (a dozen instructions).

/// xorshift64* generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..=max`.
    pub fn up_to(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        self.next_u64() % (max + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_stays_in_range_and_spreads() {
        let mut r = Rng::new(7);
        let mut seen_low = false;
        let mut seen_high = false;
        for _ in 0..10_000 {
            let v = r.up_to(100);
            assert!(v <= 100);
            seen_low |= v < 10;
            seen_high |= v > 90;
        }
        assert!(seen_low && seen_high);
    }

    #[test]
    fn zero_seed_is_not_stuck() {
        let mut r = Rng::new(0);
        assert_ne!(r.next_u64(), r.next_u64());
    }
}
