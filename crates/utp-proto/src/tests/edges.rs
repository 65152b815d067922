//! Each rule of a connection at its edge: the exact boundary of a slack, a window, a counter. We play
//! the peer packet by packet (`Script`) and check the answer on both sides of the line, so that a
//! rule moved by one (a `<` for a `<=`, a `+` for a `*`) shows. Written for the mutants that
//! cargo-mutants found surviving in `conn/mod.rs` (docs/mutation.md)

use std::time::Duration;

use super::scripted::{accept, confirm, data, syn, Script};
use crate::conn::DEAD_AFTER_RETRANSMISSIONS;
use crate::packet::{Fragment, Header, Hello, Ours, PacketType};
use crate::pmtu;
use crate::seq::SeqNr;
use crate::{CloseReason, Config, Event, Instant};

fn ms(n: u64) -> Duration {
  Duration::from_millis(n)
}

/// A STATE from the scripted initiator acknowledging `ack` and advertising `wnd` bytes
fn ack(ack: SeqNr, wnd: u32) -> Header {
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

/// What the endpoint does over `span` of its time in 50 ms steps: when each DATA went out (in ms
/// since the call) and when the connection closed, and why
fn timeline(
  s: &mut Script,
  span: Duration,
  mut each_step: impl FnMut(&mut Script),
) -> (Vec<u64>, Option<(u64, CloseReason)>) {
  let start = s.now;
  let mut sends = Vec::new();
  while s.now.saturating_since(start) < span {
    s.advance(ms(50));
    each_step(s);
    let at = s.now.saturating_since(start).as_millis() as u64;
    for (hd, _, _) in s.recv() {
      if hd.ty == PacketType::Data {
        sends.push(at);
      }
    }
    if let Some(r) = s.events.iter().find_map(|(_, e)| match e {
      Event::Closed(r) => Some(*r),
      _ => None,
    }) {
      return (sends, Some((at, r)));
    }
  }
  (sends, None)
}

/// A silent peer: the packet goes again after 1, 2, 4, 8 s (the timeout doubles), and the peer is
/// declared dead at the fourth expiry (`DEAD_AFTER_RETRANSMISSIONS`), 15 s in, though the idle timeout
/// (5 s, twice that for a sending connection) ran out before: enough retransmissions first. A
/// window of exactly one packet is an open window and changes nothing
#[test]
fn a_silent_peer_is_dead_after_four_doubling_retransmissions() {
  for window in [1 << 20, 1000] {
    let mut s = Script::new(Config::default());
    let (h, first) = accept(&mut s);
    s.send(ack(first.sub(1), window), &[]);
    s.ep.write(h, &[1; 1000]).unwrap();
    assert_eq!(s.recv().len(), 1);
    let (sends, closed) = timeline(&mut s, Duration::from_secs(60), |_| {});
    assert_eq!(sends, [1000, 3000, 7000, 15000], "window {window}");
    assert_eq!(closed, Some((15050, CloseReason::TimedOut)), "window {window}");
  }
}

/// A series of timeouts is one congestion event: the first expiry cuts the window and counts, the
/// ones after it find the window at its floor and only count as timeouts
#[test]
fn a_series_of_timeouts_is_one_congestion_event() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 1 << 20), &[]);
  s.ep.write(h, &[1; 1000]).unwrap();
  assert_eq!(s.recv().len(), 1);
  // Expiries at 1 s and 3 s (the timeout doubles)
  let (sends, _) = timeline(&mut s, Duration::from_millis(3500), |_| {});
  assert_eq!(sends, [1000, 3000]);
  let st = s.ep.connection_stats(h).unwrap();
  assert_eq!((st.timeouts, st.congestion_events), (2, 1));
}

/// A peer that keeps talking (a duplicate ACK every half second) and acknowledges nothing cannot
/// hold a sending connection open: each duplicate gets the packet resent at once, the timer never
/// expires, and it is the resent packet that counts. Dead at twice the idle timeout, as a silent
/// one. Its window is exactly one packet, which is an open window: no reason to wait longer
#[test]
fn a_peer_that_only_repeats_its_ack_is_dead_after_twice_the_idle_timeout() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 1000), &[]);
  s.ep.write(h, &[1; 1000]).unwrap();
  assert_eq!(s.recv().len(), 1);
  let mut n = 0;
  let (sends, closed) = timeline(&mut s, Duration::from_secs(120), |s| {
    n += 1;
    if n % 10 == 0 {
      s.send(ack(first.sub(1), 1000), &[]);
    }
  });
  assert!(sends.len() > DEAD_AFTER_RETRANSMISSIONS as usize, "{sends:?}");
  assert_eq!(closed, Some((10_000, CloseReason::TimedOut)));
}

/// A closed window is probed while the peer is silent, at most 8 s apart (the timeout is capped at
/// a fifth of the idle timeout, 4 s here, and the persist timer waits as long again after it)
/// however far the timeout would have backed off
#[test]
fn a_closed_window_is_probed_at_a_capped_interval() {
  let cfg = Config {
    idle_timeout: Duration::from_secs(20),
    ..Config::default()
  };
  let mut s = Script::new(cfg);
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 0), &[]);
  s.ep.write(h, &[1; 3000]).unwrap();
  assert!(s.recv().is_empty());
  let (sends, _) = timeline(&mut s, Duration::from_secs(40), |_| {});
  assert!(sends.len() >= 5, "{sends:?}");
  assert!(sends.windows(2).all(|w| w[1] - w[0] <= 8000), "{sends:?}");
}

/// Lingering ends only once what is owed has gone out: a FIN repeated by the peer at the very end
/// of the linger time is still acknowledged, and the RESET of an abort still goes, whatever the
/// order in which the driver polls and runs timers
#[test]
fn a_lingering_connection_is_forgotten_only_after_its_last_packet() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  let fin = Header {
    ty: PacketType::Fin,
    ..data(101, first.sub(1))
  };
  s.send(fin, &[]);
  s.ep.shutdown(h);
  let out = s.recv();
  let our_fin = out
    .iter()
    .find(|(hd, _, _)| hd.ty == PacketType::Fin)
    .expect("our FIN")
    .0;
  s.send(ack(our_fin.seq_nr, 1 << 20), &[]);
  s.recv();
  assert!(s.events.contains(&(h, Event::Closed(CloseReason::Finished))));
  // The peer did not get our ACK of its FIN and sends it again, just as lingering runs out
  let until = s.ep.poll_timeout().expect("lingering");
  s.now = until;
  s.send(fin, &[]);
  s.ep.handle_timeout(until);
  let out = s.recv();
  assert!(!out.is_empty());
  assert!(
    out
      .iter()
      .all(|(hd, _, _)| (hd.ty, hd.ack_nr) == (PacketType::State, SeqNr(101))),
    "{out:?}"
  );

  let mut s = Script::new(Config::default());
  let (h, _) = accept(&mut s);
  let now = s.now;
  s.ep.abort(now, h);
  while s.ep.poll_event().is_some() {}
  s.ep.handle_timeout(now);
  let out = s.recv();
  assert_eq!(out.len(), 1);
  assert_eq!(out[0].0.ty, PacketType::Reset);
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

/// A peer that is not ours (no hello) but answers our keepalive is known to answer: once it falls
/// silent it is dead within the silence limits, not after the 150 s a stranger gets
#[test]
fn a_stranger_that_answered_a_keepalive_is_dead_soon_after_it_falls_silent() {
  let mut s = Script::new(Config::default());
  let (_, first) = accept(&mut s);
  let mut answered = false;
  let (_, closed) = timeline(&mut s, Duration::from_secs(200), |s| {
    if !answered && s.now.saturating_since(Instant::ZERO) > Duration::from_millis(11_500) {
      answered = true;
      s.send(ack(first.sub(1), 1 << 20), &[]);
    }
  });
  let (at, reason) = closed.expect("closed");
  assert_eq!(reason, CloseReason::TimedOut);
  assert!(at < 30_000, "closed after {at} ms");
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

/// The probe of a closed window goes out on time even while the peer keeps saying its window is
/// closed: each of its packets must not push the probe back
#[test]
fn a_closed_window_is_probed_on_time_while_the_peer_repeats_it() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 0), &[]);
  s.ep.write(h, &[3; 3000]).unwrap();
  assert!(s.recv().is_empty());
  let (sends, _) = timeline(&mut s, Duration::from_millis(1500), |s| {
    s.send(ack(first.sub(1), 0), &[]);
  });
  assert_eq!(sends, [1000]);
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

/// An idle stranger (a peer that is not ours never answers keepalives) that falls silent is given
/// 150 s, as long as a live libutp or libtorrent may be quiet; not TCP's FIN_WAIT_2 minute, which
/// is for a peer that has our FIN and owes its own
#[test]
fn an_idle_silent_stranger_is_given_150_s() {
  let mut s = Script::new(Config::default());
  let (_, first) = accept(&mut s);
  s.send(ack(first.sub(1), 1 << 20), &[]);
  let (_, closed) = timeline(&mut s, Duration::from_secs(200), |_| {});
  let (at, reason) = closed.expect("closed");
  assert_eq!(reason, CloseReason::TimedOut);
  assert!((150_000..=150_100).contains(&at), "closed after {at} ms");
}

/// With keepalives off (`keepAlive: 0`) an idle connection sends nothing, so the peer's silence
/// proves nothing: the application gets its silence notice (as net's `setTimeout`) and decides;
/// the connection is not declared dead as an unanswered stranger would be
#[test]
fn an_idle_connection_without_keepalives_is_never_declared_dead() {
  let mut s = Script::new(Config {
    keepalive: Duration::ZERO,
    ..Config::default()
  });
  let (_, first) = accept(&mut s);
  s.send(ack(first.sub(1), 1 << 20), &[]);
  let (sends, closed) = timeline(&mut s, Duration::from_secs(400), |_| {});
  assert_eq!(closed, None);
  assert!(sends.is_empty(), "sent {sends:?}");
  let notices = s
    .events
    .iter()
    .filter(|(_, e)| matches!(e, Event::Timeout))
    .count();
  assert_eq!(notices, 1);
}
