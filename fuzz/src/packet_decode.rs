//! `decode` never panics on any datagram, and whatever it accepts re-encodes to a packet that
//! decodes to the same `Packet` (unknown extensions dropped, the first selective ACK kept)

use utp_proto::packet::{decode, is_stun, looks_like_utp, Ours, HEADER_LEN};

/// One input; panics on a violated property
pub fn run(data: &[u8]) {
  let plausible = looks_like_utp(data);
  let _ = is_stun(data);
  let Ok(pkt) = decode(data) else {
    return;
  };
  assert!(data.len() >= HEADER_LEN);
  // Everything `decode` accepts passes the cheap header check, unless it is shaped like STUN
  assert!(plausible || is_stun(data));
  assert!(data.ends_with(pkt.payload));
  if let Some(sack) = pkt.sack {
    // Any length from 1 to 255 bytes: libtorrent sends (span + 7) / 8, not BEP 29's multiple of 4
    assert!(!sack.bytes().is_empty() && sack.bytes().len() <= 255);
    assert_eq!(
      sack.acked(pkt.header.ack_nr).count(),
      (0..sack.len_bits()).filter(|&i| sack.is_set(i)).count()
    );
  }

  let mut out = Vec::new();
  pkt.encode(&mut out);
  assert_eq!(out.len(), pkt.encoded_len());
  assert_eq!(decode(&out), Ok(pkt));
  assert_eq!(out[0], data[0]);
  assert_eq!(out[2..HEADER_LEN], data[2..HEADER_LEN]);
  // Without our own extensions, re-encoding only drops unknown ones. Ours have one canonical
  // form (an end-of-write marker goes out with an empty SACK, see `Packet::encode`), which may be
  // longer than what arrived
  if pkt.ours == Ours::NONE {
    assert!(out.len() <= data.len());
    assert_eq!(out[1], u8::from(pkt.sack.is_some()));
  }
}
