//! Receive side: in-order bytes waiting for the application plus out-of-order packets
//!
//! Every byte held here counts against the receive window we advertise, so an application that
//! stops reading closes the window and the peer stops sending: read backpressure end to end.

use std::collections::VecDeque;

use crate::seq::SeqNr;

/// Reassembly buffer for one connection
#[derive(Debug)]
pub(crate) struct RecvBuffer {
  /// In-order payload chunks not yet read by the application
  ready: VecDeque<Vec<u8>>,
  /// Offset already consumed in `ready.front()`
  front_consumed: usize,
  ready_bytes: usize,
  /// `ooo[i]` holds the packet with sequence `ack_nr + 1 + i` (slot 0 is always empty)
  ooo: VecDeque<Option<Vec<u8>>>,
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

  fn chunk(&mut self, payload: &[u8]) -> Vec<u8> {
    let mut v = self.spare.pop().unwrap_or_default();
    v.clear();
    v.extend_from_slice(payload);
    v
  }

  /// Offer the packet `seq` given the last in-order sequence number `ack_nr`
  ///
  /// Zero-length payloads (FIN) are tracked for ordering like any other packet.
  pub(crate) fn insert(&mut self, ack_nr: SeqNr, seq: SeqNr, payload: &[u8]) -> Arrival {
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
    // The next in-order packet is taken past the window when out-of-order data fills the buffer:
    // refusing it would deadlock (the hole could never be filled). When unread data fills it,
    // the window is honoured, so a reader that stops really stops the sender.
    let fills_hole = slot == 0 && self.ooo_bytes > 0;
    if !fills_hole && payload.len() > self.window() {
      return Arrival::Dropped;
    }
    if slot == 0 {
      if !payload.is_empty() {
        let c = self.chunk(payload);
        self.push_ready(c);
      }
      self.ooo.pop_front();
      let mut n = 1u16;
      while let Some(Some(_)) = self.ooo.front() {
        let c = self.ooo.pop_front().flatten().unwrap_or_default();
        self.ooo_bytes -= c.len();
        self.push_ready(c);
        n += 1;
      }
      return Arrival::InOrder(n);
    }
    if self.ooo.len() <= slot {
      self.ooo.resize(slot + 1, None);
    }
    let c = self.chunk(payload);
    self.ooo_bytes += c.len();
    self.ooo[slot] = Some(c);
    Arrival::Buffered
  }

  fn push_ready(&mut self, c: Vec<u8>) {
    if c.is_empty() {
      self.spare.push(c);
      return;
    }
    self.ready_bytes += c.len();
    self.ready.push_back(c);
  }

  /// Selective-ACK bitmask for the packets buffered past `ack_nr + 1`, at most `max_bytes` long
  pub(crate) fn sack_bitmask(&self, out: &mut Vec<u8>, max_bytes: usize) {
    out.clear();
    // bit i covers ack_nr + 2 + i, which is ooo slot i + 1
    let last = match self.ooo.iter().rposition(Option::is_some) {
      Some(l) if l >= 1 => l - 1,
      _ => return,
    };
    let bytes = ((last / 8 + 1).div_ceil(4) * 4).min(max_bytes);
    out.resize(bytes, 0);
    for i in 0..(bytes * 8).min(self.ooo.len().saturating_sub(1)) {
      if self.ooo[i + 1].is_some() {
        out[i / 8] |= 1 << (i % 8);
      }
    }
  }

  /// Move up to `max` ready bytes to the end of `out`; returns how many
  pub(crate) fn read(&mut self, out: &mut Vec<u8>, max: usize) -> usize {
    let mut done = 0;
    while done < max {
      let Some(front) = self.ready.front() else { break };
      let avail = &front[self.front_consumed..];
      let n = avail.len().min(max - done);
      out.extend_from_slice(&avail[..n]);
      done += n;
      self.front_consumed += n;
      if self.front_consumed == front.len() {
        self.front_consumed = 0;
        if let Some(c) = self.ready.pop_front() {
          if self.spare.len() < 64 {
            self.spare.push(c);
          }
        }
      }
    }
    self.ready_bytes -= done;
    done
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn reassembles_and_reports_window() {
    let mut b = RecvBuffer::new(100, 16);
    let a = SeqNr(65534);
    assert_eq!(b.insert(a, SeqNr(0), b"cc"), Arrival::Buffered);
    assert_eq!(b.insert(a, SeqNr(0), b"cc"), Arrival::Duplicate);
    let mut m = Vec::new();
    b.sack_bitmask(&mut m, 32);
    assert_eq!(m, vec![0b1, 0, 0, 0], "seq 0 is ack_nr + 2");
    assert_eq!(b.window(), 98);
    assert_eq!(b.insert(a, SeqNr(65535), b"bb"), Arrival::InOrder(2));
    assert!(!b.has_out_of_order());
    assert_eq!(b.insert(SeqNr(0), SeqNr(0), b"zz"), Arrival::Duplicate);
    let mut out = Vec::new();
    assert_eq!(b.read(&mut out, 3), 3);
    assert_eq!(b.read(&mut out, 10), 1);
    assert_eq!(out, b"bbcc");
    assert_eq!(b.window(), 100);
  }

  #[test]
  fn drops_what_does_not_fit() {
    let mut b = RecvBuffer::new(10, 4);
    assert_eq!(b.insert(SeqNr(0), SeqNr(1), &[0; 8]), Arrival::InOrder(1));
    assert_eq!(
      b.insert(SeqNr(1), SeqNr(3), &[0; 8]),
      Arrival::Dropped,
      "window is 2"
    );
    assert_eq!(
      b.insert(SeqNr(1), SeqNr(7), &[0; 1]),
      Arrival::Dropped,
      "beyond reorder limit"
    );
  }
  #[test]
  fn the_next_in_order_packet_is_taken_even_when_out_of_order_data_filled_the_buffer() {
    let mut b = RecvBuffer::new(10, 8);
    assert_eq!(b.insert(SeqNr(0), SeqNr(2), &[2; 10]), Arrival::Buffered);
    assert_eq!(b.window(), 0);
    assert_eq!(b.insert(SeqNr(0), SeqNr(1), &[1; 10]), Arrival::InOrder(2));
    let mut out = Vec::new();
    assert_eq!(b.read(&mut out, 100), 20);
  }
}
