//! Codec tests: round trips both ways, rejection of malformed input, extension skipping, SACK
//! iteration across the 16-bit wrap, the STUN/uTP demultiplexing check, and a known-answer SYN

use super::*;
use proptest::collection::vec;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const ALL_TYPES: [PacketType; 5] = [
  PacketType::Data,
  PacketType::Fin,
  PacketType::State,
  PacketType::Reset,
  PacketType::Syn,
];

fn header(ty: PacketType) -> Header {
  Header {
    ty,
    conn_id: 0xBEEF,
    timestamp: 0x0102_0304,
    timestamp_diff: 0x0506_0708,
    wnd_size: 0x0009_0A0B,
    seq_nr: SeqNr(0x0C0D),
    ack_nr: SeqNr(0x0E0F),
  }
}

fn encode(p: &Packet<'_>) -> Vec<u8> {
  let mut out = Vec::new();
  p.encode(&mut out);
  out
}

/// Raw header bytes with `first_ext` in byte 1, built independently of `Header::emit`
fn raw_header(byte0: u8, first_ext: u8) -> Vec<u8> {
  let mut b = vec![byte0, first_ext];
  b.extend_from_slice(&[0x12, 0x34]); // conn_id
  b.extend_from_slice(&[0, 0, 0, 1]); // timestamp
  b.extend_from_slice(&[0, 0, 0, 2]); // timestamp_diff
  b.extend_from_slice(&[0, 0, 0x10, 0]); // wnd_size
  b.extend_from_slice(&[0, 5]); // seq_nr
  b.extend_from_slice(&[0, 6]); // ack_nr
  assert_eq!(b.len(), HEADER_LEN);
  b
}

/// One extension of the chain as it appears on the wire after the header
struct RawExt<'a> {
  ty: u8,
  body: &'a [u8],
}

/// Header (type DATA unless told) + the extension chain `exts` + payload, built by hand
fn raw_packet(byte0: u8, exts: &[RawExt<'_>], payload: &[u8]) -> Vec<u8> {
  let mut b = raw_header(byte0, exts.first().map_or(0, |e| e.ty));
  for (i, e) in exts.iter().enumerate() {
    b.push(exts.get(i + 1).map_or(0, |n| n.ty));
    b.push(u8::try_from(e.body.len()).unwrap());
    b.extend_from_slice(e.body);
  }
  b.extend_from_slice(payload);
  b
}

/// Walk the extension chain of a datagram `decode` accepted, independently of `decode`:
/// returns `(type, body)` for each extension and the payload offset
fn walk_chain(buf: &[u8]) -> (Vec<(u8, &[u8])>, usize) {
  let mut exts = Vec::new();
  let mut next = buf[1];
  let mut at = HEADER_LEN;
  while next != 0 {
    let len = buf[at + 1] as usize;
    exts.push((next, &buf[at + 2..at + 2 + len]));
    next = buf[at];
    at += 2 + len;
  }
  (exts, at)
}

fn arb_type() -> impl Strategy<Value = PacketType> {
  prop::sample::select(ALL_TYPES.to_vec())
}

prop_compose! {
  fn arb_header()(
    ty in arb_type(),
    conn_id: u16,
    timestamp: u32,
    timestamp_diff: u32,
    wnd_size: u32,
    seq: u16,
    ack: u16,
  ) -> Header {
    Header { ty, conn_id, timestamp, timestamp_diff, wnd_size, seq_nr: SeqNr(seq), ack_nr: SeqNr(ack) }
  }
}

/// A SACK bitmask of 4..=32 bytes, a multiple of 4
fn arb_sack_bytes() -> impl Strategy<Value = Vec<u8>> {
  (1usize..=MAX_SACK_BYTES / 4).prop_flat_map(|words| vec(any::<u8>(), words * 4))
}

/// Byte vectors biased toward things `decode` accepts: a valid byte 0, random fixed fields, a chain
/// of selective ACKs (mostly well-formed), unknown extensions (2, 77, anything) and a payload
fn arb_maybe_valid_datagram() -> impl Strategy<Value = Vec<u8>> {
  let body = prop_oneof![
    vec(any::<u8>(), 0..40),
    (1usize..=8).prop_flat_map(|w| vec(any::<u8>(), w * 4))
  ];
  let ext = (prop_oneof![Just(1u8), Just(2u8), Just(77u8), 1u8..=255], body);
  (
    0u8..5,
    vec(any::<u8>(), HEADER_LEN - 2),
    vec(ext, 0..4),
    vec(any::<u8>(), 0..64),
  )
    .prop_map(|(ty, fixed, exts, payload)| {
      let exts: Vec<RawExt<'_>> = exts.iter().map(|(t, b)| RawExt { ty: *t, body: b }).collect();
      let mut b = raw_packet((ty << 4) | 1, &exts, &payload);
      b[2..HEADER_LEN].copy_from_slice(&fixed);
      b
    })
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

proptest! {
  /// Any packet we can build encodes to `encoded_len` bytes and decodes back to itself
  #[test]
  fn encode_then_decode_round_trips(
    header in arb_header(),
    sack in prop::option::of(arb_sack_bytes()),
    payload in vec(any::<u8>(), 0..300),
  ) {
    let sack = sack.as_deref().map(|b| SelectiveAck::new(b).unwrap());
    let pkt = Packet { header, sack, ours: Ours::NONE, payload: &payload };
    let bytes = encode(&pkt);
    prop_assert_eq!(bytes.len(), pkt.encoded_len());
    prop_assert!(looks_like_utp(&bytes) || is_stun(&bytes));
    prop_assert_eq!(decode(&bytes), Ok(pkt));
  }

  /// `encode` appends: whatever is already in the buffer stays
  #[test]
  fn encode_appends(prefix in vec(any::<u8>(), 0..16), header in arb_header()) {
    let pkt = Packet { header, sack: None, ours: Ours::NONE, payload: b"x" };
    let mut out = prefix.clone();
    pkt.encode(&mut out);
    prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
    prop_assert_eq!(decode(&out[prefix.len()..]), Ok(pkt));
  }

  /// Whatever `decode` accepts re-encodes to the same bytes, minus unknown extensions (and any
  /// selective ACK after the first), with the first selective ACK moved to the front of the chain
  #[test]
  fn decode_then_encode_round_trips(buf in prop_oneof![arb_maybe_valid_datagram(), vec(any::<u8>(), 0..200)]) {
    let Ok(pkt) = decode(&buf) else { return Ok(()) };
    let out = encode(&pkt);
    prop_assert_eq!(decode(&out), Ok(pkt));
    prop_assert_eq!(out.len(), pkt.encoded_len());

    let (exts, payload_at) = walk_chain(&buf);
    // An empty bitmask is no selective ACK
    let first_sack = exts.iter().find(|(t, b)| *t == 1 && !b.is_empty()).map(|(_, b)| *b);
    prop_assert_eq!(pkt.sack.map(|s| s.bytes()), first_sack);
    prop_assert_eq!(pkt.payload, &buf[payload_at..]);
    // Our own extensions re-encode in their own form (our_extensions_never_lead_the_chain)
    if pkt.ours != Ours::NONE {
      return Ok(());
    }

    // The expected re-encoding, built by hand from the input
    let mut want = buf[..HEADER_LEN].to_vec();
    want[1] = if first_sack.is_some() { 1 } else { 0 };
    if let Some(s) = first_sack {
      want.push(0);
      want.push(s.len() as u8);
      want.extend_from_slice(s);
    }
    want.extend_from_slice(&buf[payload_at..]);
    prop_assert_eq!(&out, &want);

    // Inputs whose chain is empty or one selective ACK come back byte for byte
    if exts.is_empty() || (exts.len() == 1 && exts[0].0 == 1 && !exts[0].1.is_empty()) {
      prop_assert_eq!(&out, &buf);
    }
  }

  /// `decode` never panics, and what it accepts obeys the header rules
  #[test]
  fn decode_never_panics(buf in vec(any::<u8>(), 0..200)) {
    match decode(&buf) {
      Ok(pkt) => {
        prop_assert!(buf.len() >= HEADER_LEN);
        prop_assert_eq!(buf[0] & 0x0f, 1);
        prop_assert!(buf[0] >> 4 <= 4);
        prop_assert_eq!(pkt.header.ty as u8, buf[0] >> 4);
        if let Some(s) = pkt.sack {
          prop_assert!(!s.bytes().is_empty());
        }
        prop_assert!(pkt.payload.len() <= buf.len() - HEADER_LEN);
        prop_assert_eq!(pkt.payload, &buf[buf.len() - pkt.payload.len()..]);
      }
      Err(DecodeError::TooShort) => prop_assert!(buf.len() < HEADER_LEN),
      Err(DecodeError::BadVersion) => prop_assert_ne!(buf[0] & 0x0f, 1),
      Err(DecodeError::BadType) => prop_assert!(buf[0] >> 4 > 4),
      Err(DecodeError::TruncatedExtension | DecodeError::BadSelectiveAck) => {
        prop_assert!(buf.len() >= HEADER_LEN && buf[1] != 0);
      }
    }
  }

  /// Every short datagram is refused, whatever its first byte
  #[test]
  fn decode_rejects_short(buf in vec(any::<u8>(), 0..HEADER_LEN)) {
    prop_assert_eq!(decode(&buf), Err(DecodeError::TooShort));
    prop_assert!(!looks_like_utp(&buf));
  }

  /// Every version other than 1 is refused, for every type nibble
  #[test]
  fn decode_rejects_other_versions(ty in 0u8..16, ver in 0u8..16, rest in vec(any::<u8>(), 19..40)) {
    prop_assume!(ver != 1);
    let mut buf = vec![(ty << 4) | ver];
    buf.extend_from_slice(&rest);
    prop_assert_eq!(decode(&buf), Err(DecodeError::BadVersion));
    prop_assert!(!looks_like_utp(&buf));
  }

  /// Type nibbles 5..=15 are refused
  #[test]
  fn decode_rejects_unknown_types(ty in 5u8..16, payload in vec(any::<u8>(), 0..40)) {
    let buf = raw_packet((ty << 4) | 1, &[], &payload);
    prop_assert_eq!(decode(&buf), Err(DecodeError::BadType));
    prop_assert!(!looks_like_utp(&buf));
  }

  /// Cutting a datagram anywhere inside its extension chain is a truncated extension
  #[test]
  fn decode_rejects_truncated_chain(
    sack in arb_sack_bytes(),
    unknown in vec(any::<u8>(), 0..20),
    cut in any::<prop::sample::Index>(),
  ) {
    let full = raw_packet(0x21, &[RawExt { ty: 77, body: &unknown }, RawExt { ty: 1, body: &sack }], &[]);
    prop_assert!(decode(&full).is_ok());
    let end = HEADER_LEN + cut.index(full.len() - HEADER_LEN);
    prop_assert_eq!(decode(&full[..end]), Err(DecodeError::TruncatedExtension));
  }

  /// A selective ACK of any length is read (libtorrent sends `(span + 7) / 8` bytes, libutp
  /// reads whatever comes), and the rest of the packet with it; an empty one is no SACK at all
  #[test]
  fn decode_accepts_any_sack_len(len in 0usize..=255, ack: u16, payload in vec(any::<u8>(), 0..16)) {
    let body = vec![0xFFu8; len];
    let mut buf = raw_packet(0x21, &[RawExt { ty: 1, body: &body }], &payload);
    buf[18..20].copy_from_slice(&ack.to_be_bytes());
    let pkt = decode(&buf).unwrap();
    prop_assert_eq!(pkt.header.ack_nr, SeqNr(ack));
    prop_assert_eq!(pkt.payload, &payload[..]);
    match pkt.sack {
      Some(s) => {
        prop_assert_eq!(s.bytes(), &body[..]);
        prop_assert_eq!(s.acked(SeqNr(ack)).count(), len * 8);
      }
      None => prop_assert_eq!(len, 0),
    }
  }

  /// Bit i of the mask acknowledges ack_nr + 2 + i, wrapping at 2^16
  #[test]
  fn sack_acked_matches_bits(ack: u16, bytes in arb_sack_bytes()) {
    let s = SelectiveAck::new(&bytes).unwrap();
    let want: Vec<SeqNr> = (0..bytes.len() * 8)
      .filter(|i| (bytes[i / 8] >> (i % 8)) & 1 == 1)
      .map(|i| SeqNr(((ack as usize + 2 + i) % 65536) as u16))
      .collect();
    prop_assert_eq!(s.acked(SeqNr(ack)).collect::<Vec<_>>(), want);
    prop_assert_eq!(s.len_bits(), bytes.len() * 8);
  }
}

// ---------------------------------------------------------------------------------------------
// Rejection, by example
// ---------------------------------------------------------------------------------------------

#[test]
fn rejects_each_malformation() {
  // 19 bytes: one short of a header
  assert_eq!(decode(&raw_header(0x41, 0)[..19]), Err(DecodeError::TooShort));
  assert_eq!(decode(&[]), Err(DecodeError::TooShort));
  // Version 0 and version 2 of a SYN
  assert_eq!(decode(&raw_header(0x40, 0)), Err(DecodeError::BadVersion));
  assert_eq!(decode(&raw_header(0x42, 0)), Err(DecodeError::BadVersion));
  // Type 5
  assert_eq!(decode(&raw_header(0x51, 0)), Err(DecodeError::BadType));
  // Header announces an extension but the datagram ends
  assert_eq!(decode(&raw_header(0x21, 1)), Err(DecodeError::TruncatedExtension));
  // Extension header present, body short by one byte
  let mut b = raw_header(0x21, 1);
  b.extend_from_slice(&[0, 4, 0xFF, 0xFF, 0xFF]);
  assert_eq!(decode(&b), Err(DecodeError::TruncatedExtension));
  // Only the next-type byte of an extension header
  let mut b = raw_header(0x21, 1);
  b.push(0);
  assert_eq!(decode(&b), Err(DecodeError::TruncatedExtension));
  // Chain whose last extension promises another that is not there
  let b = raw_packet(
    0x21,
    &[RawExt {
      ty: 1,
      body: &[1, 0, 0, 0],
    }],
    &[],
  );
  let mut chained = b.clone();
  chained[HEADER_LEN] = 2; // next_type of the SACK now announces an extension 2
  assert_eq!(decode(&chained), Err(DecodeError::TruncatedExtension));
  // SACKs of length 0 (ignored) and 5 (read) are not malformations
  let empty = raw_packet(0x21, &[RawExt { ty: 1, body: &[] }], b"data");
  let empty = decode(&empty).unwrap();
  assert_eq!((empty.sack, empty.payload), (None, &b"data"[..]));
  let odd = raw_packet(0x21, &[RawExt { ty: 1, body: &[0; 5] }], &[]);
  assert_eq!(decode(&odd).unwrap().sack.map(|s| s.bytes().len()), Some(5));
  // A well-formed SACK is still accepted
  assert!(decode(&b).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Unknown extensions
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_extensions_are_skipped_never_payload() {
  for unknown_ty in [2u8, 77, 255] {
    for unknown_len in [0usize, 1, 3, 8, 255] {
      let unknown: Vec<u8> = (0..unknown_len).map(|i| 0xA0 ^ i as u8).collect();
      let sack = [0b0000_0101, 0, 0, 0x80];
      let buf = raw_packet(
        0x01, // DATA, v1
        &[
          RawExt {
            ty: unknown_ty,
            body: &unknown,
          },
          RawExt { ty: 1, body: &sack },
        ],
        b"hello",
      );
      let pkt = decode(&buf).unwrap();
      assert_eq!(pkt.header.ty, PacketType::Data);
      assert_eq!(pkt.payload, b"hello", "ext {unknown_ty} len {unknown_len}");
      assert_eq!(pkt.sack.unwrap().bytes(), &sack);
      assert_eq!(
        pkt.sack.unwrap().acked(pkt.header.ack_nr).collect::<Vec<_>>(),
        [SeqNr(8), SeqNr(10), SeqNr(39)]
      );

      // Re-encoding drops the unknown extension and keeps the SACK first
      let out = encode(&pkt);
      assert_eq!(out, raw_packet(0x01, &[RawExt { ty: 1, body: &sack }], b"hello"));
    }
  }
}

#[test]
fn unknown_extension_after_sack_and_alone() {
  let sack = [0xFF; 8];
  let buf = raw_packet(
    0x21,
    &[RawExt { ty: 1, body: &sack }, RawExt { ty: 2, body: b"xyz" }],
    b"p",
  );
  let pkt = decode(&buf).unwrap();
  assert_eq!(pkt.sack.unwrap().bytes(), &sack);
  assert_eq!(pkt.payload, b"p");

  let buf = raw_packet(0x01, &[RawExt { ty: 2, body: b"xyz" }], b"payload");
  let pkt = decode(&buf).unwrap();
  assert_eq!(pkt.sack, None);
  assert_eq!(pkt.payload, b"payload");
  assert_eq!(encode(&pkt), raw_packet(0x01, &[], b"payload"));
}

#[test]
fn only_first_sack_is_used() {
  let a = [1, 0, 0, 0];
  let b = [2, 0, 0, 0, 0, 0, 0, 0];
  let buf = raw_packet(
    0x21,
    &[RawExt { ty: 1, body: &a }, RawExt { ty: 1, body: &b }],
    &[],
  );
  let pkt = decode(&buf).unwrap();
  assert_eq!(pkt.sack.unwrap().bytes(), &a);
  assert_eq!(pkt.payload, b"");
}

// ---------------------------------------------------------------------------------------------
// Selective ACK
// ---------------------------------------------------------------------------------------------

#[test]
fn sack_acked_across_wraparound() {
  // ack_nr 65533: bit 0 is 65535, bit 1 is 0, bit 2 is 1, bit 31 is 30
  let mask = [0b0000_0111, 0, 0, 0x80];
  let s = SelectiveAck::new(&mask).unwrap();
  assert_eq!(
    s.acked(SeqNr(65533)).collect::<Vec<_>>(),
    [SeqNr(65535), SeqNr(0), SeqNr(1), SeqNr(30)]
  );
  // ack_nr 65535: bit 0 is 1
  assert_eq!(s.acked(SeqNr(65535)).next(), Some(SeqNr(1)));
  // Bits are least significant first within each byte
  let s = SelectiveAck::new(&[0x80, 0x01, 0, 0]).unwrap();
  assert_eq!(s.acked(SeqNr(100)).collect::<Vec<_>>(), [SeqNr(109), SeqNr(110)]);
  assert!(s.is_set(7) && s.is_set(8) && !s.is_set(0) && !s.is_set(31) && !s.is_set(32));
  // The largest mask we emit covers 256 packets
  let full = [0xFF; MAX_SACK_BYTES];
  let s = SelectiveAck::new(&full).unwrap();
  let acked: Vec<_> = s.acked(SeqNr(65500)).collect();
  assert_eq!(acked.len(), 256);
  assert_eq!(acked[0], SeqNr(65502));
  assert_eq!(acked[255], SeqNr(65500u16.wrapping_add(257)));
  // An empty mask acknowledges nothing
  let s = SelectiveAck::new(&[0; 4]).unwrap();
  assert_eq!(s.acked(SeqNr(0)).count(), 0);
}

/// The wire length of an extension is one byte: the largest selective ACK is 252 bytes, and
/// `SelectiveAck::new` refuses anything longer (so `encode` can never write a wrapped length)
#[test]
fn sack_length_fits_in_one_byte() {
  let max = [0xA5u8; 252];
  let pkt = Packet {
    header: header(PacketType::State),
    sack: Some(SelectiveAck::new(&max).unwrap()),
    ours: Ours::NONE,
    payload: b"z",
  };
  let out = encode(&pkt);
  assert_eq!(out.len(), pkt.encoded_len());
  assert_eq!(out[HEADER_LEN + 1], 252);
  assert_eq!(decode(&out), Ok(pkt));
  for len in [256, 260, 512] {
    assert_eq!(
      SelectiveAck::new(&vec![0xFF; len]),
      Err(DecodeError::BadSelectiveAck),
      "{len} bytes"
    );
  }
}

// ---------------------------------------------------------------------------------------------
// looks_like_utp and STUN
// ---------------------------------------------------------------------------------------------

const MAGIC_COOKIE: u32 = 0x2112_A442;
const TXID: [u8; 12] = [
  0x8A, 0x3C, 0x11, 0x02, 0x70, 0x55, 0xE1, 0x9B, 0x00, 0x42, 0xFE, 0x07,
];

/// A real STUN message (RFC 8489 section 5) of `msg_type`, with an XOR-MAPPED-ADDRESS if asked
fn stun(msg_type: u16, xor_mapped: Option<([u8; 4], u16)>) -> Vec<u8> {
  let mut attrs = Vec::new();
  if let Some((ip, port)) = xor_mapped {
    attrs.extend_from_slice(&0x0020u16.to_be_bytes()); // XOR-MAPPED-ADDRESS
    attrs.extend_from_slice(&8u16.to_be_bytes());
    attrs.push(0); // reserved
    attrs.push(0x01); // IPv4
    attrs.extend_from_slice(&(port ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
    attrs.extend_from_slice(&(u32::from_be_bytes(ip) ^ MAGIC_COOKIE).to_be_bytes());
  }
  let mut m = Vec::new();
  m.extend_from_slice(&msg_type.to_be_bytes());
  m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
  m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
  m.extend_from_slice(&TXID);
  m.extend_from_slice(&attrs);
  m
}

#[test]
fn looks_like_utp_accepts_every_type() {
  for ty in ALL_TYPES {
    let bytes = encode(&Packet {
      header: header(ty),
      sack: None,
      ours: Ours::NONE,
      payload: &[],
    });
    assert!(looks_like_utp(&bytes), "{ty:?}");
    assert!(!is_stun(&bytes), "{ty:?}");
    let bytes = encode(&Packet {
      header: header(ty),
      sack: SelectiveAck::new(&[1; 4]).ok(),
      ours: Ours::NONE,
      payload: b"abc",
    });
    assert!(looks_like_utp(&bytes), "{ty:?} with SACK");
  }
}

#[test]
fn looks_like_utp_rejects_stun() {
  let cases = [
    ("binding request", stun(0x0001, None)),
    (
      "binding request with attribute",
      stun(0x0001, Some(([192, 0, 2, 1], 32853))),
    ),
    ("binding success response", stun(0x0101, None)),
    (
      "binding success response with XOR-MAPPED-ADDRESS",
      stun(0x0101, Some(([203, 0, 113, 7], 54321))),
    ),
    ("binding error response", stun(0x0111, None)),
  ];
  for (name, msg) in &cases {
    assert!(is_stun(msg), "{name}");
    assert!(!looks_like_utp(msg), "{name}: {msg:02x?}");
    assert!(msg[0] == 0x00 || msg[0] == 0x01, "{name}");
  }
  // The success response's first byte is 0x01: type DATA, version 1, so only the STUN check keeps
  // it out (its second byte, 0x01, then reads as a selective ACK running into the attributes)
  let resp = stun(0x0101, Some(([203, 0, 113, 7], 54321)));
  assert_eq!((resp[0] >> 4, resp[0] & 0x0f), (PacketType::Data as u8, 1));
  assert_eq!(resp.len(), 32);
}

#[test]
fn stun_with_wrong_length_or_cookie_is_not_stun() {
  let mut m = stun(0x0101, Some(([10, 0, 0, 1], 1234)));
  m.push(0);
  assert!(!is_stun(&m));
  let mut m = stun(0x0101, None);
  m[4] ^= 1;
  assert!(!is_stun(&m));
  assert!(looks_like_utp(&m));
}

#[test]
fn looks_like_utp_rejects_short_and_foreign() {
  for n in 0..HEADER_LEN {
    assert!(!looks_like_utp(&raw_header(0x41, 0)[..n]), "{n} bytes");
  }
  // 'U': type 5, version 5 (a hole-punch probe, say)
  let mut probe = b"UTP-PUNCH probe v1 xx".to_vec();
  assert_eq!(probe[0], 0x55);
  assert!(!looks_like_utp(&probe));
  probe.extend_from_slice(&[0; 20]);
  assert!(!looks_like_utp(&probe));
  // Right version, unknown type
  assert!(!looks_like_utp(&raw_header(0x51, 0)));
  assert!(!looks_like_utp(&raw_header(0xF1, 0)));
  // Right type, wrong version
  assert!(!looks_like_utp(&raw_header(0x02, 0)));
}

proptest! {
  /// `looks_like_utp` never accepts what `decode` refuses for a header reason
  #[test]
  fn looks_like_utp_agrees_with_decode_on_header(buf in vec(any::<u8>(), 0..64)) {
    if looks_like_utp(&buf) {
      prop_assert!(!matches!(
        decode(&buf),
        Err(DecodeError::TooShort | DecodeError::BadVersion | DecodeError::BadType)
      ));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Known answer
// ---------------------------------------------------------------------------------------------

/// A SYN as libutp sends it: type 4, version 1, no extensions, connection id 0x1234 (its
/// recv_id), a window, a random seq_nr and ack_nr 0
#[test]
fn known_answer_syn() {
  #[rustfmt::skip]
  let bytes: [u8; 20] = [
    0x41, 0x00,             // type SYN (4) << 4 | version 1, no extension
    0x12, 0x34,             // connection_id 0x1234
    0x00, 0x0f, 0x42, 0x40, // timestamp_microseconds 1_000_000
    0x00, 0x00, 0x00, 0x00, // timestamp_difference_microseconds 0
    0x00, 0x10, 0x00, 0x00, // wnd_size 1 MiB
    0xa1, 0xb2,             // seq_nr 0xa1b2
    0x00, 0x00,             // ack_nr 0
  ];
  let pkt = decode(&bytes).unwrap();
  assert_eq!(
    pkt.header,
    Header {
      ty: PacketType::Syn,
      conn_id: 0x1234,
      timestamp: 1_000_000,
      timestamp_diff: 0,
      wnd_size: 0x0010_0000,
      seq_nr: SeqNr(0xa1b2),
      ack_nr: SeqNr(0),
    }
  );
  assert_eq!(pkt.sack, None);
  assert_eq!(pkt.payload, b"");
  assert!(looks_like_utp(&bytes));
  assert_eq!(encode(&pkt), bytes);
  assert_eq!(pkt.encoded_len(), 20);
}

/// A STATE with a 4-byte selective ACK and a DATA with payload, byte for byte
#[test]
fn known_answer_state_with_sack_and_data() {
  #[rustfmt::skip]
  let state: [u8; 26] = [
    0x21, 0x01,             // STATE, v1, first extension: selective ACK
    0x12, 0x35,             // connection_id
    0xde, 0xad, 0xbe, 0xef, // timestamp
    0x00, 0x00, 0x27, 0x10, // timestamp_diff 10_000
    0x00, 0x00, 0xfa, 0x00, // wnd_size 64_000
    0x00, 0x01,             // seq_nr 1
    0xff, 0xfe,             // ack_nr 65534
    0x00, 0x04,             // next extension: none, length 4
    0x03, 0x00, 0x00, 0x00, // bits 0 and 1: 0 and 1 (wrapped)
  ];
  let pkt = decode(&state).unwrap();
  assert_eq!(pkt.header.ty, PacketType::State);
  assert_eq!(pkt.header.conn_id, 0x1235);
  assert_eq!(pkt.header.timestamp, 0xdead_beef);
  assert_eq!(pkt.header.timestamp_diff, 10_000);
  assert_eq!(pkt.header.wnd_size, 64_000);
  assert_eq!(pkt.header.seq_nr, SeqNr(1));
  assert_eq!(pkt.header.ack_nr, SeqNr(65534));
  assert_eq!(
    pkt.sack.unwrap().acked(pkt.header.ack_nr).collect::<Vec<_>>(),
    [SeqNr(0), SeqNr(1)]
  );
  assert_eq!(pkt.payload, b"");
  assert_eq!(encode(&pkt), state);

  let mut data = vec![
    0x01, 0x00, 0x12, 0x35, 0, 0, 0, 9, 0, 0, 0, 8, 0, 0, 0x10, 0, 0x00, 0x02, 0x00, 0x07,
  ];
  data.extend_from_slice(b"hello, uTP");
  let pkt = decode(&data).unwrap();
  assert_eq!(pkt.header.ty, PacketType::Data);
  assert_eq!(pkt.header.seq_nr, SeqNr(2));
  assert_eq!(pkt.header.ack_nr, SeqNr(7));
  assert_eq!(pkt.payload, b"hello, uTP");
  assert_eq!(encode(&pkt), data);
}

// ---------------------------------------------------------------------------------------------
// Our extensions
// ---------------------------------------------------------------------------------------------

/// libutp takes a datagram whose header names a first extension of type 3 or more as not uTP (it
/// never answered our SYN): an empty SACK leads the chain, which both references skip
#[test]
fn our_extensions_never_lead_the_chain() {
  let syn = Packet {
    header: header(PacketType::Syn),
    sack: None,
    ours: Ours {
      hello: Some(Hello::OURS),
      ..Ours::NONE
    },
    payload: &[],
  };
  let out = encode(&syn);
  assert_eq!(out.len(), syn.encoded_len());
  assert_eq!(out[1], 1, "the header names a selective ACK");
  assert_eq!(
    &out[HEADER_LEN..],
    &[0x55, 0, 0, 4, b'u', b'p', 1, Hello::OURS.caps]
  );
  assert_eq!(decode(&out), Ok(syn), "the empty SACK reads as none");

  let piece = Some(crate::packet::Fragment { index: 1, count: 3 });
  for (sack, hello, end_of_write, fragment) in [
    (None, None, true, None),
    (Some(&[1u8, 2, 3][..]), Some(Hello::OURS), true, piece),
    (Some(&[9u8][..]), None, false, None),
    (None, None, false, piece),
  ] {
    let p = Packet {
      header: header(PacketType::Data),
      sack: sack.map(|b| SelectiveAck::new(b).unwrap()),
      ours: Ours {
        hello,
        end_of_write,
        fragment,
      },
      payload: b"xyz",
    };
    let out = encode(&p);
    assert!(out[1] < 3, "{p:?}");
    assert_eq!(out.len(), p.encoded_len());
    assert_eq!(decode(&out), Ok(p));
  }
}

/// A hello we cannot read (wrong magic, too short, version 0) is an unknown extension, skipped
#[test]
fn a_malformed_hello_is_skipped() {
  for body in [&b"xp\x01\x07"[..], b"up\x01", b"up\x00\x07", b""] {
    let buf = raw_packet(
      0x41,
      &[RawExt { ty: 1, body: &[] }, RawExt { ty: 0x55, body }],
      b"",
    );
    let p = decode(&buf).unwrap();
    assert_eq!(p.ours, Ours::NONE, "{body:?}");
  }
}

/// A fragment extension that cannot be right (one piece, an index past the count, a wrong length)
/// is ignored, so the packet is read as a whole one
#[test]
fn a_malformed_fragment_is_skipped() {
  for body in [&[0u8, 1][..], &[3, 3], &[0], &[0, 2, 0]] {
    let buf = raw_packet(
      0x01,
      &[RawExt { ty: 1, body: &[] }, RawExt { ty: 0x57, body }],
      b"x",
    );
    assert_eq!(decode(&buf).unwrap().ours, Ours::NONE, "{body:?}");
  }
}

/// A capability is had only when the hello sets every bit of it
#[test]
fn a_hello_has_only_the_capabilities_it_names() {
  let only_large = Hello {
    version: 1,
    caps: Hello::LARGE_DATAGRAMS,
  };
  assert!(only_large.has(Hello::LARGE_DATAGRAMS));
  assert!(!only_large.has(Hello::PMTU_PROBES));
  assert!(!only_large.has(Hello::LARGE_DATAGRAMS | Hello::FRAGMENTS));
  assert!(Hello::OURS.has(Hello::PMTU_PROBES | Hello::WRITE_BOUNDARIES));
}

/// `Ours::MAX_OVERHEAD` is exactly what all of our extensions add to a packet without a SACK
/// (the empty SACK that leads them included): what a sender reserves for them is neither short
/// nor wasted
#[test]
fn the_most_our_extensions_add_is_max_overhead() {
  let p = Packet {
    header: header(PacketType::Data),
    sack: None,
    ours: Ours {
      hello: Some(Hello::OURS),
      end_of_write: true,
      fragment: Some(Fragment { index: 0, count: 2 }),
    },
    payload: b"xyz",
  };
  assert_eq!(encode(&p).len(), HEADER_LEN + Ours::MAX_OVERHEAD + 3);
}
