//! The BEP 29 wire format: a 20-byte header, a chain of extensions, then payload
//!
//! ```text
//! 0       4       8               16              24              32
//! +-------+-------+---------------+---------------+---------------+
//! | type  | ver   | extension     | connection_id                 |
//! | timestamp_microseconds                                        |
//! | timestamp_difference_microseconds                             |
//! | wnd_size                                                      |
//! | seq_nr                        | ack_nr                        |
//! +---------------------------------------------------------------+
//! ```
//! All integers are big-endian. Each extension is `next_type: u8, len: u8, len bytes`; type 1 is
//! the selective ACK bitmask. Unknown extensions are skipped, never read as payload (libutp and
//! libtorrent do the same, which is what lets us add two of our own, see [`Hello`]).
//!
//! Decoding never panics on untrusted input; whatever [`decode`] accepts, [`Packet::encode`]
//! reproduces byte for byte, up to its extension chain: unknown extensions and an empty SACK are
//! dropped, and ours come back in their own order and form.

use crate::seq::SeqNr;

//= https://www.bittorrent.org/beps/bep_0029.html
//# The current version is 1.
const VERSION: u8 = 1;
/// Length of the fixed header
pub const HEADER_LEN: usize = 20;
const EXT_NONE: u8 = 0;
const EXT_SELECTIVE_ACK: u8 = 1;
/// Ours: "I am utp-punch-rs", in a SYN and in the STATE that answers it (see [`Hello`]). libutp
/// reads type 2 as its 8-byte extension bits and libtorrent type 3 as a close reason; both skip
/// any other type, so this costs a peer that is not ours nothing
///
/// Never first in the chain: libutp takes a datagram whose header names an extension type of 3
/// or more as not uTP at all (`UTP_Version`), so an empty selective ACK leads (libtorrent's
/// `parse_sack` returns at once for zero bytes, libutp reads no bits, we treat it as absent)
const EXT_HELLO: u8 = 0x55;
/// Ours, empty: this DATA packet carries the last byte of an application write (sent only to a
/// peer whose [`Hello`] said it reads them)
const EXT_END_OF_WRITE: u8 = 0x56;
/// Ours, `index` · `count`: this DATA packet is one piece of the packet with its sequence number
/// (see [`Fragment`]); sent only to a peer whose hello has [`Hello::FRAGMENTS`]
const EXT_FRAGMENT: u8 = 0x57;
const HELLO_MAGIC: [u8; 2] = *b"up";
/// Largest selective-ACK bitmask we emit, in bytes (256 packets past the cumulative ACK)
pub const MAX_SACK_BYTES: usize = 32;

/// The five uTP packet types
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
  /// Payload data, consumes a sequence number
  Data = 0,
  /// Finalize: the sender will send no more data; consumes a sequence number
  Fin = 1,
  /// Acknowledgement only; carries no data and consumes no sequence number
  State = 2,
  /// Terminates the connection forcefully
  Reset = 3,
  /// Opens a connection; consumes a sequence number
  Syn = 4,
}

impl PacketType {
  fn from_nibble(n: u8) -> Option<Self> {
    Some(match n {
      0 => Self::Data,
      1 => Self::Fin,
      2 => Self::State,
      3 => Self::Reset,
      4 => Self::Syn,
      _ => return None,
    })
  }
}

/// Why a datagram is not a well-formed uTP v1 packet
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
  /// Shorter than the 20-byte header
  #[error("datagram shorter than the uTP header")]
  TooShort,
  /// Version nibble is not 1
  #[error("not uTP version 1")]
  BadVersion,
  /// Type nibble is not one of the five packet types
  #[error("unknown uTP packet type")]
  BadType,
  /// An extension runs past the end of the datagram
  #[error("truncated extension")]
  TruncatedExtension,
  /// A selective ACK bitmask longer than an extension can carry (255 bytes), or empty
  #[error("malformed selective ACK")]
  BadSelectiveAck,
}

/// The fixed 20-byte header, parsed
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
  /// Packet type
  pub ty: PacketType,
  /// Connection id (see the crate docs for the recv_id / recv_id+1 scheme)
  pub conn_id: u16,
  /// Sender's clock when sending, in wrapping microseconds
  pub timestamp: u32,
  /// Sender's latest one-way delay sample of packets it received from us
  pub timestamp_diff: u32,
  /// Bytes the sender can still take into its receive buffer
  pub wnd_size: u32,
  /// Sequence number of this packet (of the next one for STATE)
  pub seq_nr: SeqNr,
  /// Last sequence number received in order
  pub ack_nr: SeqNr,
}

/// A selective ACK bitmask: bit `i` (byte `i / 8`, least significant bit first) acknowledges
/// sequence number `ack_nr + 2 + i`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectiveAck<'a> {
  bytes: &'a [u8],
}

impl<'a> SelectiveAck<'a> {
  /// Wrap a bitmask of 1 to 255 bytes. BEP 29 says a multiple of 4, and that is what we send, but
  /// libtorrent sends `(span + 7) / 8` bytes (often 1 to 3) and libutp reads any length
  pub fn new(bytes: &'a [u8]) -> Result<Self, DecodeError> {
    if bytes.is_empty() || bytes.len() > u8::MAX as usize {
      return Err(DecodeError::BadSelectiveAck);
    }
    Ok(Self { bytes })
  }

  /// The raw bitmask
  pub fn bytes(&self) -> &'a [u8] {
    self.bytes
  }

  /// Number of packets the mask covers
  pub fn len_bits(&self) -> usize {
    self.bytes.len() * 8
  }

  /// Whether bit `i` is set
  pub fn is_set(&self, i: usize) -> bool {
    self.bytes.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
  }

  /// Sequence numbers acknowledged, given the packet's cumulative `ack_nr`
  pub fn acked(&self, ack_nr: SeqNr) -> impl Iterator<Item = SeqNr> + '_ {
    (0..self.len_bits())
      .filter(|&i| self.is_set(i))
      .map(move |i| ack_nr.add(2 + i as u16))
  }
}

/// Our hello: a SYN carries it, and the STATE answering a SYN that carried it does too, so both
/// ends know the other is utp-punch-rs and which of our additions it takes. Until then a peer gets
/// only what BEP 29 promises: no datagram above the ordinary packet size (libtorrent reads into a
/// 1,500-byte buffer and truncates), no path MTU probes, no end-of-write markers.
/// Body: `u` `p` · version · capability bits ([`Hello::LARGE_DATAGRAMS`] and the others)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
  /// Version of our extensions (1)
  pub version: u8,
  /// Capability bits
  pub caps: u8,
}

impl Hello {
  /// It reads datagrams of up to 64 KiB (used toward loopback peers)
  pub const LARGE_DATAGRAMS: u8 = 1;
  /// It answers path MTU probes (`UTPRM`, see [`crate::pmtu`])
  pub const PMTU_PROBES: u8 = 2;
  /// It ends a delivered chunk where a DATA packet with the end-of-write marker ends
  pub const WRITE_BOUNDARIES: u8 = 4;
  /// It reassembles a packet sent in pieces ([`Fragment`])
  pub const FRAGMENTS: u8 = 8;
  /// What this implementation does
  pub const OURS: Hello = Hello {
    version: 1,
    caps: Self::LARGE_DATAGRAMS | Self::PMTU_PROBES | Self::WRITE_BOUNDARIES | Self::FRAGMENTS,
  };

  /// Whether every bit of `cap` is set
  pub fn has(&self, cap: u8) -> bool {
    self.caps & cap == cap
  }

  fn parse(body: &[u8]) -> Option<Self> {
    match body {
      [m0, m1, version, caps, ..] if [*m0, *m1] == HELLO_MAGIC && *version >= 1 => Some(Self {
        version: *version,
        caps: *caps,
      }),
      _ => None,
    }
  }
}

/// A decoded packet borrowing from the datagram
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
  /// Fixed header
  pub header: Header,
  /// Selective ACK extension, if present
  pub sack: Option<SelectiveAck<'a>>,
  /// Our extensions, if present
  pub ours: Ours,
  /// Payload bytes after the extension chain
  pub payload: &'a [u8],
}

/// One piece of a DATA packet too large for the path it must be resent on
///
/// Sequence numbers count packets, so a packet sent before the path MTU shrank (a black hole:
/// RFC 8899 §4.3) cannot be cut into new packets; it is resent as `count` datagrams with its own
/// sequence number, each carrying the next slice of its payload, and the receiver takes the
/// packet once it has every piece. Only packets larger than the base size ever exist, and only
/// toward our own peers (the path MTU search runs only with them), so only they need this
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
  /// Which piece, from 0
  pub index: u8,
  /// How many pieces (at least 2)
  pub count: u8,
}

/// Our own extensions on a packet (see [`Hello`]); all absent by default
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ours {
  /// The hello of a SYN or of the STATE that answers it
  pub hello: Option<Hello>,
  /// This DATA packet ends an application write
  pub end_of_write: bool,
  /// This DATA packet is one piece of a larger one
  pub fragment: Option<Fragment>,
}

impl Ours {
  /// No extension
  pub const NONE: Ours = Ours {
    hello: None,
    end_of_write: false,
    fragment: None,
  };

  /// Bytes our extensions add to a packet that has them (the empty SACK leading them included)
  pub const MAX_OVERHEAD: usize = 2 + 6 + 2 + 4;

  fn encoded_len(&self) -> usize {
    self.hello.map_or(0, |_| 6) + if self.end_of_write { 2 } else { 0 } + self.fragment.map_or(0, |_| 4)
  }

  fn any(&self) -> bool {
    self.hello.is_some() || self.end_of_write || self.fragment.is_some()
  }
}

/// Parse a datagram as a uTP v1 packet
pub fn decode(buf: &[u8]) -> Result<Packet<'_>, DecodeError> {
  if buf.len() < HEADER_LEN {
    return Err(DecodeError::TooShort);
  }
  if buf[0] & 0x0f != VERSION {
    return Err(DecodeError::BadVersion);
  }
  let ty = PacketType::from_nibble(buf[0] >> 4).ok_or(DecodeError::BadType)?;
  let u16_at = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
  let u32_at = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
  let header = Header {
    ty,
    conn_id: u16_at(2),
    timestamp: u32_at(4),
    timestamp_diff: u32_at(8),
    wnd_size: u32_at(12),
    seq_nr: SeqNr(u16_at(16)),
    ack_nr: SeqNr(u16_at(18)),
  };
  let mut next = buf[1];
  let mut at = HEADER_LEN;
  let mut sack = None;
  let mut ours = Ours::NONE;
  while next != EXT_NONE {
    let (ext, len) = match buf.get(at..at + 2) {
      Some(&[n, l]) => (n, l as usize),
      _ => return Err(DecodeError::TruncatedExtension),
    };
    let body = buf
      .get(at + 2..at + 2 + len)
      .ok_or(DecodeError::TruncatedExtension)?;
    match next {
      // An empty bitmask acknowledges nothing: skipped like libutp does, not a reason to throw
      // away the header's cumulative ACK, window and timestamps
      EXT_SELECTIVE_ACK if sack.is_none() => sack = SelectiveAck::new(body).ok(),
      EXT_HELLO => ours.hello = ours.hello.or(Hello::parse(body)),
      EXT_END_OF_WRITE => ours.end_of_write = true,
      EXT_FRAGMENT => {
        if let &[index, count] = body {
          if count >= 2 && index < count {
            ours.fragment = Some(Fragment { index, count });
          }
        }
      }
      _ => {}
    }
    next = ext;
    at += 2 + len;
  }
  Ok(Packet {
    header,
    sack,
    ours,
    payload: &buf[at..],
  })
}

impl Header {
  /// Append the 20 header bytes, announcing `first_ext` as the first extension
  fn emit(&self, first_ext: u8, out: &mut Vec<u8>) {
    out.push(((self.ty as u8) << 4) | VERSION);
    out.push(first_ext);
    out.extend_from_slice(&self.conn_id.to_be_bytes());
    out.extend_from_slice(&self.timestamp.to_be_bytes());
    out.extend_from_slice(&self.timestamp_diff.to_be_bytes());
    out.extend_from_slice(&self.wnd_size.to_be_bytes());
    out.extend_from_slice(&self.seq_nr.0.to_be_bytes());
    out.extend_from_slice(&self.ack_nr.0.to_be_bytes());
  }
}

impl Packet<'_> {
  /// Bytes [`Packet::encode`] appends
  pub fn encoded_len(&self) -> usize {
    let sack = match self.sack {
      Some(s) => 2 + s.bytes.len(),
      None if self.ours.any() => 2,
      None => 0,
    };
    HEADER_LEN + sack + self.ours.encoded_len() + self.payload.len()
  }

  /// Append the packet's wire form to `out`
  pub fn encode(&self, out: &mut Vec<u8>) {
    out.reserve(self.encoded_len());
    // The chain in a fixed order: SACK (an empty one when ours follow: see EXT_HELLO), hello,
    // end of write, fragment
    let mut chain: [(u8, &[u8]); 4] = [(EXT_NONE, &[]); 4];
    let mut n = 0;
    let hello_body;
    if let Some(s) = self.sack {
      chain[n] = (EXT_SELECTIVE_ACK, s.bytes);
      n += 1;
    } else if self.ours.any() {
      chain[n] = (EXT_SELECTIVE_ACK, &[]);
      n += 1;
    }
    if let Some(h) = self.ours.hello {
      hello_body = [HELLO_MAGIC[0], HELLO_MAGIC[1], h.version, h.caps];
      chain[n] = (EXT_HELLO, &hello_body);
      n += 1;
    }
    if self.ours.end_of_write {
      chain[n] = (EXT_END_OF_WRITE, &[]);
      n += 1;
    }
    let fragment_body;
    if let Some(f) = self.ours.fragment {
      fragment_body = [f.index, f.count];
      chain[n] = (EXT_FRAGMENT, &fragment_body);
      n += 1;
    }
    self.header.emit(chain[0].0, out);
    for i in 0..n {
      let next = if i + 1 < n { chain[i + 1].0 } else { EXT_NONE };
      out.push(next);
      out.push(chain[i].1.len() as u8);
      out.extend_from_slice(chain[i].1);
    }
    out.extend_from_slice(self.payload);
  }
}

/// Cheap check used by the demultiplexer: could this datagram be uTP at all?
///
/// STUN shares the first byte with uTP DATA (0x00/0x01), so a datagram carrying the STUN magic
/// cookie with a consistent STUN length is never treated as uTP.
pub fn looks_like_utp(buf: &[u8]) -> bool {
  if buf.len() < HEADER_LEN || buf[0] & 0x0f != VERSION || buf[0] >> 4 > 4 {
    return false;
  }
  !is_stun(buf)
}

/// Whether a datagram is a STUN message (RFC 8489 section 5: top bits zero, magic cookie, length)
pub fn is_stun(buf: &[u8]) -> bool {
  const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
  buf.len() >= 20
    && buf[0] & 0xC0 == 0
    && buf[4..8] == MAGIC_COOKIE
    && u16::from_be_bytes([buf[2], buf[3]]) as usize == buf.len() - 20
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
