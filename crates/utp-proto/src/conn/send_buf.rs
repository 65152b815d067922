//! Send side: bytes the application wrote but we have not packetized, and packets in flight
//!
//! Written bytes are kept until acknowledged, so a write never loses data: `write` always takes
//! everything and only reports (through the returned buffered size) when the caller should wait.
//! Packets in flight are ranges of the same byte queue, not copies of it: a packet's payload is
//! copied once, straight into the datagram, whenever it is (re)sent.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;

use crate::packet::PacketType;
use crate::seq::SeqNr;
use crate::time::Instant;

/// A packet we sent and may have to send again
#[derive(Debug)]
pub(crate) struct Sent {
  pub(crate) ty: PacketType,
  /// Payload bytes
  pub(crate) len: usize,
  /// Stream offset of the payload's first byte
  offset: u64,
  pub(crate) sent_at: Instant,
  pub(crate) transmissions: u32,
  /// Declared lost: waiting to be sent again, not counted in flight
  pub(crate) lost: bool,
  /// Acknowledged by a selective ACK (the cumulative ACK has not reached it yet)
  pub(crate) sacked: bool,
  /// Its last byte is the last byte of an application write
  pub(crate) ends_write: bool,
}

impl Sent {
  /// Counted against the congestion window
  pub(crate) fn in_flight(&self) -> bool {
    !self.lost && !self.sacked
  }
}

/// Unsent bytes plus the window of unacknowledged packets
#[derive(Debug, Default)]
pub(crate) struct SendBuffer {
  /// Payloads of the unacknowledged packets back to back, then the unsent bytes
  bytes: VecDeque<u8>,
  /// Stream offset of `bytes[0]`
  base: u64,
  /// `packets[i]` has sequence number `first + i`
  packets: VecDeque<Sent>,
  first: SeqNr,
  /// Payload bytes of packets counted in flight
  in_flight_bytes: usize,
  /// Payload bytes of all unacknowledged packets
  unacked_bytes: usize,
  /// Packets marked lost and not yet resent
  lost: usize,
  /// Stream offsets where the unsent writes end, oldest first
  write_ends: VecDeque<u64>,
}

impl SendBuffer {
  pub(crate) fn new(first: SeqNr) -> Self {
    Self {
      first,
      ..Self::default()
    }
  }

  /// Queue one application write
  pub(crate) fn write(&mut self, data: &[u8]) {
    if data.is_empty() {
      return;
    }
    self.bytes.extend(data);
    self.write_ends.push_back(self.base + self.bytes.len() as u64);
  }

  /// Queue one application write made of `parts` back to back, then let `transform` rewrite it
  /// where it landed: a caller that seals records (lib/secure's stream) seals them in this queue
  /// instead of copying them in. When `transform` fails the write is taken back whole, so nothing
  /// it did not finish is ever sent
  pub(crate) fn write_transformed<E>(
    &mut self,
    parts: &[&[u8]],
    transform: impl FnOnce(&mut [u8]) -> Result<(), E>,
  ) -> Result<(), E> {
    let start = self.bytes.len();
    for part in parts {
      self.bytes.extend(*part);
    }
    let end = self.bytes.len();
    if end == start {
      return Ok(());
    }
    // A panic in `transform` must not leave its input queued either (it may be plaintext)
    let done = std::panic::catch_unwind(AssertUnwindSafe(|| self.transform_range(start, end, transform)));
    match done {
      Ok(Ok(())) => {
        self.write_ends.push_back(self.base + end as u64);
        Ok(())
      }
      Ok(Err(e)) => {
        self.bytes.truncate(start);
        Err(e)
      }
      Err(panic) => {
        self.bytes.truncate(start);
        std::panic::resume_unwind(panic)
      }
    }
  }

  /// Runs `transform` on `bytes[start..end]` as one slice
  fn transform_range<E>(
    &mut self,
    start: usize,
    end: usize,
    transform: impl FnOnce(&mut [u8]) -> Result<(), E>,
  ) -> Result<(), E> {
    let (a, b) = self.bytes.as_mut_slices();
    let a_len = a.len();
    if start >= a_len {
      transform(&mut b[start - a_len..end - a_len])
    } else if end <= a_len {
      transform(&mut a[start..end])
    } else {
      // the write wraps around the queue's ring (once per trip around it): transform a copy
      let mut joined: Vec<u8> = self.bytes.range(start..end).copied().collect();
      let done = transform(&mut joined);
      let (a, b) = self.bytes.as_mut_slices();
      a[start..].copy_from_slice(&joined[..a_len - start]);
      b[..end - a_len].copy_from_slice(&joined[a_len - start..]);
      done
    }
  }

  pub(crate) fn unsent_len(&self) -> usize {
    self.bytes.len() - self.unacked_bytes
  }

  /// Bytes written and not yet acknowledged: what backpressure is measured against
  pub(crate) fn buffered(&self) -> usize {
    self.bytes.len()
  }

  /// A packet's payload, in (at most) two pieces: the queue may wrap around
  pub(crate) fn payload(&self, p: &Sent) -> (&[u8], &[u8]) {
    let start = (p.offset - self.base) as usize;
    let (a, b) = self.bytes.as_slices();
    if start >= a.len() {
      let s = start - a.len();
      (&b[s..s + p.len], &[])
    } else if start + p.len <= a.len() {
      (&a[start..start + p.len], &[])
    } else {
      (&a[start..], &b[..p.len - (a.len() - start)])
    }
  }

  /// Payload bytes sent and not cumulatively acknowledged: what the peer may be holding
  pub(crate) fn unacked_bytes(&self) -> usize {
    self.unacked_bytes
  }

  pub(crate) fn in_flight_bytes(&self) -> usize {
    self.in_flight_bytes
  }

  pub(crate) fn packets_outstanding(&self) -> usize {
    self.packets.len()
  }

  pub(crate) fn is_empty(&self) -> bool {
    self.packets.is_empty()
  }

  /// Sequence number of the oldest unacknowledged packet
  pub(crate) fn first_unacked(&self) -> SeqNr {
    self.first
  }

  /// Sequence number the next new packet gets
  pub(crate) fn next_seq(&self) -> SeqNr {
    self.first.add(self.packets.len() as u16)
  }

  pub(crate) fn get(&self, seq: SeqNr) -> Option<&Sent> {
    let i = seq.distance_from(self.first) as usize;
    self.packets.get(i)
  }

  /// Payload of the next new DATA packet, as [`SendBuffer::push`] would cut it
  pub(crate) fn next_len(&self, max: usize, split_writes: bool) -> usize {
    let len = max.min(self.unsent_len());
    match self.write_ends.front() {
      Some(&end) if split_writes => len.min((end - self.base - self.unacked_bytes as u64) as usize),
      _ => len,
    }
  }

  /// Record a new packet: SYN and FIN carry no payload; DATA takes up to `max` unsent bytes, and
  /// with `split_writes` never bytes of two writes (the peer sees each short write as one packet)
  pub(crate) fn push(&mut self, ty: PacketType, max: usize, split_writes: bool, now: Instant) -> SeqNr {
    let offset = self.base + self.unacked_bytes as u64;
    let len = if ty == PacketType::Data {
      self.next_len(max, split_writes)
    } else {
      0
    };
    let mut ends_write = false;
    while let Some(&end) = self.write_ends.front() {
      if end > offset + len as u64 {
        break;
      }
      ends_write = end == offset + len as u64;
      self.write_ends.pop_front();
    }
    let seq = self.next_seq();
    self.in_flight_bytes += len;
    self.unacked_bytes += len;
    self.packets.push_back(Sent {
      ty,
      len,
      offset,
      sent_at: now,
      transmissions: 1,
      lost: false,
      sacked: false,
      ends_write: ends_write && len > 0,
    });
    seq
  }

  /// Pop everything up to and including `ack_nr`; calls `f` for each acknowledged packet
  pub(crate) fn ack_through(&mut self, ack_nr: SeqNr, mut f: impl FnMut(SeqNr, &Sent)) {
    let n = ack_nr.add(1).distance_from(self.first) as usize;
    for _ in 0..n.min(self.packets.len()) {
      let Some(p) = self.packets.pop_front() else { break };
      f(self.first, &p);
      if p.in_flight() {
        self.in_flight_bytes -= p.len;
      }
      if p.lost {
        self.lost -= 1;
      }
      self.unacked_bytes -= p.len;
      self.first = self.first.add(1);
      // Acknowledged in order, so its bytes are the queue's first
      self.bytes.drain(..p.len);
      self.base += p.len as u64;
    }
  }

  /// Mark one packet selectively acknowledged; true if it was news
  pub(crate) fn sack(&mut self, seq: SeqNr) -> Option<&Sent> {
    let i = seq.distance_from(self.first) as usize;
    let p = self.packets.get_mut(i)?;
    if p.sacked {
      return None;
    }
    if p.lost {
      p.lost = false;
      self.lost -= 1;
    } else {
      self.in_flight_bytes -= p.len;
    }
    p.sacked = true;
    Some(p)
  }

  /// Declare a packet lost so it is sent again; true if it was in flight
  pub(crate) fn mark_lost(&mut self, seq: SeqNr) -> bool {
    let i = seq.distance_from(self.first) as usize;
    match self.packets.get_mut(i) {
      Some(p) if p.in_flight() => {
        p.lost = true;
        self.lost += 1;
        self.in_flight_bytes -= p.len;
        true
      }
      _ => false,
    }
  }

  /// Declare every unacknowledged packet lost (retransmission timeout)
  pub(crate) fn mark_all_lost(&mut self) {
    self.lost = 0;
    for p in self.packets.iter_mut() {
      if !p.sacked {
        p.lost = true;
        self.lost += 1;
      }
    }
    self.in_flight_bytes = 0;
  }

  /// Undo a timeout's `mark_all_lost` for the packets not resent yet: they were never lost
  pub(crate) fn restore_lost(&mut self) {
    for p in self.packets.iter_mut().filter(|p| p.lost) {
      p.lost = false;
      self.in_flight_bytes += p.len;
    }
    self.lost = 0;
  }

  /// The oldest packet waiting for retransmission
  pub(crate) fn first_lost(&self) -> Option<SeqNr> {
    if self.lost == 0 {
      return None;
    }
    self
      .packets
      .iter()
      .position(|p| p.lost)
      .map(|i| self.first.add(i as u16))
  }

  /// Put a lost packet back in flight; returns it for encoding
  pub(crate) fn retransmit(&mut self, seq: SeqNr, now: Instant) -> Option<&Sent> {
    let i = seq.distance_from(self.first) as usize;
    let p = self.packets.get_mut(i)?;
    if p.lost {
      p.lost = false;
      self.lost -= 1;
      self.in_flight_bytes += p.len;
    }
    p.transmissions += 1;
    p.sent_at = now;
    Some(p)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn packetize_ack_sack_and_loss() {
    let now = Instant::ZERO;
    let mut b = SendBuffer::new(SeqNr(65535));
    b.write(&[7; 2500]);
    assert_eq!(b.push(PacketType::Data, 1000, true, now), SeqNr(65535));
    assert_eq!(b.push(PacketType::Data, 1000, true, now), SeqNr(0));
    assert_eq!(b.push(PacketType::Data, 1000, true, now), SeqNr(1));
    assert_eq!(b.get(SeqNr(1)).unwrap().len, 500);
    assert_eq!((b.in_flight_bytes(), b.buffered()), (2500, 2500));
    assert!(b.sack(SeqNr(1)).is_some());
    assert!(b.sack(SeqNr(1)).is_none());
    assert!(b.mark_lost(SeqNr(65535)));
    assert_eq!(b.in_flight_bytes(), 1000);
    assert_eq!(b.first_lost(), Some(SeqNr(65535)));
    b.retransmit(SeqNr(65535), now);
    assert_eq!(b.in_flight_bytes(), 2000);
    let mut acked = vec![];
    b.ack_through(SeqNr(0), |s, _| acked.push(s));
    assert_eq!(acked, vec![SeqNr(65535), SeqNr(0)]);
    assert_eq!((b.in_flight_bytes(), b.buffered()), (0, 500));
    b.ack_through(SeqNr(1), |_, _| {});
    assert!(b.is_empty());
    assert_eq!(b.next_seq(), SeqNr(2));
  }

  /// utp-punch's peers read each short write as one 'data' event: a packet never carries bytes of
  /// two writes unless coalescing is asked for, and the last packet of each write is marked
  #[test]
  fn packets_end_where_writes_end() {
    let now = Instant::ZERO;
    let lens = |b: &SendBuffer, from: u16, n: u16| -> Vec<(usize, bool)> {
      (0..n)
        .map(|i| b.get(SeqNr(from + i)).map(|p| (p.len, p.ends_write)).unwrap())
        .collect()
    };
    let mut b = SendBuffer::new(SeqNr(0));
    for w in [&b"abc"[..], b"", b"defg", &[1; 2500]] {
      b.write(w);
    }
    for _ in 0..5 {
      b.push(PacketType::Data, 1000, true, now);
    }
    assert_eq!(
      lens(&b, 0, 5),
      [(3, true), (4, true), (1000, false), (1000, false), (500, true)]
    );
    assert_eq!(b.unsent_len(), 0);

    let mut b = SendBuffer::new(SeqNr(0));
    for w in [&b"abc"[..], b"defg", &[1; 1993]] {
      b.write(w);
    }
    b.push(PacketType::Data, 1000, false, now);
    b.push(PacketType::Data, 1000, false, now);
    assert_eq!(
      lens(&b, 0, 2),
      [(1000, false), (1000, true)],
      "coalesced: a write ending exactly at a packet's end is still marked"
    );
  }

  /// A transformed write lands whole, also where it wraps around the queue's ring, and a failed
  /// transform leaves nothing queued
  #[test]
  fn transformed_writes_land_whole_or_not_at_all() {
    let flip = |w: &mut [u8]| -> Result<(), ()> {
      w.iter_mut().for_each(|x| *x = !*x);
      Ok(())
    };
    let mut b = SendBuffer::new(SeqNr(0));
    // 10 bytes left 40 short of the ring's end, as acknowledgements leave it
    b.bytes = VecDeque::with_capacity(100);
    let cap = b.bytes.capacity();
    b.bytes.extend(vec![1; cap - 40]);
    b.bytes.drain(..cap - 50);
    b.base = (cap - 50) as u64;
    b.write_transformed(&[&[5; 50], &[6; 10]], flip).unwrap();
    assert_eq!(b.bytes.capacity(), cap, "the queue did not grow");
    assert_eq!(
      b.bytes.as_slices().0.len(),
      50,
      "the write wrapped around the ring"
    );
    let written: Vec<u8> = b.bytes.iter().copied().collect();
    assert_eq!(written, [vec![1; 10], vec![!5; 50], vec![!6; 10]].concat());
    assert_eq!(b.write_ends.back(), Some(&(b.base + 70)));
    // The next write lands wholly in the part that wrapped
    b.write_transformed(&[&[7; 5]], flip).unwrap();
    assert_eq!(b.bytes.as_slices().0.len(), 50);
    assert_eq!(b.bytes.as_slices().1[20..], [!7; 5]);
    let written: Vec<u8> = b.bytes.iter().copied().collect();
    assert_eq!(
      written,
      [vec![1; 10], vec![!5; 50], vec![!6; 10], vec![!7; 5]].concat()
    );
    assert_eq!(b.write_ends.back(), Some(&(b.base + 75)));
    assert_eq!(b.write_transformed(&[&[9; 100]], |_| Err("no")), Err("no"));
    assert_eq!(
      (b.buffered(), b.write_ends.len()),
      (75, 2),
      "nothing of a failed write stays"
    );
  }

  /// One step of the model-based test below
  #[derive(Debug, Clone)]
  enum Op {
    Write(usize),
    Push { max: usize, split: bool },
    Sack(u16),
    MarkLost(u16),
    MarkAllLost,
    RestoreLost,
    RetransmitFirstLost,
    AckThrough(u16),
  }

  fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
      (0usize..3000).prop_map(Op::Write),
      (1usize..1500, any::<bool>()).prop_map(|(max, split)| Op::Push { max, split }),
      (0u16..40).prop_map(Op::Sack),
      (0u16..40).prop_map(Op::MarkLost),
      Just(Op::MarkAllLost),
      Just(Op::RestoreLost),
      Just(Op::RetransmitFirstLost),
      (0u16..40).prop_map(Op::AckThrough),
    ]
  }

  /// Every counter the connection reads (bytes in flight, unacknowledged, unsent, lost packets)
  /// agrees with a recount over the packets, and every packet's payload is the bytes written at
  /// its offset, also once the byte queue wraps around its ring
  fn check(b: &SendBuffer, stream: &[u8], acked: u64, write_ends: &[u64]) {
    let in_flight: usize = b.packets.iter().filter(|p| p.in_flight()).map(|p| p.len).sum();
    let unacked: usize = b.packets.iter().map(|p| p.len).sum();
    assert_eq!(b.in_flight_bytes(), in_flight, "in flight");
    assert_eq!(b.unacked_bytes(), unacked, "unacknowledged");
    assert_eq!(b.lost, b.packets.iter().filter(|p| p.lost).count(), "lost");
    let first_lost = b
      .packets
      .iter()
      .position(|p| p.lost)
      .map(|i| b.first_unacked().add(i as u16));
    assert_eq!(b.first_lost(), first_lost);
    assert_eq!(b.buffered() as u64, stream.len() as u64 - acked);
    assert_eq!(b.unsent_len(), b.buffered() - unacked);
    assert_eq!(
      b.next_seq(),
      b.first_unacked().add(b.packets_outstanding() as u16)
    );
    assert_eq!(b.is_empty(), b.packets_outstanding() == 0);
    for (i, p) in b.packets.iter().enumerate() {
      assert_eq!(
        b.get(b.first_unacked().add(i as u16)).map(|q| q.offset),
        Some(p.offset)
      );
      let (x, y) = b.payload(p);
      assert_eq!(
        [x, y].concat(),
        &stream[p.offset as usize..p.offset as usize + p.len]
      );
      let end = p.offset + p.len as u64;
      assert_eq!(
        p.ends_write,
        p.len > 0 && write_ends.contains(&end),
        "ends_write at {end}"
      );
    }
  }

  proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    #[test]
    fn counters_and_payloads_match_a_recount(ops in proptest::collection::vec(op(), 1..120)) {
      let mut b = SendBuffer::new(SeqNr(65520));
      let mut stream: Vec<u8> = Vec::new();
      let mut write_ends: Vec<u64> = Vec::new();
      let mut acked = 0u64;
      let mut now = Instant::ZERO;
      for op in ops {
        now = now + std::time::Duration::from_millis(1);
        match op {
          Op::Write(n) => {
            let data: Vec<u8> = (0..n).map(|i| (stream.len() + i) as u8 ^ 0x5a).collect();
            b.write(&data);
            stream.extend(&data);
            if n > 0 {
              write_ends.push(stream.len() as u64);
            }
          }
          Op::Push { max, split } => {
            let expected = b.next_len(max, split);
            let seq = b.push(PacketType::Data, max, split, now);
            let p = b.get(seq).unwrap();
            assert_eq!(p.len, expected);
            assert!(p.len <= max);
            if split {
              // no write ends strictly inside the packet
              assert!(!write_ends.iter().any(|&e| e > p.offset && e < p.offset + p.len as u64));
            }
          }
          Op::Sack(i) => {
            let seq = b.first_unacked().add(i);
            let was = b.get(seq).map(|p| p.sacked);
            let news = b.sack(seq).is_some();
            assert_eq!(news, was == Some(false));
          }
          Op::MarkLost(i) => {
            let seq = b.first_unacked().add(i);
            let was = b.get(seq).map(|p| p.in_flight());
            assert_eq!(b.mark_lost(seq), was == Some(true));
          }
          Op::MarkAllLost => b.mark_all_lost(),
          Op::RestoreLost => b.restore_lost(),
          Op::RetransmitFirstLost => {
            if let Some(seq) = b.first_lost() {
              let before = b.get(seq).unwrap().transmissions;
              let p = b.retransmit(seq, now).unwrap();
              assert_eq!((p.transmissions, p.sent_at, p.lost), (before + 1, now, false));
            }
          }
          Op::AckThrough(i) => {
            let n = (i as usize + 1).min(b.packets_outstanding());
            let mut seen = Vec::new();
            b.ack_through(b.first_unacked().add(i), |s, p| seen.push((s, p.len)));
            assert_eq!(seen.len(), n);
            acked += seen.iter().map(|&(_, l)| l as u64).sum::<u64>();
          }
        }
        check(&b, &stream, acked, &write_ends);
      }
    }
  }
}
