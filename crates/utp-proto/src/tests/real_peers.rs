//! How the endpoint treats peers that are not ours (libtorrent-rasterbar, libutp), scripted packet
//! by packet: each test is a defect seen against one of them. The scripted peer of `scripted.rs`
//! sends no hello, so it is such a peer unless a test gives it one.

use std::time::Duration;

use super::scripted::{accept, data, syn, Script};
use crate::packet::{self, Header, Hello, Ours, PacketType};
use crate::pmtu;
use crate::seq::SeqNr;
use crate::{CloseReason, Config, Congestion, ConnectionHandle, Event, Loopback};

const HELLO: Ours = Ours {
  hello: Some(Hello::OURS),
  ..Ours::NONE
};

/// A STATE from the scripted peer
fn state(ack: SeqNr, wnd_size: u32) -> Header {
  Header {
    ty: PacketType::State,
    conn_id: 0x7001,
    seq_nr: SeqNr(101),
    ack_nr: ack,
    wnd_size,
    ..syn(0, 0)
  }
}

/// Accept a connection from a scripted peer that says it is ours
fn accept_ours(s: &mut Script) -> (ConnectionHandle, SeqNr) {
  s.send_with(syn(0x7000, 100), None, HELLO, &[]);
  let out = s.recv_raw();
  assert_eq!(out.len(), 1);
  let answer = packet::decode(&out[0]).unwrap();
  assert_eq!(
    answer.ours.hello,
    Some(Hello::OURS),
    "our hello is answered with ours"
  );
  s.send(super::scripted::confirm(answer.header.seq_nr), &[]);
  assert!(s.recv().is_empty());
  let handle = s.events.iter().find(|(_, e)| *e == Event::Incoming).unwrap().0;
  (handle, answer.header.seq_nr)
}

fn loopback_cfg() -> Config {
  Config {
    loopback: Some(Loopback {
      max_payload: 16000,
      buffer: 1 << 20,
    }),
    initial_window: 1 << 20,
    ..Config::default()
  }
}

/// libtorrent sizes its bitmask as (span + 7) / 8 bytes. Such a STATE used to be thrown away
/// whole (cumulative ACK, window, timestamps): after the first loss the connection stalled
#[test]
fn an_odd_length_sack_is_read_with_the_rest_of_its_packet() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.ep.write(h, &[1; 6000]).unwrap();
  assert_eq!(s.recv().len(), 6);
  // `first` arrived, `first + 1` did not, `first + 2 ..= first + 5` did: one byte of bitmask
  s.send_with(state(first, 1 << 20), Some(&[0b1111]), Ours::NONE, &[]);
  let out = s.recv();
  assert_eq!(
    out.iter().map(|p| p.0.seq_nr).collect::<Vec<_>>(),
    [first.add(1)],
    "only the hole is resent"
  );
  let st = s.ep.connection_stats(h).unwrap();
  assert_eq!((st.in_flight, st.retransmits), (1000, 1));
}

/// libtorrent reads each datagram into a 1,500-byte buffer and truncates the rest: packets above
/// the ordinary size go to a loopback peer only after its hello said it reads them
#[test]
fn large_datagrams_go_only_to_a_peer_that_said_it_reads_them() {
  let mut s = Script::with_peer(loopback_cfg(), "127.0.0.1:6881");
  let (h, _) = accept(&mut s);
  s.ep.write(h, &[5; 100_000]).unwrap();
  let sent = s.recv_raw();
  assert!(!sent.is_empty());
  let largest = sent.iter().map(Vec::len).max().unwrap();
  assert_eq!(largest, 20 + 1000, "a stranger gets the ordinary size");

  let mut s = Script::with_peer(loopback_cfg(), "127.0.0.1:6881");
  let (h, _) = accept_ours(&mut s);
  s.ep.write(h, &[5; 100_000]).unwrap();
  let largest = s.recv_raw().iter().map(Vec::len).max().unwrap();
  assert!(
    largest > 15_000,
    "one of ours gets loopback-sized packets: {largest}"
  );
}

/// A SYN without our hello is answered without it: libutp and libtorrent see plain BEP 29
#[test]
fn a_stranger_never_sees_our_extensions() {
  let mut s = Script::new(Config::default());
  s.send(syn(0x7000, 100), &[]);
  let out = s.recv_raw();
  assert_eq!(out[0][1], 0, "SYN-ACK without extensions");
  s.send(
    super::scripted::confirm(packet::decode(&out[0]).unwrap().header.seq_nr),
    &[],
  );
  assert!(s.recv_raw().is_empty());
  let h = s.events[0].0;
  s.ep.write(h, b"abc").unwrap();
  let out = s.recv_raw();
  assert_eq!((out.len(), out[0][1], out[0].len()), (1, 0, 23));
}

/// Path MTU probes are datagrams only our endpoint answers: a libutp or libtorrent peer got 18 it
/// could not parse per connection
#[test]
fn path_mtu_probes_go_only_to_peers_that_answer_them() {
  let cfg = Config {
    pmtu_ceiling: 1452,
    ..Config::default()
  };
  let probes = |s: &mut Script| {
    let mut n = 0;
    for _ in 0..40 {
      s.advance(Duration::from_millis(250));
      n += s.recv_raw().iter().filter(|d| pmtu::is_pmtu(d)).count();
    }
    n
  };
  let mut s = Script::new(cfg);
  accept(&mut s);
  assert_eq!(probes(&mut s), 0, "no probe to a stranger");
  let mut s = Script::new(cfg);
  accept_ours(&mut s);
  assert!(probes(&mut s) > 0, "probes to one of ours");
}

/// libutp forgets a connection once its FIN is acknowledged and answers what follows (our FIN)
/// with RESET: with the peer's stream complete and all our data acknowledged, that is a close
#[test]
fn a_reset_after_the_fin_exchange_is_a_normal_close() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.ep.write(h, b"hello").unwrap();
  s.recv();
  s.send(state(first, 1 << 20), &[]);
  let fin = Header {
    ty: PacketType::Fin,
    ..data(101, first)
  };
  s.send(fin, &[]);
  s.ep.shutdown(h);
  let out = s.recv();
  assert!(out.iter().any(|p| p.0.ty == PacketType::Fin), "our FIN goes out");
  let reset = Header {
    ty: PacketType::Reset,
    ..data(102, first)
  };
  s.send(reset, &[]);
  s.recv();
  assert!(s.events.contains(&(h, Event::Closed(CloseReason::Finished))));

  // With our data still unacknowledged the same RESET is a reset
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.send(
    Header {
      ty: PacketType::Fin,
      ..data(101, first.sub(1))
    },
    &[],
  );
  s.ep.write(h, b"hello").unwrap();
  s.recv();
  s.send(
    Header {
      ty: PacketType::Reset,
      ..data(102, first.sub(1))
    },
    &[],
  );
  s.recv();
  assert!(s.events.contains(&(h, Event::Closed(CloseReason::Reset))));
}

/// libtorrent drops every packet more than max(16, receive buffer / 1100) past its ACK, STATEs
/// included: toward a stranger, packets outstanding stay below that however small they are
#[test]
fn packets_outstanding_stay_within_a_strangers_reorder_buffer() {
  let cfg = Config {
    initial_window: 1 << 20,
    ..Config::default()
  };
  let mut s = Script::new(cfg);
  let (h, first) = accept(&mut s);
  // Its buffer: 22,000 bytes, so it keeps 20 packets past its ACK
  s.send(state(first.sub(1), 22_000), &[]);
  for _ in 0..200 {
    s.ep.write(h, &[7; 100]).unwrap();
  }
  let sent = s.recv();
  assert_eq!(sent.len(), 19, "one below its limit, so our STATE fits too");
  assert!(sent.iter().all(|p| p.0.seq_nr.distance_from(first) < 19));

  let mut s = Script::new(cfg);
  let (h, first) = accept_ours(&mut s);
  s.send(state(first.sub(1), 22_000), &[]);
  for _ in 0..200 {
    s.ep.write(h, &[7; 100]).unwrap();
  }
  assert_eq!(s.recv().len(), 200, "one of ours takes what its window takes");
}

/// libutp resends into a zero window when its timer fires and gives up after four timeouts
/// without an ACK: the next in-order packet is taken and acknowledged even then
#[test]
fn in_order_data_past_a_zero_window_is_acknowledged() {
  let cfg = Config {
    recv_buffer: 2000,
    ..Config::default()
  };
  let mut s = Script::new(cfg);
  let (_, first) = accept(&mut s);
  s.send(data(101, first.sub(1)), &[1; 1000]);
  s.send(data(102, first.sub(1)), &[2; 1000]);
  let acks = s.recv();
  assert_eq!(acks.last().unwrap().0.wnd_size, 0, "the window is closed");
  s.send(data(103, first.sub(1)), &[3; 1000]);
  let acks = s.recv();
  assert_eq!(acks.last().unwrap().0.ack_nr, SeqNr(103));
}

/// utp-punch's users read each short write as one 'data' event: a packet carries one write, and
/// toward our peers its last packet says so, so the receiver's read stops there
#[test]
fn short_writes_go_one_per_packet_and_marked_to_our_peers() {
  let writes: [&[u8]; 3] = [b"abc", b"defg", b"h"];
  let sent = |cfg: Config, ours: bool| {
    let mut s = Script::new(cfg);
    let (h, _) = if ours { accept_ours(&mut s) } else { accept(&mut s) };
    for w in writes {
      s.ep.write(h, w).unwrap();
    }
    s.recv_raw()
      .iter()
      .map(|d| {
        let p = packet::decode(d).unwrap();
        (p.payload.to_vec(), p.ours.end_of_write)
      })
      .collect::<Vec<_>>()
  };
  let one_each = |marked: bool| writes.iter().map(|w| (w.to_vec(), marked)).collect::<Vec<_>>();
  assert_eq!(sent(Config::default(), false), one_each(false));
  assert_eq!(sent(Config::default(), true), one_each(true));
  let coalescing = Config {
    coalesce_writes: true,
    ..Config::default()
  };
  assert_eq!(sent(coalescing, true), [(b"abcdefgh".to_vec(), true)]);
}

#[test]
fn reads_stop_at_write_ends_from_our_peers_only() {
  let reads = |ours: bool| {
    let mut s = Script::new(Config::default());
    let (h, first) = if ours { accept_ours(&mut s) } else { accept(&mut s) };
    let end = Ours {
      end_of_write: true,
      ..Ours::NONE
    };
    s.send_with(data(101, first.sub(1)), None, end, b"ab");
    s.send_with(data(102, first.sub(1)), None, end, b"cde");
    s.recv();
    let mut chunks = Vec::new();
    loop {
      let mut out = Vec::new();
      if s.ep.read(h, &mut out, 1 << 16).bytes == 0 {
        break;
      }
      chunks.push(out);
    }
    chunks
  };
  assert_eq!(reads(true), [&b"ab"[..], b"cde"]);
  assert_eq!(reads(false), [&b"abcde"[..]], "a stranger's bytes mean nothing");
}

/// libtorrent's SYN advertises a zero window: what we write goes out at once all the same, not
/// after a zero-window probe
#[test]
fn a_syn_with_a_zero_window_does_not_stall_the_responder() {
  let mut s = Script::new(Config::default());
  s.send(
    Header {
      wnd_size: 0,
      ..syn(0x7000, 100)
    },
    &[],
  );
  let syn_ack = s.recv()[0].0.seq_nr;
  s.send(super::scripted::confirm(syn_ack), &[]);
  s.recv();
  let h = s.events[0].0;
  s.ep.write(h, &[1; 3000]).unwrap();
  assert_eq!(s.recv().len(), 3, "sent without waiting");
}

/// libutp never answers keepalives: once our FIN is acknowledged, a stranger that stays silent
/// may simply be thinking, and gets TCP's FIN_WAIT_2 minute before we give up on its FIN
#[test]
fn a_stranger_gets_a_minute_for_its_fin() {
  let cfg = Config {
    idle_timeout: Duration::from_secs(5),
    ..Config::default()
  };
  let mut s = Script::new(cfg);
  let (h, first) = accept(&mut s);
  s.ep.shutdown(h);
  let fin = s.recv();
  assert_eq!(fin[0].0.ty, PacketType::Fin);
  s.send(state(first, 1 << 20), &[]);
  let mut closed_after = None;
  for tick in 1..=70 {
    s.advance(Duration::from_secs(1));
    s.recv_raw();
    if s.events.iter().any(|(_, e)| matches!(e, Event::Closed(_))) {
      closed_after = Some(tick);
      break;
    }
  }
  // Its silence is reported once (utp-punch's 'timeout'), but only the minute closes
  let notices = s.events.iter().filter(|(_, e)| *e == Event::Timeout).count();
  assert_eq!(notices, 1);
  let after = closed_after.expect("closed");
  assert!((59..=61).contains(&after), "closed after {after} s");
  assert!(s.events.contains(&(h, Event::Closed(CloseReason::TimedOut))));
}

/// Bytes released from the reorder buffer by a late packet count as received, not only its own
#[test]
fn bytes_received_counts_what_a_late_packet_releases() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.send(data(102, first.sub(1)), &[2; 700]);
  s.send(data(103, first.sub(1)), &[3; 500]);
  s.send(data(101, first.sub(1)), &[1; 100]);
  s.recv();
  assert_eq!(s.ep.connection_stats(h).unwrap().bytes_received, 1300);
}

/// A live peer of ours keeps an idle connection quiet: its keepalives are packets, so no notice
#[test]
fn an_idle_connection_with_a_live_peer_hears_no_timeout() {
  let mut s = Script::new(Config {
    idle_timeout: Duration::from_secs(2),
    ..Config::default()
  });
  let (_, first) = accept_ours(&mut s);
  for _ in 0..20 {
    s.advance(Duration::from_millis(900));
    s.recv_raw();
    // The peer's keepalive (libutp's form, which ours sends too)
    s.send(state(first.sub(2), 1 << 20), &[]);
  }
  assert!(!s.events.iter().any(|(_, e)| *e == Event::Timeout));
  s.advance(Duration::from_millis(2100));
  s.recv_raw();
  assert!(
    s.events.iter().any(|(_, e)| *e == Event::Timeout),
    "silence is reported"
  );
}

/// After our FIN, libtorrent drops a STATE whose sequence number is past that FIN (it never acked
/// our ACK of its FIN and resent it) and libutp drops one that is not: a stranger gets both
#[test]
fn after_our_fin_a_stranger_gets_each_ack_with_both_sequence_numbers() {
  let acks_after_fin = |ours: bool| {
    let mut s = Script::new(Config::default());
    let (h, first) = if ours { accept_ours(&mut s) } else { accept(&mut s) };
    s.ep.shutdown(h);
    let fin = s.recv();
    assert_eq!((fin[0].0.ty, fin[0].0.seq_nr), (PacketType::Fin, first));
    // The peer acknowledges our FIN and sends its own
    s.send(
      Header {
        ty: PacketType::Fin,
        ..data(101, first)
      },
      &[],
    );
    s.recv()
      .iter()
      .map(|(h, _, _)| (h.ty, h.seq_nr, h.ack_nr))
      .collect::<Vec<_>>()
  };
  let st = PacketType::State;
  let stranger = acks_after_fin(false);
  assert_eq!(stranger.len(), 2, "{stranger:?}");
  assert_eq!(stranger[0].2, SeqNr(101));
  assert_eq!(stranger[1].2, SeqNr(101));
  assert_eq!(stranger[0].1, stranger[1].1.add(1), "libutp's, then libtorrent's");
  assert!(stranger.iter().all(|a| a.0 == st));
  let ours = acks_after_fin(true);
  assert_eq!(ours.len(), 1, "one of ours takes either: {ours:?}");
}

/// A destroyed socket's connection (released) cannot live forever: a peer that acknowledges our
/// FIN but never sends its own, or never answers at all, gets a bounded wait, then RESET
#[test]
fn a_released_connection_ends_within_a_bounded_time() {
  for peer_alive in [true, false] {
    let mut s = Script::new(Config::default());
    let (h, first) = accept(&mut s);
    s.ep.set_timeout(h, None);
    let now = s.now;
    s.ep.release(now, h);
    let fin = s.recv();
    assert_eq!(fin[0].0.ty, PacketType::Fin);
    if peer_alive {
      s.send(state(first, 1 << 20), &[]);
    }
    let mut reset = false;
    for _ in 0..65 {
      s.advance(Duration::from_secs(1));
      if peer_alive {
        // It keeps talking (its keepalives, its data) and never ends its stream
        s.send(state(first, 1 << 20), &[]);
      }
      reset |= s.recv_raw().iter().any(|d| d[0] >> 4 == PacketType::Reset as u8);
    }
    // A dead peer times out first (the release restored a finite silence limit); a live one that
    // never ends its stream is reset when the wait is over
    assert_eq!(
      reset, peer_alive,
      "peer alive: {peer_alive}: RESET after the wait"
    );
    assert!(
      s.events.iter().any(|(_, e)| matches!(e, Event::Closed(_))),
      "peer alive: {peer_alive}: closed"
    );
  }
}

/// The application's packet size stays, a migration included (no path MTU search restarts)
#[test]
fn set_max_payload_survives_a_migration() {
  let cfg = Config {
    pmtu_ceiling: 1448,
    ..Config::default()
  };
  let mut s = Script::new(cfg);
  let (h, _) = accept_ours(&mut s);
  s.ep.set_max_payload(h, 500);
  let now = s.now;
  s.ep.migrate(now, h, "192.0.2.8:6881".parse().unwrap()).unwrap();
  s.peer = "192.0.2.8:6881".parse().unwrap();
  let mut probes = 0;
  for _ in 0..20 {
    s.advance(Duration::from_millis(250));
    probes += s.recv_raw().iter().filter(|d| pmtu::is_pmtu(d)).count();
  }
  assert_eq!(probes, 0);
  assert_eq!(s.ep.connection_stats(h).unwrap().max_payload, 500);
}

/// A controller chosen while the SYN is out survives the hello's switch to loopback-sized packets,
/// which builds the connection a new controller
#[test]
fn a_congestion_choice_made_before_the_handshake_outlives_it() {
  let mut s = Script::with_peer(loopback_cfg(), "127.0.0.1:6881");
  let h = s.ep.connect(s.now, s.peer).unwrap();
  let syn_h = s.recv()[0].0;
  s.ep.set_congestion(h, Congestion::Cubic);
  let synack = Header {
    ty: PacketType::State,
    conn_id: syn_h.conn_id,
    seq_nr: SeqNr(7000),
    ack_nr: syn_h.seq_nr,
    ..syn(0, 0)
  };
  s.send_with(synack, None, HELLO, &[]);
  s.recv();
  assert!(s.events.contains(&(h, Event::Connected)));
  let st = s.ep.connection_stats(h).unwrap();
  assert_eq!(
    st.max_payload, 16000,
    "the hello switched to loopback-sized packets"
  );
  assert_eq!(st.congestion, Congestion::Cubic);
}
