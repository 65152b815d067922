//! Symmetric SPAKE2 over Ed25519: a password becomes a strong shared secret
//!
//! Both peers run the same code: [`Pake::start`] gives the message to send, [`Pake::finish`] takes
//! the peer's and returns 32 bytes. Equal passwords and contexts give equal secrets; anything else
//! gives unrelated ones (detected later by key confirmation, never here: SPAKE2 has no failure
//! signal of its own). A passive recording of both messages does not let anyone test password
//! guesses offline; an active attacker gets one guess per run. The password is only ever an input
//! to SPAKE2, never a key.

use rand_core::{CryptoRng, RngCore};
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::{Error, Result};

/// Length of a SPAKE2 message: a side byte and a compressed Ed25519 point
pub const MESSAGE_LEN: usize = 33;

/// One side of a symmetric SPAKE2 exchange, consumed by [`finish`](Pake::finish)
pub struct Pake {
  state: Spake2<Ed25519Group>,
  message: Vec<u8>,
}

impl Pake {
  /// Starts an exchange; `context` binds the result to a purpose (both sides must pass the same)
  pub fn start(password: &[u8], context: &[u8], rng: &mut (impl RngCore + CryptoRng)) -> Self {
    let (state, message) = Spake2::<Ed25519Group>::start_symmetric_with_rng(
      &Password::new(password),
      &Identity::new(context),
      rng,
    );
    Pake { state, message }
  }

  /// The message to send to the peer
  pub fn message(&self) -> &[u8] {
    &self.message
  }

  /// The 32-byte shared secret from the peer's message; errors on a malformed message and on our
  /// own message reflected back (which would only "agree" with ourselves)
  pub fn finish(self, peer_message: &[u8]) -> Result<[u8; 32]> {
    if peer_message.len() != MESSAGE_LEN {
      return Err(Error::PakeMessage("expected 33 bytes"));
    }
    if peer_message == self.message.as_slice() {
      return Err(Error::PakeMessage("the peer's message is our own, reflected"));
    }
    let secret = self.state.finish(peer_message).map_err(|e| match e {
      spake2::Error::BadSide => Error::PakeMessage("not a symmetric SPAKE2 message"),
      spake2::Error::CorruptMessage => Error::PakeMessage("not a point on Ed25519"),
      spake2::Error::WrongLength => Error::PakeMessage("expected 33 bytes"),
    })?;
    secret
      .as_slice()
      .try_into()
      .map_err(|_| Error::PakeMessage("unexpected secret length"))
  }
}

#[cfg(test)]
pub(crate) mod tests {
  use rand_core::{CryptoRng, RngCore};

  use super::*;

  /// A deterministic generator for tests only (splitmix64): never for real keys
  pub(crate) struct TestRng(pub u64);

  impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
      self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
      self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
      let mut z = self.0;
      z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
      z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
      z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
      for chunk in dest.chunks_mut(8) {
        let v = self.next_u64().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
      }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rand_core::Error> {
      self.fill_bytes(dest);
      Ok(())
    }
  }
  impl CryptoRng for TestRng {}

  #[test]
  fn same_password_agrees() {
    let a = Pake::start(b"hunter2", b"ctx", &mut TestRng(1));
    let b = Pake::start(b"hunter2", b"ctx", &mut TestRng(2));
    let (ma, mb) = (a.message().to_vec(), b.message().to_vec());
    assert_eq!(ma.len(), MESSAGE_LEN);
    assert_eq!(a.finish(&mb).unwrap(), b.finish(&ma).unwrap());
  }

  #[test]
  fn different_password_or_context_disagrees() {
    for (pw, ctx) in [(&b"hunter3"[..], &b"ctx"[..]), (b"hunter2", b"other")] {
      let a = Pake::start(b"hunter2", b"ctx", &mut TestRng(1));
      let b = Pake::start(pw, ctx, &mut TestRng(2));
      let (ma, mb) = (a.message().to_vec(), b.message().to_vec());
      assert_ne!(a.finish(&mb).unwrap(), b.finish(&ma).unwrap());
    }
  }

  #[test]
  fn deterministic_with_a_seeded_rng() {
    let a = Pake::start(b"pw", b"ctx", &mut TestRng(7));
    let b = Pake::start(b"pw", b"ctx", &mut TestRng(7));
    assert_eq!(a.message(), b.message());
  }

  #[test]
  fn malformed_and_reflected_messages_are_errors() {
    let fresh = || Pake::start(b"pw", b"ctx", &mut TestRng(3));
    let own = fresh().message().to_vec();
    assert!(matches!(fresh().finish(&own), Err(Error::PakeMessage(_))));
    assert!(matches!(fresh().finish(&own[..32]), Err(Error::PakeMessage(_))));
    let mut wrong_side = own.clone();
    wrong_side[0] = b'A';
    assert!(matches!(fresh().finish(&wrong_side), Err(Error::PakeMessage(_))));
    // y = 2 with the sign bit set is no point of Ed25519
    let mut not_a_point = vec![b'S'; 1];
    not_a_point.extend_from_slice(&[2u8; 32]);
    not_a_point[32] |= 0x80;
    let r = fresh().finish(&not_a_point);
    assert!(r.is_err() || r.is_ok(), "must not panic");
  }
}
