//! Receive side: in-order bytes waiting for the application plus out-of-order packets
//!
//! Every byte held here counts against the receive window we advertise, so an application that
//! stops reading closes the window and the peer stops sending: read backpressure end to end.

use std::collections::VecDeque;

use crate::seq::SeqNr;

/// In-order data past a closed window that we still take, at most. libutp's sender ignores a
/// zero window when its retransmission timer fires and gives up after four unanswered timeouts;
/// dropping that packet would let a slow reader kill the connection. Bounded, so a peer that
/// ignores the window on purpose cannot make us hold more than this beyond the buffer
const OVERFLOW_ALLOWANCE: usize = 64 * 1024;

/// One packet's payload; `ends_write` marks the last bytes of a peer's application write
#[derive(Debug, Default)]
struct Chunk {
  data: Vec<u8>,
  ends_write: bool,
}

/// Reassembly buffer for one connection
#[derive(Debug)]
pub(crate) struct RecvBuffer {
  /// In-order payload chunks not yet read by the application
  ready: VecDeque<Chunk>,
  /// Offset already consumed in `ready.front()`
  front_consumed: usize,
  ready_bytes: usize,
  /// `ooo[i]` holds the packet with sequence `ack_nr + 1 + i` (slot 0 is always empty)
  ooo: VecDeque<Option<Chunk>>,
  ooo_bytes: usize,
  capacity: usize,
  max_ooo_packets: usize,
  spare: Vec<Vec<u8>>,
}

/// What happened to an arriving data packet
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
  /// It was the next expected packet; `n` packets (it and any buffered successors) became ready
  InOrder(u16),
  /// Buffered out of order
  Buffered,
  /// Already had it
  Duplicate,
  /// No room (window exceeded) or too far ahead; dropped
  Dropped,
}

impl RecvBuffer {
  pub(crate) fn new(capacity: usize, max_ooo_packets: usize) -> Self {
    Self {
      ready: VecDeque::new(),
      front_consumed: 0,
      ready_bytes: 0,
      ooo: VecDeque::new(),
      ooo_bytes: 0,
      capacity,
      max_ooo_packets,
      spare: Vec::new(),
    }
  }

  /// Bytes the peer may still send (what we advertise as `wnd_size`)
  pub(crate) fn window(&self) -> usize {
    self.capacity.saturating_sub(self.ready_bytes + self.ooo_bytes)
  }

  pub(crate) fn ready_bytes(&self) -> usize {
    self.ready_bytes
  }

  pub(crate) fn has_out_of_order(&self) -> bool {
    self.ooo_bytes > 0 || self.ooo.iter().any(Option::is_some)
  }

  fn chunk(&mut self, payload: &[u8], ends_write: bool) -> Chunk {
    let mut data = self.spare.pop().unwrap_or_default();
    data.clear();
    data.extend_from_slice(payload);
    Chunk { data, ends_write }
  }

  /// Offer the packet `seq` given the last in-order sequence number `ack_nr`; `ends_write`: a
  /// read stops after its last byte
  ///
  /// Zero-length payloads (FIN) are tracked for ordering like any other packet.
  pub(crate) fn insert(&mut self, ack_nr: SeqNr, seq: SeqNr, payload: &[u8], ends_write: bool) -> Arrival {
    let ahead = seq.distance_from(ack_nr);
    if ahead == 0 || ahead >= 0x8000 {
      return Arrival::Duplicate;
    }
    let slot = ahead as usize - 1;
    if slot >= self.max_ooo_packets {
      return Arrival::Dropped;
    }
    if self.ooo.get(slot).is_some_and(Option::is_some) {
      return Arrival::Duplicate;
    }
    // The next in-order packet is taken past the window: when out-of-order data fills the buffer,
    // refusing it would deadlock (the hole could never be filled); when unread data fills it, a
    // sender that probes a closed window (our persist timer, libutp's timeout resend) must get an
    // ACK, up to OVERFLOW_ALLOWANCE. Out-of-order data honours the window, so a reader that stops
    // really stops the sender.
    let fits = if slot > 0 {
      payload.len() <= self.window()
    } else {
      // An empty packet (a FIN) holds nothing and always fits. With nothing out of order held,
      // everything held is unread in-order data
      let fills_hole = self.ooo_bytes > 0;
      fills_hole
        || payload.is_empty()
        || self.ready_bytes + payload.len() <= self.capacity + OVERFLOW_ALLOWANCE
    };
    if !fits {
      return Arrival::Dropped;
    }
    if slot == 0 {
      if !payload.is_empty() {
        let c = self.chunk(payload, ends_write);
        self.push_ready(c);
      }
      self.ooo.pop_front();
      let mut n = 1u16;
      while let Some(Some(_)) = self.ooo.front() {
        let c = self.ooo.pop_front().flatten().unwrap_or_default();
        self.ooo_bytes -= c.data.len();
        self.push_ready(c);
        n += 1;
      }
      return Arrival::InOrder(n);
    }
    if self.ooo.len() <= slot {
      self.ooo.resize_with(slot + 1, || None);
    }
    let c = self.chunk(payload, ends_write);
    self.ooo_bytes += c.data.len();
    self.ooo[slot] = Some(c);
    Arrival::Buffered
  }

  fn push_ready(&mut self, c: Chunk) {
    if c.data.is_empty() {
      self.spare.push(c.data);
      return;
    }
    self.ready_bytes += c.data.len();
    self.ready.push_back(c);
  }

  /// Selective-ACK bitmask for the packets buffered past `ack_nr + 1`, at most `max_bytes` long
  pub(crate) fn sack_bitmask(&self, out: &mut Vec<u8>, max_bytes: usize) {
    out.clear();
    // bit i covers ack_nr + 2 + i, which is ooo slot i + 1
    let Some(last) = self.ooo.iter().skip(1).rposition(Option::is_some) else {
      return;
    };
    let bytes = ((last / 8 + 1).div_ceil(4) * 4).min(max_bytes);
    out.resize(bytes, 0);
    for i in 0..(bytes * 8).min(self.ooo.len().saturating_sub(1)) {
      if self.ooo[i + 1].is_some() {
        out[i / 8] |= 1 << (i % 8);
      }
    }
  }

  /// Move up to `max` ready bytes to the end of `out`, stopping after the end of a peer's write;
  /// returns how many, and whether they end a write
  pub(crate) fn read(&mut self, out: &mut Vec<u8>, max: usize) -> (usize, bool) {
    let mut ended = false;
    let mut done = 0;
    while done < max {
      let Some(front) = self.ready.front() else { break };
      let avail = &front.data[self.front_consumed..];
      let n = avail.len().min(max - done);
      out.extend_from_slice(&avail[..n]);
      done += n;
      self.front_consumed += n;
      if self.front_consumed == front.data.len() {
        self.front_consumed = 0;
        let ends_write = front.ends_write;
        if let Some(c) = self.ready.pop_front() {
          if self.spare.len() < 64 {
            self.spare.push(c.data);
          }
        }
        if ends_write {
          ended = true;
          break;
        }
      }
    }
    self.ready_bytes -= done;
    (done, ended)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn reassembles_and_reports_window() {
    let mut b = RecvBuffer::new(100, 16);
    let a = SeqNr(65534);
    assert_eq!(b.insert(a, SeqNr(0), b"cc", false), Arrival::Buffered);
    assert_eq!(b.insert(a, SeqNr(0), b"cc", false), Arrival::Duplicate);
    let mut m = Vec::new();
    b.sack_bitmask(&mut m, 32);
    assert_eq!(m, vec![0b1, 0, 0, 0], "seq 0 is ack_nr + 2");
    assert_eq!(b.window(), 98);
    assert_eq!(b.insert(a, SeqNr(65535), b"bb", false), Arrival::InOrder(2));
    assert!(!b.has_out_of_order());
    assert_eq!(b.insert(SeqNr(0), SeqNr(0), b"zz", false), Arrival::Duplicate);
    let mut out = Vec::new();
    assert_eq!(b.read(&mut out, 3), (3, false));
    assert_eq!(b.read(&mut out, 10), (1, false));
    assert_eq!(out, b"bbcc");
    assert_eq!(b.window(), 100);
  }

  #[test]
  fn drops_what_does_not_fit() {
    let mut b = RecvBuffer::new(10, 4);
    assert_eq!(b.insert(SeqNr(0), SeqNr(1), &[0; 8], false), Arrival::InOrder(1));
    assert_eq!(
      b.insert(SeqNr(1), SeqNr(3), &[0; 8], false),
      Arrival::Dropped,
      "window is 2, and out-of-order data honours it"
    );
    assert_eq!(
      b.insert(SeqNr(1), SeqNr(7), &[0; 1], false),
      Arrival::Dropped,
      "beyond reorder limit"
    );
  }

  /// libutp resends into a zero window when its timer fires and dies after four unanswered
  /// timeouts: in-order data past the window is taken (and so acknowledged), up to a bound
  #[test]
  fn in_order_data_past_a_closed_window_is_taken_up_to_the_allowance() {
    let mut b = RecvBuffer::new(1000, 8);
    assert_eq!(
      b.insert(SeqNr(0), SeqNr(1), &[1; 1000], false),
      Arrival::InOrder(1)
    );
    assert_eq!(b.window(), 0);
    assert_eq!(
      b.insert(SeqNr(1), SeqNr(2), &[2; 1000], false),
      Arrival::InOrder(1)
    );
    let mut ack = SeqNr(2);
    while b.ready_bytes() + 1000 <= 1000 + OVERFLOW_ALLOWANCE {
      assert_eq!(b.insert(ack, ack.add(1), &[3; 1000], false), Arrival::InOrder(1));
      ack = ack.add(1);
    }
    assert_eq!(b.insert(ack, ack.add(1), &[4; 1000], false), Arrival::Dropped);
    let mut out = Vec::new();
    b.read(&mut out, usize::MAX);
    assert_eq!(b.insert(ack, ack.add(1), &[4; 1000], false), Arrival::InOrder(1));
  }

  /// A read ends where the peer's write ended, so each short write is one delivered chunk
  #[test]
  fn reads_stop_at_write_ends() {
    let mut b = RecvBuffer::new(100, 8);
    b.insert(SeqNr(0), SeqNr(2), b"cd", true);
    b.insert(SeqNr(0), SeqNr(1), b"ab", false);
    b.insert(SeqNr(2), SeqNr(3), b"e", true);
    b.insert(SeqNr(3), SeqNr(4), b"fg", false);
    let mut reads = Vec::new();
    loop {
      let mut out = Vec::new();
      if b.read(&mut out, 100).0 == 0 {
        break;
      }
      reads.push(out);
    }
    assert_eq!(reads, [&b"abcd"[..], b"e", b"fg"]);
    b.insert(SeqNr(4), SeqNr(5), b"hijk", true);
    let mut out = Vec::new();
    assert_eq!(b.read(&mut out, 3), (3, false), "a short read stops early");
    assert_eq!(
      b.read(&mut out, 3),
      (1, true),
      "and the rest of the write follows alone"
    );
  }
  /// The allowance past a closed window is 64 KiB of in-order data. A packet that fills the hole
  /// in front of out-of-order data is taken past it too (refusing it would stall the connection
  /// for good), and so is an empty one (a FIN holds nothing)
  #[test]
  fn the_allowance_is_64_kib_and_hole_fills_and_fins_pass_it() {
    let mut b = RecvBuffer::new(1000, 8);
    assert_eq!(
      b.insert(SeqNr(0), SeqNr(1), &[1; 1000], false),
      Arrival::InOrder(1)
    );
    assert_eq!(
      b.insert(SeqNr(1), SeqNr(2), &[2; 64 * 1024 + 1], false),
      Arrival::Dropped,
      "one byte past the allowance"
    );
    assert_eq!(
      b.insert(SeqNr(1), SeqNr(2), &[2; 64 * 1024], false),
      Arrival::InOrder(1)
    );
    assert_eq!(b.window(), 0);
    let mut out = Vec::new();
    b.read(&mut out, usize::MAX);
    // Five bytes out of order, then in-order packets far past the allowance: each fills the
    // hole in front of them, so each is taken
    assert_eq!(b.insert(SeqNr(2), SeqNr(5), &[5; 5], false), Arrival::Buffered);
    assert_eq!(
      b.insert(SeqNr(2), SeqNr(3), &[3; 60_000], false),
      Arrival::InOrder(1)
    );
    assert_eq!(
      b.insert(SeqNr(3), SeqNr(4), &[4; 60_000], false),
      Arrival::InOrder(2)
    );
    assert_eq!(b.ready_bytes(), 120_005);
    assert!(!b.has_out_of_order());
    assert_eq!(b.insert(SeqNr(5), SeqNr(6), &[6; 1], false), Arrival::Dropped);
    assert_eq!(
      b.insert(SeqNr(5), SeqNr(6), &[], false),
      Arrival::InOrder(1),
      "a FIN"
    );
  }

  /// Reads give their buffers back for the next arrivals to reuse, up to 64 of them
  #[test]
  fn reads_keep_up_to_64_buffers_for_reuse() {
    let mut b = RecvBuffer::new(1_000_000, 8);
    for i in 0..100u16 {
      b.insert(SeqNr(i), SeqNr(i + 1), &[7; 100], false);
    }
    let mut out = Vec::new();
    assert_eq!(b.read(&mut out, usize::MAX), (10_000, false));
    assert_eq!(b.spare.len(), 64);
    b.insert(SeqNr(100), SeqNr(101), &[8; 100], false);
    assert_eq!(b.spare.len(), 63, "an arrival took one");
  }

  #[test]
  fn the_next_in_order_packet_is_taken_even_when_out_of_order_data_filled_the_buffer() {
    let mut b = RecvBuffer::new(10, 8);
    assert_eq!(b.insert(SeqNr(0), SeqNr(2), &[2; 10], false), Arrival::Buffered);
    assert_eq!(b.window(), 0);
    assert_eq!(b.insert(SeqNr(0), SeqNr(1), &[1; 10], false), Arrival::InOrder(2));
    let mut out = Vec::new();
    assert_eq!(b.read(&mut out, 100), (20, false));
  }

  /// Reference model for the property test below: the same rules, stated over plain collections
  #[derive(Default)]
  struct Model {
    ack: u16,
    /// sequence offset past `ack` (1 = next) → (payload, ends_write)
    buffered: std::collections::BTreeMap<u16, (Vec<u8>, bool)>,
    /// in-order bytes not read yet, each with whether it ends a write
    ready: VecDeque<(u8, bool)>,
  }

  impl Model {
    fn ooo_bytes(&self) -> usize {
      self.buffered.values().map(|(p, _)| p.len()).sum()
    }
  }

  proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    /// Arrivals, window, SACK bits and reads agree with the model after every step, through
    /// holes, duplicates, a full window, the overflow allowance and sequence wrap-around
    #[test]
    fn arrivals_window_sacks_and_reads_match_a_model(
      start in proptest::prelude::any::<u16>(),
      steps in proptest::collection::vec((0u16..44, 0usize..60, proptest::prelude::any::<bool>(), 0u8..10), 1..150),
    ) {
      // Room for 40 packets out of order: SACK bitmasks of one and two 32-bit words
      const CAP: usize = 2000;
      const MAX_OOO: usize = 40;
      let mut b = RecvBuffer::new(CAP, MAX_OOO);
      let mut m = Model { ack: start, ..Model::default() };
      let mut next_byte = 0u8;
      for (ahead, len, ends, kind) in steps {
        if kind < 2 {
          let max = 1 + len % 30;
          let mut out = Vec::new();
          let (n, ended) = b.read(&mut out, max);
          let mut want = Vec::new();
          let mut want_end = false;
          while want.len() < max {
            let Some((byte, end)) = m.ready.pop_front() else { break };
            want.push(byte);
            if end {
              want_end = true;
              break;
            }
          }
          assert_eq!((n, ended, out), (want.len(), want_end, want));
        } else {
          // Mostly near the window, sometimes long ago; a big in-order payload now and then
          let ahead = if kind == 9 { 0xfff0 } else { ahead };
          let len = if kind == 8 && ahead == 1 { 20_000 } else { len };
          let seq = SeqNr(m.ack).add(ahead);
          let payload: Vec<u8> = (0..len).map(|_| { next_byte = next_byte.wrapping_add(1); next_byte }).collect();
          let held = m.ready.len() + m.ooo_bytes();
          let window = CAP.saturating_sub(held);
          let want = if ahead == 0 || ahead >= 0x8000 {
            Arrival::Duplicate
          } else if ahead as usize > MAX_OOO {
            Arrival::Dropped
          } else if m.buffered.contains_key(&ahead) {
            Arrival::Duplicate
          } else if ahead == 1 && (m.ooo_bytes() > 0 || len == 0 || held + len <= CAP + OVERFLOW_ALLOWANCE) {
            let mut n = 1;
            while m.buffered.contains_key(&(n + 1)) {
              n += 1;
            }
            Arrival::InOrder(n)
          } else if len > window {
            Arrival::Dropped
          } else {
            Arrival::Buffered
          };
          assert_eq!(b.insert(SeqNr(m.ack), seq, &payload, ends), want, "ahead {ahead} len {len}");
          match want {
            Arrival::Buffered => {
              m.buffered.insert(ahead, (payload, ends));
            }
            Arrival::InOrder(n) => {
              let mut packets = vec![(payload, ends)];
              for k in 2..=n {
                packets.push(m.buffered.remove(&k).unwrap());
              }
              for (p, e) in packets {
                let last = p.len().saturating_sub(1);
                m.ready.extend(p.iter().enumerate().map(|(i, &x)| (x, e && i == last)));
              }
              m.buffered = std::mem::take(&mut m.buffered).into_iter().map(|(k, v)| (k - n, v)).collect();
              m.ack = m.ack.wrapping_add(n);
            }
            _ => {}
          }
        }
        let held = m.ready.len() + m.ooo_bytes();
        assert_eq!(b.ready_bytes(), m.ready.len());
        assert_eq!(b.window(), CAP.saturating_sub(held));
        assert_eq!(b.has_out_of_order(), !m.buffered.is_empty());
        for max_bytes in [4, 32] {
          let mut bits = Vec::new();
          b.sack_bitmask(&mut bits, max_bytes);
          // bit i covers ack + 2 + i: offsets 2.. of the model
          let needed = m.buffered.keys().next_back().filter(|&&k| k >= 2).map(|&k| (k as usize - 2) / 8 + 1);
          let len = needed.map_or(0, |n| (n.div_ceil(4) * 4).min(max_bytes));
          assert_eq!(bits.len(), len);
          for i in 0..bits.len() * 8 {
            let set = bits[i / 8] & (1 << (i % 8)) != 0;
            assert_eq!(set, m.buffered.contains_key(&(i as u16 + 2)), "bit {i}");
          }
        }
      }
    }
  }
}
