//! Seeded pseudo-randomness, so every run of the protocol is reproducible from its seed

/// xorshift64* generator; quality is ample for connection ids and sequence numbers
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
  /// A generator from `seed` (any value, zero included)
  pub fn new(seed: u64) -> Self {
    // splitmix64 step so that nearby seeds give unrelated streams and zero is not a fixed point
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Self((z ^ (z >> 31)) | 1)
  }

  /// The next 64 random bits
  pub fn next_u64(&mut self) -> u64 {
    let mut x = self.0;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    self.0 = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
  }

  /// A random u16
  pub fn next_u16(&mut self) -> u16 {
    (self.next_u64() >> 48) as u16
  }

  /// True with probability `pct` percent
  pub fn chance(&mut self, pct: f64) -> bool {
    (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 100.0 < pct
  }

  /// A uniform value in `0..n` (n > 0)
  pub fn below(&mut self, n: u64) -> u64 {
    self.next_u64() % n
  }
}
