//! Each rule of a connection at its edge: the exact boundary of a slack, a window, a counter. We play
//! the peer packet by packet (`Script`) and check the answer on both sides of the line, so that a
//! rule moved by one (a `<` for a `<=`, a `+` for a `*`) shows. Written for the mutants that
//! cargo-mutants found surviving in `conn/mod.rs` (docs/mutation.md)

use std::time::Duration;

use super::scripted::{accept, confirm, data, syn, Script};
use crate::packet::{Fragment, Header, Hello, Ours, PacketType};
use crate::pmtu;
use crate::seq::SeqNr;
use crate::{CloseReason, Config, Event};

pub(super) fn ms(n: u64) -> Duration {
  Duration::from_millis(n)
}
/// A STATE from the scripted initiator acknowledging `ack` and advertising `wnd` bytes
pub(super) fn ack(ack: SeqNr, wnd: u32) -> Header {
  Header {
    ty: PacketType::State,
    wnd_size: wnd,
    ..confirm(ack.add(1))
  }
}
/// The SYN-ACK says how long the SYN took (its `timestamp_diff`): the initiator's first delay
/// sample, before any data
#[test]
fn the_syn_ack_carries_the_syn_s_one_way_delay() {
  let mut s = Script::new(Config::default());
  s.send(syn(0x7000, 100), &[]);
  let out = s.recv();
  assert_eq!(out.len(), 1);
  let expected = s.now.wire_timestamp().wrapping_sub(syn(0, 0).timestamp);
  assert_eq!(out[0].0.timestamp_diff, expected);
}
/// Packets received, bytes received in order, duplicates and bytes sent are counted exactly, not
/// merely "some"
#[test]
fn the_connection_counts_packets_and_bytes_exactly() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  // Three packets before the application reads anything, then one of them again
  for (i, seq) in (101..104).enumerate() {
    s.send(data(seq, first.sub(1)), &[i as u8; 700]);
  }
  s.send(data(102, first.sub(1)), &[1; 700]);
  s.recv();
  s.ep.write(h, &[9; 2500]).unwrap();
  let sent: usize = s.recv().iter().map(|(_, _, p)| p.len()).sum();
  assert_eq!(sent, 2500);
  let st = s.ep.connection_stats(h).unwrap();
  // The confirming STATE and four DATA packets
  assert_eq!(st.packets_received, 5);
  assert_eq!(st.bytes_received, 2100);
  assert_eq!(st.duplicates, 1);
  assert_eq!(st.bytes_sent, 2500);
}
/// A late copy of the peer's SYN after the handshake was confirmed changes nothing: no second
/// SYN-ACK, and the peer's data still gets through
#[test]
fn a_repeated_syn_after_the_handshake_changes_nothing() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.send(syn(0x7000, 100), &[]);
  assert!(s.recv().is_empty(), "no SYN-ACK again");
  s.send(data(101, first.sub(1)), b"after");
  let out = s.recv();
  assert!(out.iter().any(|(hd, _, _)| hd.ack_nr == SeqNr(101)), "{out:?}");
  assert_eq!(s.ep.readable(h), 5);
}
/// After an abort the connection lingers only to drop what the peer still sends: its data is not
/// acknowledged (only a graceful close re-acknowledges, for a peer whose ACK of our FIN was lost)
#[test]
fn an_aborted_connection_acknowledges_nothing() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  let now = s.now;
  s.ep.abort(now, h);
  let out = s.recv();
  assert_eq!(out.len(), 1);
  assert_eq!(out[0].0.ty, PacketType::Reset);
  s.send(data(101, first.sub(1)), b"late");
  assert!(s.recv().is_empty());
}
/// An ACK number up to `ACK_NR_SLACK` (3) below the oldest unacknowledged packet is a reordered
/// old packet and its data counts; one further back is garbage and is dropped whole
#[test]
fn acknowledgements_older_than_the_slack_are_not_believed() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  // Nothing sent after the SYN-ACK: the oldest unacknowledged is `first`, the oldest believable
  // acknowledgement `first - 1 - 3`
  s.send(data(101, first.sub(4)), b"a");
  s.recv();
  assert_eq!(s.ep.readable(h), 1, "at the edge of the slack: believed");
  s.send(data(102, first.sub(5)), b"b");
  s.recv();
  assert_eq!(s.ep.readable(h), 1, "past it: dropped");
}
/// A RESET counts only if its `ack_nr` is within `RESET_SLACK` (16) of what we sent: a blind
/// attacker has to hit that window
#[test]
fn a_reset_counts_only_within_its_slack() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  let reset = |ack_nr| Header {
    ty: PacketType::Reset,
    conn_id: 0x7001,
    ack_nr,
    ..syn(0, 0)
  };
  s.send(reset(first.sub(18)), &[]);
  s.recv();
  assert!(s.ep.is_open(h), "one past the slack");
  s.send(reset(first.sub(17)), &[]);
  s.recv();
  assert!(s.events.contains(&(h, Event::Closed(CloseReason::Reset))));
}
/// Readable is reported once per batch: again for data that arrives after the application read
/// everything, and for a FIN alone (the application must learn of the end)
#[test]
fn readable_is_reported_again_after_a_read_and_for_a_bare_fin() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  let readable = |s: &Script| {
    s.events
      .iter()
      .filter(|(c, e)| *c == h && *e == Event::Readable)
      .count()
  };
  s.send(data(101, first.sub(1)), b"a");
  s.recv();
  assert_eq!(readable(&s), 1);
  let mut buf = Vec::new();
  assert_eq!(s.ep.read(h, &mut buf, usize::MAX).bytes, 1);
  s.send(data(102, first.sub(1)), b"b");
  s.recv();
  assert_eq!(readable(&s), 2);
  assert_eq!(s.ep.read(h, &mut buf, usize::MAX).bytes, 1);
  let fin = Header {
    ty: PacketType::Fin,
    ..data(103, first.sub(1))
  };
  s.send(fin, &[]);
  s.recv();
  assert_eq!(readable(&s), 3, "the end is readable");
  assert!(s.ep.read(h, &mut buf, usize::MAX).eof);
}
/// `n` packets of 1,000 bytes from the peer that the application does not read; the ACKs are
/// flushed. Returns the window the last ACK advertised
fn fill(s: &mut Script, first: SeqNr, n: u16) -> u32 {
  for i in 0..n {
    s.send(data(101 + i, first.sub(1)), &[7; 1000]);
  }
  s.advance(ms(200));
  let acks = s.recv();
  acks.last().expect("acknowledged").0.wnd_size
}
/// A window that fell below half the buffer is reopened by an ACK as soon as reading frees a
/// packet's worth: the peer may be stalled on it
#[test]
fn reading_reopens_a_nearly_closed_window_at_once() {
  let mut s = Script::new(Config::default()); // 64,000-byte receive buffer, 1,000-byte packets
  let (h, first) = accept(&mut s);
  assert_eq!(fill(&mut s, first, 60), 4000);
  let mut buf = Vec::new();
  s.ep.read(h, &mut buf, usize::MAX);
  let update = s.recv();
  assert_eq!(update.len(), 1, "{update:?}");
  assert_eq!(
    (update[0].0.ty, update[0].0.wnd_size),
    (PacketType::State, 64_000)
  );
}
/// A window still at half the buffer or more is not worth a packet of its own: the next ACK says it
#[test]
fn reading_sends_no_window_update_while_half_the_window_is_open() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  assert_eq!(fill(&mut s, first, 32), 32_000);
  let mut buf = Vec::new();
  s.ep.read(h, &mut buf, usize::MAX);
  assert!(s.recv().is_empty());
}
/// A closed window is probed one retransmission timeout after it closed, not at once
#[test]
fn a_closed_window_is_probed_after_a_timeout_not_before() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 0), &[]);
  s.ep.write(h, &[3; 3000]).unwrap();
  assert!(s.recv().is_empty());
  s.advance(ms(500));
  assert!(s.recv().is_empty(), "half the 1 s timeout");
  s.advance(ms(600));
  assert_eq!(s.recv().len(), 1);
}
/// A packet acknowledged selectively, sent once, is a round-trip sample like one acknowledged
/// cumulatively
#[test]
fn a_selective_ack_gives_a_round_trip_sample() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.ep.write(h, &[5; 4000]).unwrap();
  assert_eq!(s.recv().len(), 4);
  s.advance(ms(300));
  // Bit 0 is `ack_nr + 2`: the second packet
  s.send_with(ack(first.sub(1), 1 << 20), Some(&[1, 0, 0, 0]), Ours::NONE, &[]);
  assert_eq!(s.ep.connection_stats(h).unwrap().rtt_us, 300_000);
}
/// Path MTU probes a peer gets in the 10 s after it connected with `caps` in its hello, under
/// `ceiling`
fn probes_sent(caps: u8, ceiling: usize) -> usize {
  let mut s = Script::new(Config {
    pmtu_ceiling: ceiling,
    ..Config::default()
  });
  let hello = Ours {
    hello: Some(Hello { version: 1, caps }),
    ..Ours::NONE
  };
  s.send_with(syn(0x7000, 100), None, hello, &[]);
  let syn_ack = s.recv()[0].0;
  s.send(confirm(syn_ack.seq_nr), &[]);
  let mut probes = 0;
  for _ in 0..100 {
    s.advance(ms(100));
    probes += s.recv_raw().iter().filter(|d| pmtu::is_pmtu(d)).count();
  }
  probes
}
/// Probes only go to a peer that both answers them and reassembles packets sent in pieces (should
/// the path shrink under a larger packet), and only when there is room above the base size
#[test]
fn path_mtu_probes_need_a_peer_that_takes_them_and_room_to_grow() {
  assert!(
    probes_sent(Hello::OURS.caps, 1448) > 0,
    "the control: a peer of ours is probed"
  );
  assert_eq!(probes_sent(Hello::WRITE_BOUNDARIES, 1448), 0);
  assert_eq!(probes_sent(Hello::PMTU_PROBES, 1448), 0, "no reassembly");
  assert_eq!(
    probes_sent(Hello::OURS.caps, 1000),
    0,
    "the ceiling is the base size"
  );
}
/// An ACK whose echo of our clock shows it answers the packet sent before the timeout fired: the
/// timeout was spurious (the path was only slow), counted once
#[test]
fn a_spurious_timeout_is_counted_once() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.ep.write(h, &[9; 1000]).unwrap();
  let sent = s.recv();
  assert_eq!(sent.len(), 1);
  let stamp = sent[0].0.timestamp;
  s.advance(ms(1100));
  assert_eq!(s.recv().len(), 1, "resent on timeout");
  // The original arrived 1,050 ms after it left; the peer's clock reads 5,000,000 then
  let late = Header {
    timestamp: 5_000_000,
    timestamp_diff: 5_000_000u32.wrapping_sub(stamp),
    ..ack(first, 1 << 20)
  };
  s.send(late, &[]);
  let st = s.ep.connection_stats(h).unwrap();
  assert_eq!((st.timeouts, st.spurious_timeouts), (1, 1));
}
/// Writable comes when the send buffer has room again, not for an ACK that freed nothing
#[test]
fn writable_needs_room_in_the_send_buffer() {
  let mut s = Script::new(Config::default()); // a 64,000-byte send buffer
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 1 << 20), &[]);
  assert_eq!(s.ep.write(h, &[1; 64_000]).unwrap(), 64_000);
  let sent = s.recv();
  s.events.clear();
  s.send(ack(first.sub(1), 1 << 20), &[]);
  s.recv();
  assert!(!s.events.contains(&(h, Event::Writable)), "{:?}", s.events);
  s.send(ack(sent[0].0.seq_nr, 1 << 20), &[]);
  s.recv();
  assert!(s.events.contains(&(h, Event::Writable)));
}
/// A peer that is not ours (libutp) counts its whole buffer in packets: a window of 17,600 bytes is
/// 16 packets, and one of them stays free for its ACKs. The FIN is a packet too: it waits
#[test]
fn the_fin_waits_for_room_under_a_stranger_s_packet_limit() {
  let mut s = Script::new(Config {
    initial_window: 20_000,
    ..Config::default()
  });
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 17_600), &[]);
  s.ep.write(h, &[1; 15_000]).unwrap();
  s.ep.shutdown(h);
  let out = s.recv();
  assert_eq!(out.len(), 15);
  assert!(out.iter().all(|(hd, _, _)| hd.ty == PacketType::Data));
  s.send(ack(out[0].0.seq_nr, 17_600), &[]);
  let out = s.recv();
  assert_eq!(out.len(), 1);
  assert_eq!(out[0].0.ty, PacketType::Fin);
}
/// A keepalive from the peer while our data is outstanding (it has all it got and waits for the
/// rest) is answered at once, or a peer that hears only our backed-off retransmissions takes us for
/// dead
#[test]
fn a_keepalive_is_answered_while_data_is_outstanding() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 1 << 20), &[]);
  s.ep.write(h, &[1; 1000]).unwrap();
  assert_eq!(s.recv().len(), 1);
  s.advance(ms(100));
  s.send(ack(first.sub(2), 1 << 20), &[]);
  let out = s.recv();
  assert_eq!(out.len(), 1, "{out:?}");
  assert_eq!(out[0].0.ty, PacketType::State);
}
/// A SACK bitmask (bit `i` is `ack_nr + 2 + i`) acknowledging `seqs`
fn sack_of(ack_nr: SeqNr, seqs: &[SeqNr]) -> Vec<u8> {
  let mut bits = vec![0u8; 4];
  for s in seqs {
    let i = s.0.wrapping_sub(ack_nr.0).wrapping_sub(2) as usize;
    bits[i / 8] |= 1 << (i % 8);
  }
  bits
}
/// A resent packet is lost again only if a packet sent after it was acknowledged: not for a SACK of
/// packets that left in the same instant (they say nothing about its fate yet), but for one of
/// packets sent later
#[test]
fn a_resent_packet_is_lost_again_only_behind_later_packets() {
  let mut s = Script::new(Config {
    initial_window: 40_000,
    ..Config::default()
  });
  let (h, first) = accept(&mut s);
  let base = first.sub(1);
  s.send(ack(base, 1 << 20), &[]);
  let seq = |i: u16| first.add(i);
  let sack = |s: &mut Script, seqs: &[SeqNr]| {
    let bits = sack_of(base, seqs);
    s.send_with(ack(base, 1 << 20), Some(&bits), Ours::NONE, &[]);
  };
  let sent = |s: &mut Script| -> Vec<SeqNr> {
    s.recv()
      .iter()
      .filter(|(hd, _, _)| hd.ty == PacketType::Data)
      .map(|(hd, _, _)| hd.seq_nr)
      .collect()
  };
  s.ep.write(h, &[1; 10_000]).unwrap();
  assert_eq!(sent(&mut s).len(), 10);
  // Packets 1 to 3 arrive, 0 does not: 0 is resent, and three new packets leave with it
  s.advance(ms(50));
  sack(&mut s, &[seq(1), seq(2), seq(3)]);
  s.ep.write(h, &[2; 3000]).unwrap();
  assert_eq!(sent(&mut s), [seq(0), seq(10), seq(11), seq(12)]);
  // The three new ones arrive: they left with the resent 0, which may still be on its way
  s.advance(ms(50));
  sack(&mut s, &[seq(1), seq(2), seq(3), seq(10), seq(11), seq(12)]);
  s.ep.write(h, &[3; 3000]).unwrap();
  let out = sent(&mut s);
  assert!(!out.contains(&seq(0)), "{out:?}");
  // Packets sent after the resent 0 arrive: now it is lost again
  s.advance(ms(50));
  let mut acked = vec![seq(1), seq(2), seq(3), seq(10), seq(11), seq(12)];
  acked.extend(out.iter().copied().filter(|&q| q != seq(0)));
  sack(&mut s, &acked);
  let out = sent(&mut s);
  assert!(out.contains(&seq(0)), "{out:?}");
}
/// Pieces are our extension: a peer that did not say it is one of ours (no hello) has its DATA
/// taken whole even if it carries the fragment field
#[test]
fn only_a_peer_of_ours_sends_pieces() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  let piece = Ours {
    fragment: Some(Fragment { index: 0, count: 2 }),
    ..Ours::NONE
  };
  s.send_with(data(101, first.sub(1)), None, piece, b"whole");
  s.recv();
  assert_eq!(s.ep.readable(h), 5);
}
/// Duplicate ACKs resend a packet already resent only once a round trip has passed since: until
/// then they may be for packets that left before the repair
#[test]
fn duplicate_acks_resend_a_repair_only_after_a_round_trip() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  let base = first.sub(1);
  s.send(ack(base, 1 << 20), &[]);
  s.ep.write(h, &[1; 1000]).unwrap();
  assert_eq!(s.recv().len(), 1);
  s.advance(ms(300));
  s.send(ack(first, 1 << 20), &[]);
  s.ep.write(h, &[2; 4000]).unwrap();
  assert_eq!(s.recv().len(), 4);
  // Packets 2 to 4 arrive, 1 does not: it is resent now
  s.advance(ms(50));
  let bits = sack_of(first, &[first.add(2), first.add(3), first.add(4)]);
  s.send_with(ack(first, 1 << 20), Some(&bits), Ours::NONE, &[]);
  let repaired_at = s.now;
  let out = s.recv();
  assert_eq!(out.len(), 1);
  assert_eq!(out[0].0.seq_nr, first.add(1));
  let srtt = Duration::from_micros(s.ep.connection_stats(h).unwrap().rtt_us);
  let dups = |s: &mut Script| {
    for _ in 0..3 {
      s.send(ack(first, 1 << 20), &[]);
    }
    s.recv()
      .into_iter()
      .filter(|(hd, _, _)| hd.ty == PacketType::Data)
      .count()
  };
  s.now = repaired_at + srtt;
  assert_eq!(dups(&mut s), 0, "exactly a round trip after the repair");
  s.now = repaired_at + srtt + Duration::from_micros(1);
  assert_eq!(dups(&mut s), 1, "past it");
}
/// A sender that keeps one packet's worth of its window unused is limited by its application, not
/// by the window: the window does not grow on ACKs it could not have used
#[test]
fn a_sender_that_leaves_a_packet_of_its_window_unused_does_not_grow_it() {
  let mut s = Script::new(Config::default()); // a 10,000-byte initial window
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 1 << 20), &[]);
  let cwnd = s.ep.connection_stats(h).unwrap().cwnd;
  let mut last = first.sub(1);
  for _ in 0..30 {
    s.ep.write(h, &[1; 9000]).unwrap();
    let out = s.recv();
    assert_eq!(out.len(), 9);
    last = out.last().unwrap().0.seq_nr;
    s.advance(ms(50));
    let answer = Header {
      timestamp: s.now.wire_timestamp(),
      timestamp_diff: 1000,
      ..ack(last, 1 << 20)
    };
    s.send(answer, &[]);
  }
  assert_eq!(last, first.add(269));
  assert_eq!(s.ep.connection_stats(h).unwrap().cwnd, cwnd);
}
/// The send buffer is a ring: once acknowledged bytes free its front, a packet's payload may wrap
/// around its end and be copied from two pieces. Such packets, sent and resent, carry exactly their
/// bytes, in order, and count exactly those bytes as sent
#[test]
fn packets_that_wrap_around_the_send_buffer_carry_and_count_their_bytes() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 1 << 20), &[]);
  let mut written = Vec::new();
  let mut by_seq = std::collections::HashMap::new();
  let (mut first_sends, mut on_wire, mut resent) = (Vec::new(), 0, 0);
  let mut newest = first.sub(1);
  // A packet's worth per round (the timeouts keep the window at one packet), so the queue stays
  // small and its front goes round the ring many times; lengths that vary, so that packets do not
  // line up with the ring's end
  for round in 0..60u32 {
    let chunk: Vec<u8> = (0..300 + round * 137 % 700)
      .map(|i| (i * 7 + round * 13) as u8)
      .collect();
    s.ep.write(h, &chunk).unwrap();
    written.extend_from_slice(&chunk);
    // Everything sent before is acknowledged once this write is queued, so that the ring never
    // empties (an empty one starts again at its front). What goes out now is acknowledged at once
    // but for the newest packet, which goes again at its timeout
    s.send(ack(newest, 1 << 20), &[]);
    for wait in [ms(0), ms(5_000)] {
      s.advance(wait);
      for (hd, _, payload) in s.recv() {
        if hd.ty != PacketType::Data {
          continue;
        }
        on_wire += payload.len();
        match by_seq.get(&hd.seq_nr) {
          Some(original) => {
            assert_eq!(&payload, original, "{:?} resent with other bytes", hd.seq_nr);
            resent += 1;
          }
          None => {
            first_sends.extend_from_slice(&payload);
            by_seq.insert(hd.seq_nr, payload);
            newest = hd.seq_nr;
          }
        }
      }
      if wait.is_zero() {
        s.send(ack(newest.sub(1), 1 << 20), &[]);
      }
    }
  }
  let differ = first_sends.iter().zip(&written).position(|(a, b)| a != b);
  assert_eq!(differ, None, "the bytes first sent differ from those written");
  assert_eq!(first_sends.len(), written.len());
  assert!(resent >= 60, "{resent} packets resent");
  assert_eq!(s.ep.connection_stats(h).unwrap().bytes_sent, on_wire as u64);
}
