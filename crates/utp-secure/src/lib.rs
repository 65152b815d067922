//! Authenticated encryption for utp-punch-rs streams, sans-IO
//!
//! Nothing here touches a socket or a clock; randomness is passed in (any `RngCore + CryptoRng`,
//! such as `rand_core::OsRng`), so tests can be deterministic. The pieces, bottom up:
//!
//! - [`pake`]: symmetric SPAKE2 over Ed25519. Two peers who share a password (possibly a weak one)
//!   agree on a 32-byte secret; a recording of the exchange does not allow an offline guess.
//! - [`keys`]: the HKDF-SHA256 key schedule from a 32-byte stream key to per-direction AEAD keys and
//!   key-confirmation MAC keys.
//! - [`record`]: the record layer. [`Sealer`] turns bytes into AES-256-GCM records, [`Opener`] takes
//!   the records back from arbitrary chunks. Any failure kills the stream for good.
//! - [`handshake`]: the in-stream handshake run over a fresh connection (hello, then confirm MACs
//!   both ways) that yields a [`Session`] in `key` mode (a secret agreed earlier) or `psk` mode
//!   (SPAKE2 in-stream with a pre-shared secret as the password).
#![warn(missing_docs)]

pub mod handshake;
pub mod keys;
pub mod pake;
pub mod record;

pub use handshake::{Handshake, Role, Secret, Session};
pub use keys::{derive_key, KEY_LEN};
pub use pake::Pake;
pub use record::{Opener, Sealer, HEADER_LEN, MAX_RECORD_PLAINTEXT, RECORD_OVERHEAD, TAG_LEN};

/// Everything that can go wrong; each variant has a stable [`code`](Error::code) for JS
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
  /// A SPAKE2 message that is not one (wrong length or side byte, not a curve point) or our own
  /// message reflected back
  #[error("malformed PAKE message: {0}")]
  PakeMessage(&'static str),
  /// The peer proved a different key: wrong code or pre-shared secret, or a different mode
  #[error("{0}")]
  WrongKey(&'static str),
  /// The peer does not speak this protocol (an unencrypted peer, or another version)
  #[error("{0}")]
  NotSecure(&'static str),
  /// A record failed authentication, was replayed or reordered, or the stream ended without its
  /// authenticated close
  #[error("{0}")]
  Decrypt(&'static str),
  /// A direction sent 2^64 records: the nonce counter would wrap
  #[error("nonce counter exhausted: open a new stream")]
  NonceExhausted,
  /// The sealer was used after its close record
  #[error("write after the encrypted stream was closed")]
  SealAfterClose,
  /// An argument the caller must get right (key length, empty password)
  #[error("{0}")]
  InvalidArgument(&'static str),
}

impl Error {
  /// The `err.code` JS sees
  pub fn code(&self) -> &'static str {
    match self {
      Error::PakeMessage(_) => "ERR_PAKE_MESSAGE",
      Error::WrongKey(_) => "ERR_WRONG_CODE",
      Error::NotSecure(_) => "ERR_NOT_SECURE",
      Error::Decrypt(_) => "ERR_DECRYPT",
      Error::NonceExhausted => "ERR_NONCE_EXHAUSTED",
      Error::SealAfterClose => "ERR_STREAM_WRITE_AFTER_END",
      Error::InvalidArgument(_) => "ERR_INVALID_ARG_VALUE",
    }
  }
}

/// Results of this crate
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
  use super::Error;

  /// The codes JS sees are part of the API (docs/api.md): each variant keeps its own
  #[test]
  fn each_error_has_its_documented_code() {
    let all = [
      (Error::PakeMessage(""), "ERR_PAKE_MESSAGE"),
      (Error::WrongKey(""), "ERR_WRONG_CODE"),
      (Error::NotSecure(""), "ERR_NOT_SECURE"),
      (Error::Decrypt(""), "ERR_DECRYPT"),
      (Error::NonceExhausted, "ERR_NONCE_EXHAUSTED"),
      (Error::SealAfterClose, "ERR_STREAM_WRITE_AFTER_END"),
      (Error::InvalidArgument(""), "ERR_INVALID_ARG_VALUE"),
    ];
    for (e, code) in all {
      assert_eq!(e.code(), code, "{e:?}");
    }
  }
}
