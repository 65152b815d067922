//! Packetization-layer path MTU discovery (RFC 8899, DPLPMTUD), for one connection
//!
//! uTP cannot resize a packet it has sent (sequence numbers count packets, and a lost packet is
//! resent as it was), so probing with data would strand a too-large packet on the path forever.
//! Probes are separate datagrams instead: `UTPRM` · kind (1 probe, 2 ack) · the receiver's
//! connection id (u16) · the probed payload size (u16), padded to the size of a DATA packet with
//! that payload. Our endpoint answers a probe with a 10-byte ack; peers that are not us (libutp)
//! ignore the datagram, so probing ends after a few unanswered tries and the base size stays.
//! The first byte (`U`, version nibble 5) keeps probes apart from uTP and STUN.
//!
//! The search starts optimistic (the largest size first: most paths carry 1,500-byte IP packets),
//! then halves the gap between the largest size acknowledged and the smallest that failed.

use core::time::Duration;

use crate::time::Instant;

/// The first five bytes of every probe and ack
pub const MAGIC: &[u8; 5] = b"UTPRM";
const KIND_PROBE: u8 = 1;
const KIND_ACK: u8 = 2;
/// Magic, kind, connection id, size
pub const ACK_LEN: usize = 10;
/// A probe is padded to the size of the largest DATA packet with the probed payload: the header,
/// then the extensions a packet that ends a write carries to one of ours (an empty SACK and the
/// end-of-write marker, see `packet::Hello`), since probes only ever go to ours
const UTP_HEADER: usize = 24;
/// Tries per size before it counts as too large
const ATTEMPTS: u32 = 3;
/// How long to wait for a probe's ack, whatever the round-trip time says
const MIN_PROBE_TIMEOUT: Duration = Duration::from_millis(200);
const MAX_PROBE_TIMEOUT: Duration = Duration::from_millis(2000);
/// First probe after the connection opens
const FIRST_PROBE_AFTER: Duration = Duration::from_millis(200);
/// The search ends when the gap between good and bad is this small
const RESOLUTION: usize = 16;

/// A decoded probe or ack
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
  /// "Does a packet with this payload get through?"
  Probe {
    /// The id the receiving connection receives on
    conn_id: u16,
    /// The payload size the probe stands for
    payload: usize,
  },
  /// "It did"
  Ack {
    /// The id the prober's connection receives on
    conn_id: u16,
    /// The payload size acknowledged
    payload: usize,
  },
}

/// Whether a datagram is ours (a probe or an ack), valid or not
pub fn is_pmtu(data: &[u8]) -> bool {
  data.starts_with(MAGIC)
}

/// Parse a probe or ack; None for anything malformed (a truncated probe included)
pub fn decode(data: &[u8]) -> Option<Message> {
  if data.len() < ACK_LEN || !is_pmtu(data) {
    return None;
  }
  let conn_id = u16::from_be_bytes([data[6], data[7]]);
  let payload = u16::from_be_bytes([data[8], data[9]]) as usize;
  match data[5] {
    // A probe must be as long as it claims, or it proves nothing about the path
    KIND_PROBE if data.len() == UTP_HEADER + payload => Some(Message::Probe { conn_id, payload }),
    KIND_ACK => Some(Message::Ack { conn_id, payload }),
    _ => None,
  }
}

/// Append a probe for `payload` bytes to `out`
pub fn encode_probe(conn_id: u16, payload: usize, out: &mut Vec<u8>) {
  let start = out.len();
  encode(KIND_PROBE, conn_id, payload, out);
  out.resize(start + UTP_HEADER + payload, 0);
}

/// Append the ack of a probe for `payload` bytes to `out`
pub fn encode_ack(conn_id: u16, payload: usize, out: &mut Vec<u8>) {
  encode(KIND_ACK, conn_id, payload, out);
}

fn encode(kind: u8, conn_id: u16, payload: usize, out: &mut Vec<u8>) {
  out.extend_from_slice(MAGIC);
  out.push(kind);
  out.extend_from_slice(&conn_id.to_be_bytes());
  out.extend_from_slice(&(payload.min(u16::MAX as usize) as u16).to_be_bytes());
}

/// The search for one connection
#[derive(Debug, Clone)]
pub struct PathMtu {
  /// Largest payload known to get through (starts at the configured size)
  good: usize,
  /// Smallest payload known not to (one past the ceiling at first)
  bad: usize,
  /// Nothing failed yet: the next probe tries the ceiling itself
  optimistic: bool,
  /// The probe in flight: its size, when its answer is overdue, how many tries so far
  probe: Option<(usize, Instant, u32)>,
  /// When the next probe (or retry) may go out
  next_at: Instant,
}

impl PathMtu {
  /// Search between `base` (assumed to work) and `ceiling` payload bytes
  pub fn new(base: usize, ceiling: usize, now: Instant) -> Self {
    Self {
      good: base,
      bad: ceiling.max(base) + 1,
      optimistic: true,
      probe: None,
      next_at: now + FIRST_PROBE_AFTER,
    }
  }

  /// The largest payload proven to get through
  pub fn current(&self) -> usize {
    self.good
  }

  /// The search is over: the gap between good and bad is within the resolution
  pub fn done(&self) -> bool {
    self.probe.is_none() && self.bad - self.good <= RESOLUTION
  }

  /// A probe to send now, if one is due: its payload size. `rto`: the connection's retransmission
  /// timeout, how long the answer may take
  pub fn poll(&mut self, now: Instant, rto: Duration) -> Option<usize> {
    if self.done() || now < self.next_at {
      return None;
    }
    let (size, tries) = match self.probe {
      Some((size, _, tries)) => (size, tries + 1),
      None if self.optimistic => (self.bad - 1, 1),
      None => ((self.good + self.bad) / 2, 1),
    };
    let overdue = now + rto.clamp(MIN_PROBE_TIMEOUT, MAX_PROBE_TIMEOUT);
    self.probe = Some((size, overdue, tries));
    self.next_at = overdue;
    Some(size)
  }

  /// When `poll` next has something (a retry, or the next size); None once the search is over
  pub fn next_deadline(&self) -> Option<Instant> {
    (!self.done()).then_some(self.next_at)
  }

  /// Time passed: after ATTEMPTS unanswered tries a size counts as too large
  pub fn on_timeout(&mut self, now: Instant) {
    if let Some((size, overdue, tries)) = self.probe {
      if tries >= ATTEMPTS && now >= overdue {
        self.bad = size;
        self.optimistic = false;
        self.probe = None;
        self.next_at = now;
      }
    }
  }

  /// The peer acknowledged a probe of `payload` bytes: the new current size if it grew
  pub fn on_ack(&mut self, payload: usize, now: Instant) -> Option<usize> {
    let (size, _, _) = self.probe?;
    if payload != size {
      return None; // a late ack of an earlier size
    }
    self.probe = None;
    self.next_at = now;
    if payload <= self.good {
      return None;
    }
    self.good = payload;
    Some(payload)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
  }

  /// Run a search against a path that carries payloads up to `limit`
  fn search(base: usize, ceiling: usize, limit: usize) -> (usize, u32) {
    let mut now = Instant::from_micros(0);
    let mut p = PathMtu::new(base, ceiling, now);
    let mut probes = 0;
    for _ in 0..10_000 {
      if p.done() {
        break;
      }
      if let Some(size) = p.poll(now, ms(100)) {
        probes += 1;
        if size <= limit {
          p.on_ack(size, now + ms(10));
        }
      }
      now = now + ms(50);
      p.on_timeout(now);
    }
    assert!(p.done());
    (p.current(), probes)
  }

  #[test]
  fn finds_the_path_limit_within_the_resolution() {
    assert_eq!(search(1000, 1452, 1452), (1452, 1)); // ethernet all the way: one probe
    let (found, probes) = search(1000, 1452, 1372); // a tunnel on the way
    assert!(found <= 1372 && 1372 - found <= RESOLUTION, "found {found}");
    assert!(probes < 20, "{probes} probes");
    assert_eq!(search(1000, 1452, 900).0, 1000); // below the base: the base stays
  }

  #[test]
  fn codec_round_trips_and_rejects_short_probes() {
    let mut buf = Vec::new();
    encode_probe(0xbeef, 1400, &mut buf);
    assert_eq!(
      buf.len(),
      1424,
      "as large as a DATA packet with our two extensions"
    );
    assert_eq!(
      decode(&buf),
      Some(Message::Probe {
        conn_id: 0xbeef,
        payload: 1400
      })
    );
    assert_eq!(decode(&buf[..1000]), None); // truncated on the way: proves nothing
    let mut ack = Vec::new();
    encode_ack(7, 1400, &mut ack);
    assert_eq!(ack.len(), ACK_LEN);
    assert_eq!(
      decode(&ack),
      Some(Message::Ack {
        conn_id: 7,
        payload: 1400
      })
    );
    assert!(!crate::packet::looks_like_utp(&buf));
    assert_eq!(decode(b"UTPRMx"), None);
  }

  /// The whole search, probe by probe, against a path that carries up to 1,372 bytes: the
  /// ceiling first (three tries, each given the clamped timeout), then halving the gap; each
  /// ack lets the next probe go at once; it stops within RESOLUTION
  #[test]
  fn the_search_probes_in_this_order_at_these_times() {
    let t = |ms: u64| Instant::from_micros(ms * 1000);
    let mut p = PathMtu::new(1000, 1452, t(0));
    let mut probes = Vec::new();
    while let Some(at) = p.next_deadline() {
      p.on_timeout(at);
      if let Some(size) = p.poll(at, ms(100)) {
        assert_eq!(p.poll(at, ms(100)), None, "one probe at a time");
        probes.push((at.as_micros() / 1000, size));
        if size <= 1372 {
          let grew = p.on_ack(size, at + ms(10));
          assert_eq!(grew, Some(size));
        }
      }
    }
    assert_eq!(
      probes,
      [
        (200, 1452),
        (400, 1452),
        (600, 1452),
        (800, 1226),
        (810, 1339),
        (820, 1395),
        (1020, 1395),
        (1220, 1395),
        (1420, 1367),
        (1430, 1381),
        (1630, 1381),
        (1830, 1381),
      ]
    );
    assert_eq!(p.current(), 1367);
    assert!(p.done());
    assert_eq!(p.poll(t(10_000), ms(100)), None);
  }

  /// A slow path's probes wait for its RTO, up to MAX_PROBE_TIMEOUT; a size is given up only
  /// once its last try is overdue; acks of another size, or of one no larger, change nothing
  #[test]
  fn timeouts_and_stray_acks() {
    let t = |ms: u64| Instant::from_micros(ms * 1000);
    let mut p = PathMtu::new(1000, 1452, t(0));
    assert_eq!(p.poll(t(199), ms(5000)), None, "not before FIRST_PROBE_AFTER");
    assert_eq!(p.poll(t(200), ms(5000)), Some(1452));
    assert_eq!(p.next_deadline(), Some(t(2200)));
    assert_eq!(p.on_ack(1400, t(300)), None, "not the size in flight");
    assert_eq!(p.poll(t(2200), ms(700)), Some(1452));
    assert_eq!(p.next_deadline(), Some(t(2900)));
    assert_eq!(p.poll(t(2900), ms(700)), Some(1452));
    p.on_timeout(t(3599));
    assert_eq!(
      p.next_deadline(),
      Some(t(3600)),
      "the third try is not overdue yet"
    );
    p.on_timeout(t(3600));
    assert_eq!(p.poll(t(3600), ms(700)), Some(1226));
    assert_eq!(p.on_ack(1226, t(3700)), Some(1226));
    let mut q = PathMtu::new(1000, 1452, t(0));
    q.poll(t(200), ms(100));
    q.good = 1452;
    assert_eq!(q.on_ack(1452, t(250)), None, "no growth, no news");
  }

  #[test]
  fn malformed_messages_are_refused() {
    let mut ack = Vec::new();
    encode_ack(7, 70_000, &mut ack);
    assert_eq!(
      decode(&ack),
      Some(Message::Ack {
        conn_id: 7,
        payload: 65535
      }),
      "sizes saturate"
    );
    assert_eq!(decode(&ack[..ACK_LEN - 1]), None);
    let mut other = ack.clone();
    other[5] = 3;
    assert_eq!(decode(&other), None, "unknown kind");
    let mut probe = Vec::new();
    encode_probe(9, 100, &mut probe);
    assert_eq!(probe.len(), UTP_HEADER + 100);
    probe.push(0);
    assert_eq!(decode(&probe), None, "longer than it claims");
    assert!(!is_pmtu(b"UTPR"));
  }
}
