//! The in-stream handshake that starts an encrypted stream over a fresh connection
//!
//! Both sides send a hello at once, then, having the peer's hello, a confirmation MAC; each side
//! checks the peer's MAC before it trusts anything. One round trip plus the confirmations, and no
//! application data before them.
//!
//! ```text
//! hello   = "utpsec" | version (1) | role (0 initiator, 1 responder) | mode (0 key, 1 psk)
//!           | nonce (32, random) | pake length (1) | SPAKE2 message (33 in psk mode, none in key mode)
//! confirm = HMAC-SHA256(confirm key of the sender's direction, SHA-256(hello_i | hello_r))  (32)
//! ```
//!
//! The input secret K is the key given in key mode (from a PAKE done elsewhere, say through a
//! rendezvous server) or, in psk mode, the result of symmetric SPAKE2 run on these hellos with the
//! pre-shared secret as the password, so a recording allows no offline guessing. The stream key is
//! `HKDF(salt = SHA-256(hello_i | hello_r), K, "utp-punch-rs stream key v1")`: fresh nonces from both
//! sides make every stream's keys new even when K is reused, and the transcript hash binds the keys
//! to exactly these hellos. [`keys::StreamKeys`](crate::keys::StreamKeys) derives the rest.
//!
//! A peer whose first bytes are not a hello is [`Error::NotSecure`]; a peer with a different mode
//! or a MAC that does not verify is [`Error::WrongKey`].

use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use crate::keys::{derive_salted, StreamKeys, KEY_LEN};
use crate::pake::{Pake, MESSAGE_LEN};
use crate::record::{Opener, Sealer};
use crate::{Error, Result};

const MAGIC: &[u8; 6] = b"utpsec";
const VERSION: u8 = 1;
const NONCE_LEN: usize = 32;
/// Hello bytes before the SPAKE2 message
const HELLO_FIXED: usize = MAGIC.len() + 3 + NONCE_LEN + 1;
const CONFIRM_LEN: usize = 32;
const STREAM_KEY_LABEL: &str = "utp-punch-rs stream key v1";
/// SPAKE2 context of psk mode, so its secrets serve nothing else
const PSK_CONTEXT: &[u8] = b"utp-punch-rs psk v1";

/// Which end of the handshake this side is; the two sides must differ
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
  /// The side that connected
  Initiator,
  /// The side that accepted
  Responder,
}

/// What the two sides share before the handshake
pub enum Secret {
  /// A 32-byte key agreed earlier (by a PAKE through a rendezvous server, say)
  Key([u8; KEY_LEN]),
  /// A pre-shared secret of any strength, used as the SPAKE2 password
  Psk(Vec<u8>),
}

enum State {
  AwaitHello,
  AwaitConfirm {
    keys: StreamKeys,
    expect: [u8; CONFIRM_LEN],
  },
  Done {
    keys: StreamKeys,
  },
  Failed(Error),
}

/// One side's handshake; feed it what the connection reads until [`is_done`](Self::is_done)
pub struct Handshake {
  role: Role,
  key: Option<[u8; KEY_LEN]>,
  pake: Option<Pake>,
  hello: Vec<u8>,
  input: Vec<u8>,
  state: State,
}

/// What a finished handshake yields
pub struct Session {
  /// Seals what this side sends
  pub sealer: Sealer,
  /// Opens what the peer sends
  pub opener: Opener,
  /// Bytes that followed the peer's confirmation in the same reads: records, for `opener`
  pub early: Vec<u8>,
}

impl Handshake {
  /// Starts the handshake: returns it and the hello to send now
  pub fn start(role: Role, secret: Secret, rng: &mut (impl RngCore + CryptoRng)) -> Result<(Self, Vec<u8>)> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let (key, pake) = match secret {
      Secret::Key(k) => (Some(k), None),
      Secret::Psk(p) if p.is_empty() => return Err(Error::InvalidArgument("the pre-shared secret is empty")),
      Secret::Psk(p) => (None, Some(Pake::start(&p, PSK_CONTEXT, rng))),
    };
    let mut hello = Vec::with_capacity(HELLO_FIXED + MESSAGE_LEN);
    hello.extend_from_slice(MAGIC);
    hello.push(VERSION);
    hello.push(match role {
      Role::Initiator => 0,
      Role::Responder => 1,
    });
    hello.push(u8::from(pake.is_some()));
    hello.extend_from_slice(&nonce);
    let message = pake.as_ref().map_or(&[][..], |p| p.message());
    hello.push(message.len() as u8);
    hello.extend_from_slice(message);
    let me = Handshake {
      role,
      key,
      pake,
      hello: hello.clone(),
      input: Vec::new(),
      state: State::AwaitHello,
    };
    Ok((me, hello))
  }

  /// Whether the peer's confirmation verified: [`into_session`](Self::into_session) is ready
  pub fn is_done(&self) -> bool {
    matches!(self.state, State::Done { .. })
  }

  /// Takes bytes read from the connection; returns bytes to send now (the confirmation, once)
  pub fn read(&mut self, data: &[u8]) -> Result<Vec<u8>> {
    if let State::Failed(e) = &self.state {
      return Err(e.clone());
    }
    self.input.extend_from_slice(data);
    let r = self.advance();
    if let Err(e) = &r {
      self.state = State::Failed(e.clone());
    }
    r
  }

  /// The record layer of the stream, once done; `early` holds bytes read past the handshake
  pub fn into_session(self) -> Result<Session> {
    match self.state {
      State::Done { keys } => Ok(Session {
        sealer: Sealer::new(&keys.seal),
        opener: Opener::new(&keys.open),
        early: self.input,
      }),
      State::Failed(e) => Err(e),
      _ => Err(Error::InvalidArgument("the handshake is not finished")),
    }
  }

  fn advance(&mut self) -> Result<Vec<u8>> {
    let mut send = Vec::new();
    if matches!(self.state, State::AwaitHello) {
      let Some(peer_hello) = self.take_hello()? else {
        return Ok(send);
      };
      let (keys, transcript) = self.derive(&peer_hello)?;
      send = mac(&keys.confirm_send, &transcript).to_vec();
      let expect = mac(&keys.confirm_expect, &transcript);
      self.state = State::AwaitConfirm { keys, expect };
    }
    if let State::AwaitConfirm { expect, .. } = &self.state {
      if self.input.len() < CONFIRM_LEN {
        return Ok(send);
      }
      // constant-time compare: the MAC is a secret-dependent value
      let ok = expect
        .iter()
        .zip(&self.input[..CONFIRM_LEN])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0;
      if !ok {
        return Err(Error::WrongKey(
          "the peer proved a different key: the code or pre-shared secret does not match",
        ));
      }
      self.input.drain(..CONFIRM_LEN);
      if let State::AwaitConfirm { keys, .. } = std::mem::replace(&mut self.state, State::AwaitHello) {
        self.state = State::Done { keys };
      }
    }
    Ok(send)
  }

  /// The peer's whole hello off the input, once there; checks what it can as bytes arrive, so a
  /// peer that is not encrypting fails on its first bytes instead of leaving us waiting
  fn take_hello(&mut self) -> Result<Option<Vec<u8>>> {
    let have = self.input.len().min(MAGIC.len());
    if self.input[..have] != MAGIC[..have] {
      return Err(Error::NotSecure(
        "the peer is not speaking the encrypted stream protocol",
      ));
    }
    if self.input.len() < HELLO_FIXED {
      return Ok(None);
    }
    if self.input[MAGIC.len()] != VERSION {
      return Err(Error::NotSecure(
        "the peer speaks another version of the encrypted stream protocol",
      ));
    }
    let pake_len = self.input[HELLO_FIXED - 1] as usize;
    if pake_len != 0 && pake_len != MESSAGE_LEN {
      return Err(Error::NotSecure("malformed hello"));
    }
    if self.input.len() < HELLO_FIXED + pake_len {
      return Ok(None);
    }
    Ok(Some(self.input.drain(..HELLO_FIXED + pake_len).collect()))
  }

  /// This side's keys and the transcript hash from the peer's hello
  fn derive(&mut self, peer: &[u8]) -> Result<(StreamKeys, [u8; 32])> {
    let peer_role = peer[MAGIC.len() + 1];
    let peer_psk = peer[MAGIC.len() + 2];
    let own_role = self.hello[MAGIC.len() + 1];
    if peer_role > 1 || peer_psk > 1 || peer_psk != u8::from(peer.len() > HELLO_FIXED) {
      return Err(Error::NotSecure("malformed hello"));
    }
    if peer_role == own_role {
      return Err(Error::NotSecure(if own_role == 0 {
        "both sides are the initiator: one side must be the responder"
      } else {
        "both sides are the responder: one side must be the initiator"
      }));
    }
    let secret = match (&self.key, self.pake.take()) {
      (Some(key), None) if peer_psk == 0 => *key,
      (None, Some(pake)) if peer_psk == 1 => pake
        .finish(&peer[HELLO_FIXED..])
        .map_err(|_| Error::WrongKey("the peer's PAKE message is malformed"))?,
      (Some(_), _) => {
        return Err(Error::WrongKey(
          "the peer uses a pre-shared secret (psk), this side a key",
        ))
      }
      _ => {
        return Err(Error::WrongKey(
          "the peer uses a key, this side a pre-shared secret (psk)",
        ))
      }
    };
    let (first, second) = match self.role {
      Role::Initiator => (&self.hello[..], peer),
      Role::Responder => (peer, &self.hello[..]),
    };
    let transcript: [u8; 32] = Sha256::new()
      .chain_update(first)
      .chain_update(second)
      .finalize()
      .into();
    let stream_key = derive_salted(&transcript, &secret, STREAM_KEY_LABEL);
    Ok((StreamKeys::derive(&stream_key, self.role), transcript))
  }
}

fn mac(key: &[u8; KEY_LEN], transcript: &[u8; 32]) -> [u8; CONFIRM_LEN] {
  // HMAC takes keys of any length: new_from_slice cannot fail
  let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC key"));
  m.update(transcript);
  m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::pake::tests::TestRng;

  /// Runs both sides to completion, delivering bytes in chunks of `step`
  fn run(a: Secret, b: Secret, step: usize) -> (Result<Session>, Result<Session>) {
    let (mut i, hi) = Handshake::start(Role::Initiator, a, &mut TestRng(1)).unwrap();
    let (mut r, hr) = Handshake::start(Role::Responder, b, &mut TestRng(2)).unwrap();
    let (mut to_r, mut to_i) = (hi, hr);
    for _ in 0..1000 {
      let (ci, cr): (Vec<u8>, Vec<u8>) = (
        to_i.drain(..step.min(to_i.len())).collect(),
        to_r.drain(..step.min(to_r.len())).collect(),
      );
      if ci.is_empty() && cr.is_empty() {
        break;
      }
      if let Ok(out) = i.read(&ci) {
        to_r.extend(out);
      }
      if let Ok(out) = r.read(&cr) {
        to_i.extend(out);
      }
    }
    (i.into_session(), r.into_session())
  }

  fn talk(mut a: Session, mut b: Session) {
    let mut wire = Vec::new();
    a.sealer.seal(b"ping", &mut wire).unwrap();
    let mut got = Vec::new();
    b.opener.open(&wire, &mut got).unwrap();
    assert_eq!(got, b"ping");
    wire.clear();
    got.clear();
    b.sealer.seal(b"pong", &mut wire).unwrap();
    a.opener.open(&wire, &mut got).unwrap();
    assert_eq!(got, b"pong");
  }

  #[test]
  fn psk_and_key_modes_connect_in_any_chunking() {
    for step in [1, 7, 1000] {
      let (i, r) = run(Secret::Psk(b"1234".to_vec()), Secret::Psk(b"1234".to_vec()), step);
      talk(i.unwrap(), r.unwrap());
      let (i, r) = run(Secret::Key([5; 32]), Secret::Key([5; 32]), step);
      talk(i.unwrap(), r.unwrap());
    }
  }

  #[test]
  fn wrong_secret_fails_on_both_sides() {
    let (i, r) = run(Secret::Psk(b"1234".to_vec()), Secret::Psk(b"1235".to_vec()), 1000);
    assert!(matches!(i, Err(Error::WrongKey(_))));
    assert!(matches!(r, Err(Error::WrongKey(_))));
    let (i, r) = run(Secret::Key([5; 32]), Secret::Key([6; 32]), 1000);
    assert!(matches!(i, Err(Error::WrongKey(_))));
    assert!(matches!(r, Err(Error::WrongKey(_))));
    let (i, r) = run(Secret::Key([5; 32]), Secret::Psk(b"x".to_vec()), 1000);
    assert!(matches!(i, Err(Error::WrongKey(_))));
    assert!(matches!(r, Err(Error::WrongKey(_))));
  }

  #[test]
  fn plaintext_peer_is_not_secure_at_once() {
    let (mut i, _) = Handshake::start(Role::Initiator, Secret::Key([1; 32]), &mut TestRng(1)).unwrap();
    assert!(matches!(i.read(b"h"), Err(Error::NotSecure(_))));
    assert!(i.read(b"utpsec").is_err(), "stays failed");
  }

  #[test]
  fn same_roles_are_refused() {
    let (mut a, _) = Handshake::start(Role::Initiator, Secret::Key([1; 32]), &mut TestRng(1)).unwrap();
    let (_, hb) = Handshake::start(Role::Initiator, Secret::Key([1; 32]), &mut TestRng(2)).unwrap();
    assert!(matches!(a.read(&hb), Err(Error::NotSecure(_))));
  }

  #[test]
  fn reflected_hello_is_refused() {
    let (mut a, ha) =
      Handshake::start(Role::Initiator, Secret::Psk(b"pw".to_vec()), &mut TestRng(1)).unwrap();
    assert!(a.read(&ha).is_err());
  }

  #[test]
  fn early_records_after_confirm_are_kept() {
    let (mut i, hi) = Handshake::start(Role::Initiator, Secret::Key([3; 32]), &mut TestRng(1)).unwrap();
    let (mut r, hr) = Handshake::start(Role::Responder, Secret::Key([3; 32]), &mut TestRng(2)).unwrap();
    let ci = i.read(&hr).unwrap();
    let cr = r.read(&hi).unwrap();
    r.read(&ci).unwrap();
    let mut rs = r.into_session().unwrap();
    let mut wire = cr;
    rs.sealer.seal(b"early", &mut wire).unwrap();
    i.read(&wire).unwrap();
    let mut is = i.into_session().unwrap();
    let mut got = Vec::new();
    is.opener.open(&is.early, &mut got).unwrap();
    assert_eq!(got, b"early");
  }

  #[test]
  fn an_empty_pre_shared_secret_is_refused() {
    let r = Handshake::start(Role::Initiator, Secret::Psk(Vec::new()), &mut TestRng(1));
    assert!(matches!(r, Err(Error::InvalidArgument(_))));
  }

  /// Done once the peer's confirmation verified, not before
  #[test]
  fn done_only_after_the_peer_s_confirmation() {
    let (mut i, hi) = Handshake::start(Role::Initiator, Secret::Key([3; 32]), &mut TestRng(1)).unwrap();
    let (mut r, hr) = Handshake::start(Role::Responder, Secret::Key([3; 32]), &mut TestRng(2)).unwrap();
    assert!(!i.is_done() && !r.is_done());
    let ci = i.read(&hr).unwrap();
    let cr = r.read(&hi).unwrap();
    assert!(!i.is_done() && !r.is_done(), "hellos only");
    r.read(&ci).unwrap();
    i.read(&cr).unwrap();
    assert!(i.is_done() && r.is_done());
  }

  /// The confirmation is compared whole: two bytes wrong in the same bit do not cancel out
  #[test]
  fn a_confirmation_wrong_in_two_bytes_alike_is_refused() {
    let (mut i, hi) = Handshake::start(Role::Initiator, Secret::Key([3; 32]), &mut TestRng(1)).unwrap();
    let (mut r, hr) = Handshake::start(Role::Responder, Secret::Key([3; 32]), &mut TestRng(2)).unwrap();
    i.read(&hr).unwrap();
    let mut cr = r.read(&hi).unwrap();
    cr[0] ^= 1;
    cr[1] ^= 1;
    assert!(matches!(i.read(&cr), Err(Error::WrongKey(_))));
  }

  /// A hello whose role or mode byte is out of range, or whose mode does not match its length
  #[test]
  fn malformed_hellos_are_not_secure() {
    let (_, key_hello) = Handshake::start(Role::Responder, Secret::Key([1; 32]), &mut TestRng(2)).unwrap();
    let role = MAGIC.len() + 1;
    for (at, value) in [(role, 2), (role + 1, 2), (role + 1, 1)] {
      let (mut a, _) = Handshake::start(Role::Initiator, Secret::Key([1; 32]), &mut TestRng(1)).unwrap();
      let mut hello = key_hello.clone();
      hello[at] = value;
      assert_eq!(
        a.read(&hello),
        Err(Error::NotSecure("malformed hello")),
        "byte {at} = {value}"
      );
    }
  }

  /// Each mismatch says which side is which
  #[test]
  fn mismatches_are_explained() {
    let start = |role, secret, seed| Handshake::start(role, secret, &mut TestRng(seed)).unwrap();
    let (mut a, _) = start(Role::Initiator, Secret::Key([1; 32]), 1);
    let (_, hb) = start(Role::Initiator, Secret::Key([1; 32]), 2);
    assert!(matches!(a.read(&hb), Err(Error::NotSecure(m)) if m.contains("both sides are the initiator")));
    let (mut a, _) = start(Role::Responder, Secret::Key([1; 32]), 1);
    let (_, hb) = start(Role::Responder, Secret::Key([1; 32]), 2);
    assert!(matches!(a.read(&hb), Err(Error::NotSecure(m)) if m.contains("both sides are the responder")));
    let (mut key, _) = start(Role::Initiator, Secret::Key([1; 32]), 1);
    let (mut psk, _) = start(Role::Responder, Secret::Psk(b"pw".to_vec()), 2);
    let (_, key_hello) = start(Role::Initiator, Secret::Key([1; 32]), 3);
    let (_, psk_hello) = start(Role::Responder, Secret::Psk(b"pw".to_vec()), 4);
    assert!(
      matches!(key.read(&psk_hello), Err(Error::WrongKey(m)) if m.contains("the peer uses a pre-shared secret"))
    );
    assert!(matches!(psk.read(&key_hello), Err(Error::WrongKey(m)) if m.contains("the peer uses a key")));
  }
}
