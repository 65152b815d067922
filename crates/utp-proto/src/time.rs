//! Virtual time: the protocol never reads a clock, the caller passes `now` in

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in time, in microseconds since an epoch chosen by the caller
///
/// Only differences matter. Drivers use `Instant::from_micros(start.elapsed())`;
/// tests advance a counter. The low 32 bits are what goes on the wire as a uTP timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
  /// The epoch
  pub const ZERO: Self = Self(0);

  /// A time `micros` microseconds after the epoch
  pub const fn from_micros(micros: u64) -> Self {
    Self(micros)
  }

  /// Microseconds since the epoch
  pub const fn as_micros(self) -> u64 {
    self.0
  }

  /// The wrapping 32-bit microsecond timestamp carried in uTP headers
  pub const fn wire_timestamp(self) -> u32 {
    self.0 as u32
  }

  /// Time elapsed since `earlier`, or zero if `earlier` is later
  pub fn saturating_since(self, earlier: Self) -> Duration {
    Duration::from_micros(self.0.saturating_sub(earlier.0))
  }
}

impl Add<Duration> for Instant {
  type Output = Self;
  fn add(self, rhs: Duration) -> Self {
    Self(
      self
        .0
        .saturating_add(rhs.as_micros().min(u64::MAX as u128) as u64),
    )
  }
}

impl Sub<Duration> for Instant {
  type Output = Self;
  fn sub(self, rhs: Duration) -> Self {
    Self(
      self
        .0
        .saturating_sub(rhs.as_micros().min(u64::MAX as u128) as u64),
    )
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn arithmetic_saturates() {
    let t = Instant::from_micros(5);
    assert_eq!(t - Duration::from_micros(10), Instant::ZERO);
    assert_eq!(t - Duration::from_micros(3), Instant::from_micros(2));
    assert_eq!(t.saturating_since(Instant::from_micros(9)), Duration::ZERO);
    assert_eq!((t + Duration::from_millis(1)).as_micros(), 1005);
    assert_eq!(Instant::from_micros((1 << 32) + 7).wire_timestamp(), 7);
  }
}
