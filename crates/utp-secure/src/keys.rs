//! The key schedule: HKDF-SHA256 from one 32-byte stream key to everything a stream uses
//!
//! Directions are named after the handshake roles: i2r (initiator to responder) and r2i. Each
//! direction has its own AEAD key and its own confirmation MAC key, so nothing one side sends can be
//! reflected back to it as valid.

use hkdf::Hkdf;
use sha2::Sha256;

use crate::handshake::Role;

/// Length of every key here
pub const KEY_LEN: usize = 32;

const STREAM_I2R: &str = "utp-punch-rs stream i2r";
const STREAM_R2I: &str = "utp-punch-rs stream r2i";
const CONFIRM_I2R: &str = "utp-punch-rs confirm i2r";
const CONFIRM_R2I: &str = "utp-punch-rs confirm r2i";

/// HKDF-SHA256 (empty salt) of `secret` with `label` as the info, 32 bytes. The same as Node's
/// `crypto.hkdfSync('sha256', secret, Buffer.alloc(0), label, 32)`
pub fn derive_key(secret: &[u8], label: &str) -> [u8; KEY_LEN] {
  derive_salted(&[], secret, label)
}

/// HKDF-SHA256 with a salt
pub(crate) fn derive_salted(salt: &[u8], secret: &[u8], label: &str) -> [u8; KEY_LEN] {
  let mut out = [0u8; KEY_LEN];
  // 32 bytes is far below HKDF-SHA256's limit (255 * 32): expand cannot fail
  let _ = Hkdf::<Sha256>::new(Some(salt), secret).expand(label.as_bytes(), &mut out);
  out
}

/// One side's keys of a stream
pub struct StreamKeys {
  /// AEAD key for what this side sends
  pub seal: [u8; KEY_LEN],
  /// AEAD key for what this side receives
  pub open: [u8; KEY_LEN],
  /// MAC key of the confirmation this side sends
  pub confirm_send: [u8; KEY_LEN],
  /// MAC key of the confirmation the peer must send
  pub confirm_expect: [u8; KEY_LEN],
}

impl StreamKeys {
  /// The keys of `role`'s side from the stream key both sides share
  pub fn derive(stream_key: &[u8; KEY_LEN], role: Role) -> Self {
    let i2r = derive_key(stream_key, STREAM_I2R);
    let r2i = derive_key(stream_key, STREAM_R2I);
    let c_i2r = derive_key(stream_key, CONFIRM_I2R);
    let c_r2i = derive_key(stream_key, CONFIRM_R2I);
    match role {
      Role::Initiator => StreamKeys {
        seal: i2r,
        open: r2i,
        confirm_send: c_i2r,
        confirm_expect: c_r2i,
      },
      Role::Responder => StreamKeys {
        seal: r2i,
        open: i2r,
        confirm_send: c_r2i,
        confirm_expect: c_i2r,
      },
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn rfc5869_test_case_3_prefix() {
    // RFC 5869 A.3: IKM = 22 x 0x0b, no salt, no info; OKM starts 8da4e775a563c18f
    let okm = derive_key(&[0x0b; 22], "");
    assert_eq!(&okm[..8], &[0x8d, 0xa4, 0xe7, 0x75, 0xa5, 0x63, 0xc1, 0x8f]);
  }

  #[test]
  fn sides_mirror_each_other_and_directions_differ() {
    let k = [7u8; 32];
    let i = StreamKeys::derive(&k, Role::Initiator);
    let r = StreamKeys::derive(&k, Role::Responder);
    assert_eq!(i.seal, r.open);
    assert_eq!(i.open, r.seal);
    assert_eq!(i.confirm_send, r.confirm_expect);
    assert_ne!(i.seal, i.open);
    assert_ne!(i.confirm_send, i.confirm_expect);
    assert_ne!(i.seal, k);
  }
}
