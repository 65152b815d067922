//! Wrapping 16-bit sequence numbers
//!
//! uTP sequence and ack numbers are 16 bits and wrap quickly (65,536 packets is 64 MiB at 1 KiB
//! payloads), so every comparison goes through serial-number arithmetic (RFC 1982): `a < b` when
//! `b` is less than half the space ahead of `a`.

use core::fmt;

/// A uTP sequence number
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNr(pub u16);

impl SeqNr {
  /// The number `n` steps after this one, wrapping
  pub const fn add(self, n: u16) -> Self {
    Self(self.0.wrapping_add(n))
  }

  /// The number `n` steps before this one, wrapping
  pub const fn sub(self, n: u16) -> Self {
    Self(self.0.wrapping_sub(n))
  }

  /// Steps from `earlier` forward to `self`, wrapping (0..=65535)
  pub const fn distance_from(self, earlier: Self) -> u16 {
    self.0.wrapping_sub(earlier.0)
  }

  /// Whether `self` comes strictly before `other` in serial order
  pub const fn precedes(self, other: Self) -> bool {
    let d = other.0.wrapping_sub(self.0);
    d != 0 && d < 0x8000
  }

  /// Whether `self` comes strictly after `other` in serial order
  pub const fn follows(self, other: Self) -> bool {
    other.precedes(self)
  }
}

impl fmt::Debug for SeqNr {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "#{}", self.0)
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use proptest::prelude::*;

  #[test]
  fn ordering_across_wrap() {
    assert!(SeqNr(65535).precedes(SeqNr(0)));
    assert!(SeqNr(65000).precedes(SeqNr(100)));
    assert!(!SeqNr(100).precedes(SeqNr(65000)));
    assert!(!SeqNr(7).precedes(SeqNr(7)));
    assert_eq!(SeqNr(2).distance_from(SeqNr(65534)), 4);
  }

  /// Exactly half the space apart, neither number comes first: a packet that far from the window
  /// is treated as neither old nor new. Debug output names the number as logs show it
  #[test]
  fn half_the_space_apart_neither_precedes() {
    assert!(!SeqNr(0).precedes(SeqNr(0x8000)));
    assert!(!SeqNr(0x8000).precedes(SeqNr(0)));
    assert!(SeqNr(0).precedes(SeqNr(0x7fff)));
    assert!(SeqNr(0x8001).precedes(SeqNr(0)));
    assert_eq!(SeqNr(0x7fff).sub(0x8000), SeqNr(0xffff));
    assert_eq!(format!("{:?}", SeqNr(513)), "#513");
  }

  proptest! {
    #[test]
    fn precedes_is_antisymmetric_and_matches_distance(a: u16, n in 1u16..0x8000) {
      let a = SeqNr(a);
      let b = a.add(n);
      prop_assert!(a.precedes(b));
      prop_assert!(b.follows(a));
      prop_assert!(!b.precedes(a));
      prop_assert_eq!(b.distance_from(a), n);
      prop_assert_eq!(b.sub(n), a);
    }
  }
}
