//! `decode` never panics on any datagram, and whatever it accepts re-encodes to a packet that
//! decodes to the same `Packet` (unknown extensions dropped, the first selective ACK kept)
#![no_main]

use libfuzzer_sys::fuzz_target;
use utp_proto::packet::{decode, is_stun, looks_like_utp, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
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
    assert!(!sack.bytes().is_empty() && sack.bytes().len() % 4 == 0);
    assert_eq!(
      sack.acked(pkt.header.ack_nr).count(),
      (0..sack.len_bits()).filter(|&i| sack.is_set(i)).count()
    );
  }

  let mut out = Vec::new();
  pkt.encode(&mut out);
  assert_eq!(out.len(), pkt.encoded_len());
  assert!(out.len() <= data.len());
  assert_eq!(decode(&out), Ok(pkt));
  assert_eq!(out[..2], [data[0], u8::from(pkt.sack.is_some())]);
  assert_eq!(out[2..HEADER_LEN], data[2..HEADER_LEN]);
});
