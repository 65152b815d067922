//! The endpoint's bookkeeping that the Node.js layer reads: the configuration, the open
//! connections, the connection limit as connections come and go, ICMP unreachable reports; and
//! what it keeps across connections: counters, timers, the base delay shared per peer

use std::net::SocketAddr;
use std::time::Duration;

use super::connected;
use super::scripted::{accept, confirm, syn, Script};
use super::sim::{payload, Sim};
use crate::packet::{self, Header, Ours, Packet, PacketType};
use crate::pmtu;
use crate::seq::SeqNr;
use crate::{CloseReason, Config, ConnectionHandle, DatagramKind, Endpoint, Event, Instant, WriteError};

fn secs(n: u64) -> Duration {
  Duration::from_secs(n)
}

/// A datagram of type `ty` on connection id `conn_id` that no connection expects
fn stray(ty: PacketType, conn_id: u16, payload: &[u8]) -> Vec<u8> {
  let header = Header {
    ty,
    conn_id,
    timestamp: 1,
    timestamp_diff: 0,
    wnd_size: 1 << 20,
    seq_nr: SeqNr(5),
    ack_nr: SeqNr(0),
  };
  encode(header, payload)
}

/// A datagram of `header` and `payload`, no extensions
fn encode(header: Header, payload: &[u8]) -> Vec<u8> {
  let mut dgram = Vec::new();
  Packet {
    header,
    sack: None,
    ours: Ours::NONE,
    payload,
  }
  .encode(&mut dgram);
  dgram
}

#[test]
fn the_configuration_in_force_is_the_one_given() {
  let cfg = Config {
    max_payload: 1234,
    max_connections: 7,
    keepalive: secs(3),
    ..Config::default()
  };
  let sim = Sim::new(1, 1, cfg);
  let c = sim.nodes[0].ep.config();
  assert_eq!(
    (c.max_payload, c.max_connections, c.keepalive),
    (1234, 7, secs(3))
  );
}

/// Listed once confirmed, on both sides, and no longer once closed
#[test]
fn open_connections_lists_exactly_the_open_ones() {
  let mut sim = Sim::new(2, 2, Config::default());
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, payload(1, 10_000), true);
  assert!(sim.run_until(secs(10), |s| !s.nodes[1].accepted.is_empty()));
  let b = sim.nodes[1].accepted[0];
  assert_eq!(sim.nodes[0].ep.open_connections(), [a]);
  assert_eq!(sim.nodes[1].ep.open_connections(), [b]);
  sim.app_mut(1, b).finish = true;
  assert!(sim.run_until(secs(30), |s| s.app(0, a).closed.is_some()
    && s.app(1, b).closed.is_some()));
  assert_eq!(sim.app(0, a).closed, Some(CloseReason::Finished));
  assert!(sim.nodes[0].ep.open_connections().is_empty());
  assert!(sim.nodes[1].ep.open_connections().is_empty());
}

/// `max_connections` counts the open connections of both kinds: a full node refuses, and takes
/// new ones again once the old ones have closed and been forgotten
#[test]
fn the_connection_limit_follows_connections_as_they_come_and_go() {
  let cfg = Config {
    max_connections: 1,
    ..Config::default()
  };
  let mut sim = Sim::new(3, 3, cfg);
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, payload(1, 1000), true);
  assert!(sim.run_until(secs(10), |s| !s.nodes[1].accepted.is_empty()));
  let second = sim.connect(2, 1, Vec::new(), false);
  assert!(sim.run_until(secs(10), |s| s.app(2, second).closed.is_some()));
  assert_eq!(sim.app(2, second).closed, Some(CloseReason::Refused));
  assert_eq!(sim.nodes[1].ep.stats().refused, 1);
  // The first connection ends (both sides finish) and lingers out
  let b = sim.nodes[1].accepted[0];
  sim.app_mut(1, b).finish = true;
  assert!(sim.run_until(secs(60), |s| s.app(0, a).closed.is_some()
    && s.nodes[1].ep.connection_count() == 0));
  let st = sim.nodes[1].ep.stats();
  assert_eq!((st.server_connections, st.client_connections), (0, 0));
  let third = sim.connect(2, 1, payload(3, 1000), false);
  assert!(sim.run_until(secs(10), |s| s.nodes[1].accepted.len() == 2));
  assert!(sim.app(2, third).connected);
  assert_eq!(sim.nodes[1].ep.stats().server_connections, 1);
  // The client side counts too: node 2 is full while its connection is open
  let (now, to) = (sim.local_now(2), sim.addr(0));
  assert!(sim.nodes[2].ep.connect(now, to).is_err());
}

/// An ICMP unreachable fails only connection attempts to that address: not attempts elsewhere,
/// not an open connection to it (a forged ICMP must not kill a live connection)
#[test]
fn unreachable_fails_only_attempts_to_that_address() {
  let mut sim = Sim::new(4, 3, Config::default());
  sim.nodes[1].ep.set_listening(true);
  let open = sim.connect(0, 1, payload(1, 100), false);
  assert!(sim.run_until(secs(10), |s| s.app(0, open).connected));
  // Node 2 does not listen; its address is what the ICMP names, the attempt to node 1 another
  let attempt = sim.connect(0, 2, Vec::new(), false);
  let (now, one, two) = (sim.local_now(0), sim.addr(1), sim.addr(2));
  let elsewhere = "192.0.2.99:9".parse().unwrap();
  assert_eq!(sim.nodes[0].ep.handle_unreachable(now, elsewhere), 0);
  assert_eq!(
    sim.nodes[0].ep.handle_unreachable(now, one),
    0,
    "open, not an attempt"
  );
  assert_eq!(sim.nodes[0].ep.handle_unreachable(now, two), 1);
  assert!(sim.run_until(secs(1), |s| s.app(0, attempt).closed.is_some()));
  assert_eq!(sim.app(0, attempt).closed, Some(CloseReason::Refused));
  assert!(sim.nodes[0].ep.is_open(open));
  assert_eq!(sim.nodes[0].ep.handle_unreachable(now, two), 0, "already failed");
}

/// Appending datagrams to one buffer (how the Node.js driver gathers a segmented send): each
/// `Transmit` gives the length of its own datagram, whatever the buffer held before, for a RESET,
/// a path MTU probe's ack and a connection's packet alike
#[test]
fn appended_datagrams_report_their_own_size() {
  let (mut sim, _, b) = connected(5, Config::default(), Vec::new());
  let (now, from) = (sim.local_now(1), sim.addr(0));
  let ep = &mut sim.nodes[1].ep;
  // A probe for the connection, and a SYN from another port of the same host (refused: node 1
  // listens, but its limit is not the point here, so it stops listening first)
  let mut probe = Vec::new();
  pmtu::encode_probe(ep.connection_id(b).unwrap(), 1200, &mut probe);
  ep.handle_datagram(now, from, &probe);
  ep.set_listening(false);
  let dgram = stray(PacketType::Syn, 0x7777, &[]);
  let other_port = std::net::SocketAddr::new(from.ip(), from.port() + 1);
  ep.handle_datagram(now, other_port, &dgram);
  ep.write(b, &[7; 3000]).unwrap();
  let mut buf = vec![0xee; 5];
  let mut kinds = Vec::new();
  while let Some(t) = ep.poll_transmit_append(now, &mut buf) {
    let start = buf.len() - t.size;
    let datagram = &buf[start..];
    let kind = match packet::decode(datagram) {
      Ok(p) => format!("{:?}", p.header.ty),
      Err(_) if pmtu::decode(datagram).is_some() => "pmtu".to_string(),
      Err(e) => panic!("undecodable datagram at {start}: {e}"),
    };
    kinds.push((kind, t.size));
    assert!(kinds.len() < 100);
  }
  assert_eq!(&buf[..5], &[0xee; 5], "what the buffer held stays");
  let total: usize = kinds.iter().map(|(_, n)| n).sum();
  assert_eq!(total, buf.len() - 5, "{kinds:?}");
  assert!(kinds.iter().any(|(k, n)| k == "Reset" && *n == 20), "{kinds:?}");
  assert!(
    kinds.iter().any(|(k, n)| k == "pmtu" && *n == pmtu::ACK_LEN),
    "{kinds:?}"
  );
  assert!(kinds.iter().any(|(k, _)| k == "Data"), "{kinds:?}");
}

/// A flood of path MTU probes gets answers up to the queue's bound between two polls, not more
#[test]
fn probe_answers_are_bounded() {
  let (mut sim, _, b) = connected(6, Config::default(), Vec::new());
  let (now, from) = (sim.local_now(1), sim.addr(0));
  let ep = &mut sim.nodes[1].ep;
  let mut probe = Vec::new();
  pmtu::encode_probe(ep.connection_id(b).unwrap(), 1200, &mut probe);
  for _ in 0..1100 {
    ep.handle_datagram(now, from, &probe);
  }
  let mut buf = Vec::new();
  let mut acks = 0;
  while let Some(t) = ep.poll_transmit_append(now, &mut buf) {
    acks += usize::from(pmtu::decode(&buf[buf.len() - t.size..]).is_some());
  }
  assert_eq!(acks, 1024);
}

/// A connection's statistics show its receive window: the whole buffer while nothing waits to be
/// read, less what the application left unread
#[test]
fn statistics_show_the_receive_window() {
  let cfg = Config {
    recv_buffer: 50_000,
    ..Config::default()
  };
  let mut sim = Sim::new(7, 2, cfg);
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, Vec::new(), false);
  assert!(sim.run_until(secs(10), |s| !s.nodes[1].accepted.is_empty()));
  let b = sim.nodes[1].accepted[0];
  let st = sim.nodes[0].ep.connection_stats(a).unwrap();
  assert_eq!((st.recv_window, st.peer_window), (50_000, 50_000), "{st:?}");
  // One round trip measured (the sim's default link: 10 ms each way): the estimate, its variance
  // (half the first sample) and the timeout built from them (min_rto 100 ms as the margin)
  assert!((15_000..30_000).contains(&st.rtt_us), "{st:?}");
  assert_eq!(st.rttvar_us, st.rtt_us / 2, "{st:?}");
  assert_eq!(st.rto_us, st.rtt_us + 100_000, "{st:?}");
  sim.app_mut(1, b).paused = true;
  sim.app_mut(0, a).to_send = payload(1, 8_000);
  assert!(sim.run_until(secs(10), |s| s.nodes[1]
    .ep
    .connection_stats(b)
    .unwrap()
    .recv_window
    == 42_000));
}

/// Ending a stream twice sends one FIN: the second call finds the FIN queued or sent
#[test]
fn a_second_shutdown_sends_no_second_fin() {
  let mut sim = Sim::new(8, 2, Config::default());
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, payload(1, 3_000), false);
  assert!(sim.run_until(secs(10), |s| !s.nodes[1].accepted.is_empty()));
  sim.nodes[0].log_sends = true;
  sim.nodes[0].ep.shutdown(a);
  sim.run_until(secs(2), |_| false);
  sim.nodes[0].ep.shutdown(a);
  sim.run_until(secs(2), |_| false);
  let fins: Vec<u16> = sim.nodes[0]
    .sent_log
    .iter()
    .filter_map(|d| packet::decode(d).ok())
    .filter(|p| p.header.ty == PacketType::Fin)
    .map(|p| p.header.seq_nr.0)
    .collect();
  assert_eq!(fins.len(), 1, "FINs sent: {fins:?}");
}

/// Re-aiming an idle connection (nothing in flight) costs it nothing: no timeout fires, the
/// window stays, and data flows to the new address
#[test]
fn migrating_an_idle_connection_fires_no_timeout() {
  let mut sim = Sim::new(9, 2, Config::default());
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, payload(1, 50_000), false);
  assert!(sim.run_until(secs(10), |s| !s.nodes[1].accepted.is_empty()
    && s.app(1, s.nodes[1].accepted[0]).received.len() == 50_000));
  let b = sim.nodes[1].accepted[0];
  sim.run_until(secs(1), |_| false);
  let before = sim.nodes[0].ep.connection_stats(a).unwrap();
  assert_eq!(before.in_flight, 0);
  // Node 1 moves; node 0 is told and re-aims
  let moved: std::net::SocketAddr = "10.0.0.2:6000".parse().unwrap();
  let old = sim.addr(1);
  sim.nodes[1].addr = moved;
  let now = sim.local_now(0);
  assert_eq!(sim.nodes[0].ep.migrate(now, a, moved), Ok(old));
  sim.run_until(secs(2), |_| false);
  let after = sim.nodes[0].ep.connection_stats(a).unwrap();
  assert_eq!(
    (after.timeouts, after.congestion_events),
    (before.timeouts, before.congestion_events),
    "{after:?}"
  );
  sim.app_mut(0, a).to_send.extend(payload(2, 10_000));
  assert!(sim.run_until(secs(10), |s| s.app(1, b).received.len() == 60_000));
  // Once the connection is gone, the new address is a stranger again: its stray packets get a
  // RESET (while a connection talks to an address, they go unanswered: see handle_datagram)
  let now = sim.local_now(0);
  sim.nodes[0].ep.abort(now, a);
  assert!(sim.run_until(secs(30), |s| s.nodes[0].ep.connection_count() == 0));
  let resets = sim.nodes[0].ep.stats().resets_sent;
  let dgram = stray(PacketType::Data, 0x4242, b"?");
  let now = sim.local_now(0);
  sim.nodes[0].ep.handle_datagram(now, moved, &dgram);
  let mut buf = Vec::new();
  while sim.nodes[0].ep.poll_transmit(now, &mut buf).is_some() {}
  assert_eq!(sim.nodes[0].ep.stats().resets_sent, resets + 1);
}

/// A gracefully closed connection lingers for the idle timeout (so a retransmitted FIN still
/// gets its ACK, not a RESET) and is forgotten after it
#[test]
fn a_closed_connection_lingers_for_the_idle_timeout() {
  let cfg = Config {
    idle_timeout: secs(4),
    ..Config::default()
  };
  let mut sim = Sim::new(10, 2, cfg);
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, payload(1, 5_000), true);
  assert!(sim.run_until(secs(10), |s| !s.nodes[1].accepted.is_empty()));
  let b = sim.nodes[1].accepted[0];
  sim.app_mut(1, b).finish = true;
  assert!(sim.run_until(secs(10), |s| s.app(0, a).closed.is_some()
    && s.app(1, b).closed.is_some()));
  let closed = sim.now;
  sim.run_until(secs(3), |_| false);
  assert_eq!(
    sim.nodes[0].ep.connection_count(),
    1,
    "still lingering 3 s after closing"
  );
  assert!(sim.run_until(secs(10), |s| s.nodes[0].ep.connection_count() == 0));
  let lingered = sim.now.saturating_since(closed);
  // Measured from when both were closed: node 0 closed a round trip or so earlier
  assert!(
    lingered >= Duration::from_millis(3_500) && lingered < secs(6),
    "{lingered:?}"
  );
}

/// Data packets carry the cumulative ACK: a node that sends while it receives sends almost no
/// pure ACKs (STATE packets) besides
#[test]
fn acks_ride_on_data_both_ways() {
  let mut sim = Sim::new(11, 2, Config::default());
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, payload(1, 400_000), true);
  assert!(sim.run_until(secs(10), |s| !s.nodes[1].accepted.is_empty()));
  let b = sim.nodes[1].accepted[0];
  sim.app_mut(1, b).to_send = payload(2, 400_000);
  sim.app_mut(1, b).finish = true;
  sim.nodes[0].log_sends = true;
  assert!(sim.run_until(secs(30), |s| s.app(0, a).closed.is_some()
    && s.app(1, b).closed.is_some()));
  let (mut data, mut states) = (0, 0);
  for d in &sim.nodes[0].sent_log {
    match packet::decode(d).map(|p| p.header.ty) {
      Ok(PacketType::Data) => data += 1,
      Ok(PacketType::State) => states += 1,
      _ => {}
    }
  }
  eprintln!("node 0 sent {data} DATA and {states} STATE packets");
  assert!(data >= 400);
  assert!(states * 4 < data, "{states} pure ACKs for {data} data packets");
}

/// A connection that ended waits, with no timer, until the application takes its `Closed` event
/// (a driver sleeping until `poll_timeout` is not woken for it); then it lingers and goes
#[test]
fn an_ended_connection_whose_close_is_unread_wants_no_timer() {
  let (a_addr, b_addr): (std::net::SocketAddr, std::net::SocketAddr) =
    ("192.0.2.1:1".parse().unwrap(), "192.0.2.2:2".parse().unwrap());
  let mut a = crate::Endpoint::new(Config::default(), 3);
  let mut b = crate::Endpoint::new(Config::default(), 4);
  b.set_listening(true);
  let mut now = crate::Instant::from_micros(1_000_000);
  let h = a.connect(now, b_addr).unwrap();
  a.shutdown(h);
  let mut buf = Vec::new();
  // Two endpoints wired back to back; only b's events are read
  for _ in 0..200 {
    while let Some(t) = a.poll_transmit(now, &mut buf) {
      b.handle_datagram(now, a_addr, &buf[..t.size]);
    }
    while let Some(t) = b.poll_transmit(now, &mut buf) {
      a.handle_datagram(now, b_addr, &buf[..t.size]);
    }
    while let Some((c, ev)) = b.poll_event() {
      if ev == crate::Event::Incoming || ev == crate::Event::Readable {
        let mut out = Vec::new();
        let _ = b.read(c, &mut out, 1000);
        b.shutdown(c);
      }
    }
    now = now + Duration::from_millis(10);
    a.handle_timeout(now);
    b.handle_timeout(now);
  }
  assert!(!a.is_open(h), "closed by the FIN exchange");
  assert_eq!(
    a.poll_timeout(),
    None,
    "no timer while the Closed event is unread"
  );
  let events: Vec<_> = std::iter::from_fn(|| a.poll_event()).map(|(_, e)| e).collect();
  assert_eq!(
    events.last(),
    Some(&crate::Event::Closed(CloseReason::Finished)),
    "{events:?}"
  );
  assert!(a.poll_timeout().is_some(), "lingering now");
  a.handle_timeout(now + secs(60));
  assert_eq!(a.connection_count(), 0);
}

/// A sender that the application holds back (a kilobyte every 100 ms) does not grow its window:
/// acknowledgements of a window it never filled say nothing about the path (RFC 7661)
#[test]
fn an_application_limited_sender_keeps_its_window() {
  let (mut sim, a, _) = connected(12, Config::default(), Vec::new());
  let start = sim.nodes[0].ep.connection_stats(a).unwrap().cwnd;
  for _ in 0..100 {
    sim.app_mut(0, a).to_send.extend([1u8; 1000]);
    sim.run_until(Duration::from_millis(100), |_| false);
  }
  let st = sim.nodes[0].ep.connection_stats(a).unwrap();
  assert!(st.bytes_sent >= 100_000, "{st:?}");
  assert!(
    st.cwnd <= start + 2_000,
    "grew from {start} to {}: {st:?}",
    st.cwnd
  );
}

/// Two handshakes that both start while there is room, and one slot: the first confirmed takes
/// it, the second is refused when its confirmation finds the node full (as a full TCP accept
/// queue), and counted
#[test]
fn a_handshake_confirmed_into_a_full_node_is_refused_and_counted() {
  let cfg = Config {
    max_connections: 1,
    ..Config::default()
  };
  let mut sim = Sim::new(13, 3, cfg);
  sim.nodes[1].ep.set_listening(true);
  let first = sim.connect(0, 1, payload(1, 100), false);
  let second = sim.connect(2, 1, payload(2, 100), false);
  assert!(sim.run_until(secs(10), |s| s.nodes[1].accepted.len() == 1
    && (s.app(0, first).closed.is_some() || s.app(2, second).closed.is_some())));
  let st = sim.nodes[1].ep.stats();
  assert_eq!(
    (st.server_connections, st.refused, st.unconfirmed_connections),
    (1, 1, 0),
    "{st:?}"
  );
}

/// A sender whose bursts leave less than a packet of its window unused is using its window
/// (RFC 7661's "nearly full"): it may grow, unlike one that leaves most of it idle
#[test]
fn a_sender_that_nearly_fills_its_window_may_grow_it() {
  let (mut sim, a, _) = connected(14, Config::default(), Vec::new());
  let start = sim.nodes[0].ep.connection_stats(a).unwrap().cwnd;
  for _ in 0..40 {
    let cwnd = sim.nodes[0].ep.connection_stats(a).unwrap().cwnd;
    // All of the window but half a packet, once per round trip (20 ms here), acknowledged in between
    sim.app_mut(0, a).to_send.extend(vec![1u8; cwnd - 500]);
    sim.run_until(Duration::from_millis(60), |_| false);
  }
  let st = sim.nodes[0].ep.connection_stats(a).unwrap();
  assert!(st.cwnd >= 2 * start, "grew from {start} to {}: {st:?}", st.cwnd);
}

/// Listening is off until the application turns it on, and reads back as it was last set
#[test]
fn listening_reads_back_as_set() {
  let mut ep = Endpoint::new(Config::default(), 1);
  assert!(!ep.is_listening());
  ep.set_listening(true);
  assert!(ep.is_listening());
  ep.set_listening(false);
  assert!(!ep.is_listening());
}

/// A stranger's packet for no connection and a packet whose extension chain runs past its end
/// are each counted, one by one
#[test]
fn stray_and_broken_packets_are_counted_one_each() {
  let mut ep = Endpoint::new(Config::default(), 2);
  let (now, from) = (Instant::from_micros(1_000_000), "192.0.2.9:9".parse().unwrap());
  let mut broken = stray(PacketType::Data, 0x4242, &[]);
  broken[1] = 1; // a SACK follows the header, says the header: there is none
  for n in 1..=2 {
    assert_eq!(ep.handle_datagram(now, from, &broken), DatagramKind::Utp);
    assert_eq!(ep.stats().malformed_packets, n);
  }
  for n in 1..=2 {
    ep.handle_datagram(now, from, &stray(PacketType::Data, 0x4242, b"?"));
    assert_eq!(ep.stats().unmatched_packets, n);
  }
  assert_eq!(ep.stats().malformed_packets, 2);
}

/// A transformed write is queued as the transform left it, and says how much is buffered
#[test]
fn a_transformed_write_sends_what_the_transform_made() {
  let mut s = Script::new(Config::default());
  let (h, _) = accept(&mut s);
  let parts: [&[u8]; 3] = [b"ab", b"cde", b"f"];
  let n = s.ep.write_transformed::<WriteError>(h, &parts, |buf| {
    buf.make_ascii_uppercase();
    Ok(())
  });
  assert_eq!(n, Ok(6));
  let out = s.recv();
  assert_eq!(out.len(), 1);
  assert_eq!((out[0].0.ty, &out[0].2[..]), (PacketType::Data, &b"ABCDEF"[..]));
}

/// A transformed write that fills the send buffer asks the application to wait: `Writable` comes
/// once the peer has acknowledged it, as after an ordinary write
#[test]
fn a_transformed_write_that_fills_the_buffer_waits_for_writable() {
  let mut s = Script::new(Config::default());
  let (h, _) = accept(&mut s);
  let limit = s.ep.send_buffer(h).unwrap();
  let data = vec![7u8; limit];
  assert_eq!(
    s.ep.write_transformed::<WriteError>(h, &[&data], |_| Ok(())),
    Ok(limit)
  );
  // The peer acknowledges each flight as it comes
  let mut flight = s.recv();
  while let Some(last) = flight.last() {
    s.send(
      Header {
        ty: PacketType::State,
        ..confirm(last.0.seq_nr.add(1))
      },
      &[],
    );
    flight = s.recv();
  }
  assert_eq!(s.ep.connection_stats(h).unwrap().in_flight, 0);
  assert!(s.events.contains(&(h, Event::Writable)), "{:?}", s.events);
}

/// Sending data arms the retransmission timer at once: a driver sleeping until `poll_timeout`
/// wakes when the data is due again, not at the later deadline it had before the data went out
/// (the idle timeout here: keepalives are off)
#[test]
fn sending_data_arms_the_retransmission_timer() {
  let mut s = Script::new(Config {
    keepalive: Duration::ZERO,
    ..Config::default()
  });
  let (h, _) = accept(&mut s);
  s.ep.write(h, &[1; 1000]).unwrap();
  let sent = s.recv();
  assert_eq!(sent.len(), 1);
  let rto = Duration::from_micros(s.ep.connection_stats(h).unwrap().rto_us);
  assert_eq!(s.ep.poll_timeout(), Some(s.now + rto));
  s.advance(rto);
  let again = s.recv();
  assert_eq!(again.len(), 1);
  assert_eq!(
    (again[0].0.ty, again[0].0.seq_nr),
    (PacketType::Data, sent[0].0.seq_nr)
  );
}

/// `from` opens a connection to the listening `ep` with id `id`, and confirms it with a one-way
/// delay of `delay` (its `timestamp_diff`): the connection's base delay
fn opened_by(ep: &mut Endpoint, now: Instant, from: SocketAddr, id: u16, delay: u32) -> ConnectionHandle {
  opened_with_syn_ack(ep, now, from, id, delay).0
}

/// As `opened_by`, also returning the sequence number of the SYN-ACK `ep` sent
fn opened_with_syn_ack(
  ep: &mut Endpoint,
  now: Instant,
  from: SocketAddr,
  id: u16,
  delay: u32,
) -> (ConnectionHandle, SeqNr) {
  ep.handle_datagram(now, from, &encode(syn(id, 100), &[]));
  let mut buf = Vec::new();
  let mut syn_ack = None;
  while let Some(t) = ep.poll_transmit(now, &mut buf) {
    let p = packet::decode(&buf[..t.size]).unwrap();
    if t.destination == from && p.header.ty == PacketType::State {
      syn_ack = Some(p.header.seq_nr);
    }
  }
  let syn_ack = syn_ack.expect("SYN-ACK");
  let confirming = Header {
    conn_id: id.wrapping_add(1),
    timestamp_diff: delay,
    ..confirm(syn_ack)
  };
  ep.handle_datagram(now, from, &encode(confirming, &[]));
  let mut opened = None;
  while let Some((h, ev)) = ep.poll_event() {
    if ev == Event::Incoming && ep.remote_addr(h) == Some(from) {
      opened = Some(h);
    }
  }
  (opened.expect("confirmed"), syn_ack)
}

fn listening(seed: u64) -> Endpoint {
  let mut ep = Endpoint::new(Config::default(), seed);
  ep.set_listening(true);
  ep
}

/// The base delay shared by the connections to one peer is the lowest any of them measured: a
/// lower one replaces it, an equal one leaves it as it was (its time too: the minute it is
/// trusted runs from when it was measured)
#[test]
fn a_peer_s_shared_base_delay_is_the_lowest_measured() {
  let mut ep = listening(20);
  let peer = "192.0.2.20:20".parse().unwrap();
  let t0 = Instant::from_micros(1_000_000);
  opened_by(&mut ep, t0, peer, 0x1000, 5_000);
  assert_eq!(ep.path_base(peer), Some((5_000, t0)));
  let t1 = t0 + secs(1);
  opened_by(&mut ep, t1, peer, 0x2000, 5_000);
  assert_eq!(ep.path_base(peer), Some((5_000, t0)), "the same again");
  let t2 = t1 + secs(1);
  opened_by(&mut ep, t2, peer, 0x3000, 4_000);
  assert_eq!(ep.path_base(peer), Some((4_000, t2)), "lower");
  opened_by(&mut ep, t2 + secs(1), peer, 0x4000, 4_500);
  assert_eq!(ep.path_base(peer), Some((4_000, t2)), "higher");
}

/// The connection that set a peer's shared base delay keeps it current when its own base rises
/// (it follows the peer's clock drifting ahead of ours, or its lowest minute aged out): the old
/// minimum would otherwise be handed back to it on every packet and undo the drift correction
#[test]
fn the_shared_base_delay_follows_the_connection_that_set_it() {
  let mut ep = listening(23);
  let peer = "192.0.2.23:23".parse().unwrap();
  let t0 = Instant::from_micros(1_000_000);
  let (_, syn_ack) = opened_with_syn_ack(&mut ep, t0, peer, 0x1000, 5_000);
  assert_eq!(ep.path_base(peer), Some((5_000, t0)));
  // A second later the peer's clock has moved a millisecond more than ours: the delay of its
  // packets to us falls by 1 ms, that of ours to it rises by as much, with no queue behind it
  let t1 = t0 + secs(1);
  let drifted = Header {
    conn_id: 0x1001,
    timestamp: confirm(syn_ack).timestamp + 1_001_000,
    timestamp_diff: 6_000,
    ..confirm(syn_ack)
  };
  ep.handle_datagram(t1, peer, &encode(drifted, &[]));
  assert_eq!(ep.path_base(peer), Some((6_000, t1)));
  // Another connection's higher base still does not replace it
  opened_by(&mut ep, t1 + secs(1), peer, 0x2000, 6_500);
  assert_eq!(ep.path_base(peer), Some((6_000, t1)));
}

/// A shared base delay is trusted for a minute: a connection that measures a higher one 60 s
/// after it was set finds it expired, and its own replaces it
#[test]
fn a_shared_base_delay_expires_after_exactly_a_minute() {
  let mut ep = listening(21);
  let peer = "192.0.2.21:21".parse().unwrap();
  let t0 = Instant::from_micros(1_000_000);
  opened_by(&mut ep, t0, peer, 0x1000, 5_000);
  let almost = t0 + secs(60) - Duration::from_micros(1);
  opened_by(&mut ep, almost, peer, 0x2000, 6_000);
  assert_eq!(ep.path_base(peer), Some((5_000, t0)), "still fresh");
  let minute = t0 + secs(60);
  opened_by(&mut ep, minute, peer, 0x3000, 6_000);
  assert_eq!(ep.path_base(peer), Some((6_000, minute)), "expired");
}

/// The shared base delays of peers whose connections are all gone are pruned once the table
/// holds more than two per connection plus 16, and not before
#[test]
fn shared_base_delays_of_gone_peers_are_pruned_past_the_bound() {
  let mut ep = listening(22);
  let peer = |net: u8, i: u8| -> SocketAddr { format!("10.{net}.0.{i}:7000").parse().unwrap() };
  let t0 = Instant::from_micros(1_000_000);
  let mut buf = Vec::new();
  // 22 peers connect, measure, and are gone
  for i in 0..22 {
    let h = opened_by(&mut ep, t0, peer(1, i), 0x1000, 5_000);
    ep.abort(t0, h);
    while ep.poll_transmit(t0, &mut buf).is_some() {}
    while ep.poll_event().is_some() {}
  }
  let t1 = t0 + secs(120);
  ep.handle_timeout(t1);
  assert_eq!(ep.connection_count(), 0);
  assert!(ep.path_base(peer(1, 0)).is_some());
  let syn_from = |ep: &mut Endpoint, from: SocketAddr| {
    ep.handle_datagram(t1, from, &encode(syn(0x5000, 1), &[]));
  };
  // Three connections (two of them handshakes in progress), 22 entries: 22 is not more than 2 · 3 + 16
  syn_from(&mut ep, peer(2, 1));
  syn_from(&mut ep, peer(2, 2));
  let first = peer(3, 1);
  opened_by(&mut ep, t1, first, 0x1000, 5_000);
  assert_eq!(ep.connection_count(), 3);
  assert!(ep.path_base(peer(1, 0)).is_some(), "22 entries kept");
  // Three connections again, 23 entries: the gone peers' go, the live one's stays
  ep.set_listening(false);
  ep.set_listening(true);
  syn_from(&mut ep, peer(2, 3));
  opened_by(&mut ep, t1, peer(3, 2), 0x1000, 5_000);
  assert_eq!(ep.connection_count(), 3);
  assert_eq!(ep.path_base(peer(1, 0)), None, "23 entries pruned");
  assert!(ep.path_base(first).is_some());
}
