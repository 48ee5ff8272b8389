//! splitmix64: a small seeded generator for the virtual-time test scripts, independent of the
//! crate's RNG. Each support module salts it differently so their scripts stay distinct.

#![allow(dead_code)]

/// The generator: its state is the last value of the splitmix64 counter.
#[derive(Debug, Clone)]
pub struct Rand(u64);

impl Rand {
    /// A generator for `seed`, mixed with the module's `salt`.
    pub fn salted(seed: u64, salt: u64) -> Self {
        Rand(seed ^ salt)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// An exponentially distributed wait with the given mean (at least 1).
    pub fn exp(&mut self, mean: u64) -> u64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let v = -(1.0 - u).ln() * mean as f64;
        (v as u64).max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
}
