//! Whole-endpoint scenarios over the simulated network

mod attacks;
mod clocks;
mod edges;
mod endpoint_api;
mod lifecycle;
mod liveness;
mod real_paths;
mod real_peers;
mod scripted;
mod sim;

use std::time::Duration;

use sim::{payload, Link, Sim};

use crate::packet::{self, Header, Ours, Packet, PacketType};
use crate::pmtu;
use crate::seq::SeqNr;
use crate::{CloseReason, Config, ConnectionHandle, MigrateError};

fn secs(n: u64) -> Duration {
  Duration::from_secs(n)
}

/// Node 0 connects to a listening node 1; both send `len` bytes and finish
fn bidirectional(sim: &mut Sim, len_a: usize, len_b: usize) -> (ConnectionHandle, ConnectionHandle) {
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, payload(1, len_a), true);
  assert!(
    sim.run_until(secs(30), |s| !s.nodes[1].accepted.is_empty()),
    "seed {}: no accept",
    sim.seed
  );
  let b = sim.nodes[1].accepted[0];
  let app = sim.app_mut(1, b);
  app.to_send = payload(2, len_b);
  app.finish = true;
  (a, b)
}

/// Node 0 connected to listening node 1, both sides sure of it, with `data` on its way
fn connected(seed: u64, cfg: Config, data: Vec<u8>) -> (Sim, ConnectionHandle, ConnectionHandle) {
  let mut sim = Sim::new(seed, 2, cfg);
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, data, false);
  assert!(sim.run_until(secs(10), |s| !s.nodes[1].accepted.is_empty()
    && s.app(0, a).connected));
  let b = sim.nodes[1].accepted[0];
  (sim, a, b)
}

/// Nothing gets from node `from` to node `to` any more: the peer vanished, or the path did
fn cut(sim: &mut Sim, from: usize, to: usize) {
  sim.set_link(
    from,
    to,
    Link {
      loss_pct: 100.0,
      ..Link::default()
    },
  );
}

fn assert_transferred(sim: &Sim, a: ConnectionHandle, b: ConnectionHandle, len_a: usize, len_b: usize) {
  let seed = sim.seed;
  let (ra, rb) = (sim.app(0, a), sim.app(1, b));
  let first_diff = |got: &[u8], want: &[u8]| got.iter().zip(want).position(|(x, y)| x != y);
  eprintln!(
    "seed {seed}: client closed {:?} eof {} diff {:?}; server closed {:?} eof {} diff {:?}",
    ra.closed,
    ra.eof,
    first_diff(&ra.received, &payload(2, len_b)),
    rb.closed,
    rb.eof,
    first_diff(&rb.received, &payload(1, len_a))
  );
  assert_eq!(
    rb.received.len(),
    len_a,
    "seed {seed}: server got {} of {len_a}",
    rb.received.len()
  );
  assert!(
    rb.received == payload(1, len_a),
    "seed {seed}: server data corrupt"
  );
  assert_eq!(
    ra.received.len(),
    len_b,
    "seed {seed}: client got {} of {len_b}",
    ra.received.len()
  );
  assert!(
    ra.received == payload(2, len_b),
    "seed {seed}: client data corrupt"
  );
  assert!(ra.eof && rb.eof, "seed {seed}: eof not seen");
}

#[test]
fn handshake_transfer_and_graceful_close() {
  let mut sim = Sim::new(7, 2, Config::default());
  let (a, b) = bidirectional(&mut sim, 100_000, 50_000);
  assert!(sim.run_until(secs(60), |s| s.app(0, a).closed.is_some()
    && s.app(1, b).closed.is_some()));
  assert_transferred(&sim, a, b, 100_000, 50_000);
  assert!(sim.app(0, a).connected);
  assert_eq!(sim.app(0, a).closed, Some(CloseReason::Finished));
  assert_eq!(sim.app(1, b).closed, Some(CloseReason::Finished));
  // Lingering ends and the endpoints forget both connections
  assert!(sim.run_until(secs(30), |s| s.nodes.iter().all(|n| n.ep.connection_count() == 0)));
  let st = sim.nodes[0].ep.stats();
  assert_eq!((st.client_connections, st.server_connections), (0, 0));
}

#[test]
fn lossy_reordering_duplicating_network_many_seeds() {
  // At 20 % loss each way a round trip fails 36 % of the time, so give dead-peer detection room
  lossy_runs(
    Config {
      idle_timeout: secs(10),
      ..Config::default()
    },
    0..200,
  );
}

#[test]
fn lossy_network_with_a_receive_buffer_smaller_than_the_reorder_span() {
  // Out-of-order data can fill a small buffer; the packet that fills the hole must still get in
  lossy_runs(
    Config {
      idle_timeout: secs(10),
      recv_buffer: 12_000,
      ..Config::default()
    },
    1000..1100,
  );
}

fn lossy_runs(cfg: Config, seeds: std::ops::Range<u64>) {
  let (mut total_resent, mut total_dropped) = (0, 0);
  for seed in seeds {
    let mut sim = Sim::new(seed, 2, cfg);
    let mut rng = crate::Rng::new(seed ^ 0xabc);
    let link = Link {
      latency: Duration::from_millis(5 + rng.below(60)),
      jitter: Duration::from_millis(rng.below(20)),
      loss_pct: rng.below(21) as f64,
      dup_pct: rng.below(5) as f64,
      reorder_pct: rng.below(10) as f64,
      rate: if rng.chance(50.0) { Some(2_000_000) } else { None },
      max_queue: Duration::from_millis(300),
      ..Link::default()
    };
    sim.set_link(0, 1, link);
    let (la, lb) = (
      150_000 + rng.below(100_000) as usize,
      100_000 + rng.below(50_000) as usize,
    );
    let (a, b) = bidirectional(&mut sim, la, lb);
    let done = sim.run_until(secs(600), |s| {
      s.app(0, a).closed.is_some() && s.app(1, b).closed.is_some()
    });
    assert!(
      done,
      "seed {seed} {link:?}: not done, client {:?} server {:?}",
      sim.app(0, a).received.len(),
      sim.app(1, b).received.len()
    );
    assert_transferred(&sim, a, b, la, lb);
    assert_eq!(sim.app(0, a).closed, Some(CloseReason::Finished), "seed {seed}");
    // Recovery resends what was lost, not whole windows: retransmissions stay near the drops
    let resent = sim.nodes.iter().map(|n| n.retransmits).sum::<u64>();
    total_resent += resent;
    total_dropped += sim.dropped;
  }
  eprintln!("lossy: {total_resent} retransmissions for {total_dropped} datagrams dropped");
  assert!(
    total_resent < 2 * total_dropped,
    "{total_resent} retransmissions for {total_dropped} drops"
  );
}

#[test]
fn sequence_numbers_wrap_during_a_long_transfer() {
  // 100-byte packets: 8 MB is 80,000 packets, more than the 16-bit sequence space
  let cfg = Config {
    max_payload: 100,
    recv_buffer: 200_000,
    send_buffer: 200_000,
    ..Config::default()
  };
  let mut sim = Sim::new(3, 2, cfg);
  sim.set_link(
    0,
    1,
    Link {
      latency: Duration::from_millis(2),
      loss_pct: 1.0,
      reorder_pct: 1.0,
      ..Link::default()
    },
  );
  let len = 8_000_000;
  let (a, b) = bidirectional(&mut sim, len, 1000);
  assert!(sim.run_until(secs(3600), |s| s.app(1, b).eof && s.app(0, a).eof));
  assert_transferred(&sim, a, b, len, 1000);
}

#[test]
fn read_backpressure_closes_the_window_and_loses_nothing() {
  let mut sim = Sim::new(11, 2, Config::default());
  sim.nodes[1].ep.set_listening(true);
  let len = 1_000_000;
  let a = sim.connect(0, 1, payload(1, len), true);
  assert!(sim.run_until(secs(10), |s| !s.nodes[1].accepted.is_empty()));
  let b = sim.nodes[1].accepted[0];
  sim.app_mut(1, b).paused = true;
  sim.run_until(secs(20), |_| false);
  let recv_window = sim.nodes[1].ep.connection_stats(b).unwrap().recv_window;
  assert_eq!(
    recv_window, 0,
    "receiver window closes when the app stops reading"
  );
  // Zero-window probes are taken in order past the window (so a libutp sender, which gives up
  // after four unanswered timeouts, gets its ACK), within a bounded allowance
  let buffered = sim.nodes[1].ep.readable(b);
  let limit = Config::default().recv_buffer;
  assert!(
    buffered > limit && buffered <= limit + 64 * 1024,
    "one receive buffer plus accepted probes is held: {buffered}"
  );
  assert!(sim.app(0, a).blocked, "writer sees backpressure");
  assert!(
    sim.app(0, a).closed.is_none(),
    "a closed window is not a dead peer"
  );
  let writable_before = sim.app(0, a).writable_events;
  sim.app_mut(1, b).paused = false;
  assert!(sim.run_until(secs(60), |s| s.app(1, b).eof));
  assert!(sim.app(1, b).received == payload(1, len));
  assert!(
    sim.app(0, a).writable_events > writable_before,
    "the blocked writer was told it may write again"
  );
}

/// A peer of ours that vanishes right after the handshake, before any keepalive was answered, is
/// noticed all the same: our endpoint answers keepalives, and its hello said it is ours
#[test]
fn a_peer_that_vanishes_right_after_connecting_is_noticed() {
  let cfg = Config {
    idle_timeout: secs(5),
    ..Config::default()
  };
  let mut sim = Sim::new(6, 2, cfg);
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, vec![], false);
  assert!(sim.run_until(secs(5), |s| s.app(0, a).connected));
  let vanished = sim.now;
  cut(&mut sim, 0, 1);
  assert!(sim.run_until(secs(30), |s| s.app(0, a).timeout_notices > 0));
  let took = sim.now.saturating_since(vanished);
  assert!(took <= secs(5) + Duration::from_millis(100), "{took:?}");
  assert!(sim.run_until(secs(30), |s| s.app(0, a).closed.is_some()));
  assert_eq!(sim.app(0, a).closed, Some(CloseReason::TimedOut));
}

/// `set_timeout` (utp-punch's socket.setTimeout) moves the notice; `None` turns it and the close off
#[test]
fn the_silence_limit_is_per_connection() {
  let cfg = Config {
    idle_timeout: secs(5),
    ..Config::default()
  };
  for limit in [Some(secs(2)), None] {
    let mut sim = Sim::new(7, 2, cfg);
    sim.nodes[1].ep.set_listening(true);
    let a = sim.connect(0, 1, vec![], false);
    assert!(sim.run_until(secs(5), |s| s.app(0, a).connected));
    sim.nodes[0].ep.set_timeout(a, limit);
    let vanished = sim.now;
    cut(&mut sim, 0, 1);
    let noticed = sim.run_until(secs(60), |s| s.app(0, a).timeout_notices > 0);
    match limit {
      Some(l) => {
        assert!(noticed);
        let took = sim.now.saturating_since(vanished);
        assert!(
          took <= l + Duration::from_millis(100) && took >= l - secs(1),
          "{took:?}"
        );
      }
      None => {
        assert!(!noticed, "no notice without a limit");
        assert!(sim.app(0, a).closed.is_none(), "and no close");
      }
    }
  }
}

#[test]
fn vanished_peer_times_out_within_the_idle_timeout() {
  let cfg = Config {
    idle_timeout: secs(5),
    ..Config::default()
  };
  for busy in [true, false] {
    let mut sim = Sim::new(5, 2, cfg);
    sim.nodes[1].ep.set_listening(true);
    let a = sim.connect(0, 1, vec![], false);
    assert!(sim.run_until(secs(5), |s| s.app(0, a).connected));
    sim.run_until(secs(3), |_| false); // idle long enough for keepalives to be answered
    if busy {
      sim.app_mut(0, a).to_send = payload(1, 500_000);
    }
    let vanished = sim.now;
    cut(&mut sim, 0, 1);
    // First a notice after the idle timeout, the connection still open...
    assert!(sim.run_until(secs(30), |s| s.app(0, a).timeout_notices > 0));
    let noticed = sim.now.saturating_since(vanished);
    assert!(sim.app(0, a).closed.is_none());
    assert!(
      noticed >= secs(3) && noticed <= secs(5) + Duration::from_millis(100),
      "busy={busy}: notice after {noticed:?}"
    );
    // ...then, as long again without a packet, the close
    assert!(sim.run_until(secs(30), |s| s.app(0, a).closed.is_some()));
    assert_eq!(sim.app(0, a).closed, Some(CloseReason::TimedOut));
    assert_eq!(sim.app(0, a).timeout_notices, 1);
    let took = sim.app(0, a).closed_at.unwrap().saturating_since(vanished);
    assert!(
      took >= noticed + Duration::from_millis(4900) && took <= secs(10) + Duration::from_millis(100),
      "busy={busy}: closed after {took:?}, notice after {noticed:?}"
    );
  }
}

#[test]
fn idle_connection_survives_with_keepalives() {
  let mut sim = Sim::new(9, 2, Config::default());
  let (a, b) = bidirectional(&mut sim, 0, 0);
  sim.app_mut(0, a).finish = false;
  sim.app_mut(1, b).finish = false;
  sim.run_until(secs(120), |_| false);
  assert!(sim.app(0, a).closed.is_none() && sim.app(1, b).closed.is_none());
  let sent = sim.nodes[0].ep.connection_stats(a).unwrap().packets_sent;
  assert!(
    (100..400).contains(&sent),
    "about one keepalive a second, sent {sent}"
  );
}

#[test]
fn connect_to_a_node_not_listening_is_refused() {
  let mut sim = Sim::new(1, 2, Config::default());
  let a = sim.connect(0, 1, vec![1, 2, 3], false);
  assert!(sim.run_until(secs(5), |s| s.app(0, a).closed.is_some()));
  assert_eq!(sim.app(0, a).closed, Some(CloseReason::Refused));
}

#[test]
fn connect_to_nobody_times_out() {
  let cfg = Config {
    idle_timeout: secs(4),
    ..Config::default()
  };
  let mut sim = Sim::new(1, 2, cfg);
  cut(&mut sim, 0, 1);
  let start = sim.now;
  let a = sim.connect(0, 1, vec![], false);
  assert!(sim.run_until(secs(30), |s| s.app(0, a).closed.is_some()));
  assert_eq!(sim.app(0, a).closed, Some(CloseReason::TimedOut));
  let took = sim.app(0, a).closed_at.unwrap().saturating_since(start);
  assert!(took >= secs(4) && took < secs(5), "{took:?}");
}

#[test]
fn abort_resets_the_peer() {
  let mut sim = Sim::new(2, 2, Config::default());
  sim.nodes[1].ep.set_listening(true);
  // The aborting side has not finished its stream: the RESET cuts it short
  let a = sim.connect(0, 1, payload(1, 1000), false);
  assert!(sim.run_until(secs(5), |s| s.nodes[1].accepted.len() == 1));
  let b = sim.nodes[1].accepted[0];
  assert!(sim.run_until(secs(5), |s| s.app(1, b).received.len() == 1000));
  let now = sim.now;
  sim.nodes[0].ep.abort(now, a);
  assert!(sim.run_until(secs(5), |s| s.app(1, b).closed.is_some()));
  assert_eq!(sim.app(1, b).closed, Some(CloseReason::Reset));
  assert_eq!(sim.app(0, a).closed, Some(CloseReason::Aborted));
}

#[test]
fn half_close_keeps_the_other_direction_open() {
  let mut sim = Sim::new(4, 2, Config::default());
  let (a, b) = bidirectional(&mut sim, 10_000, 0);
  sim.app_mut(1, b).finish = false;
  assert!(sim.run_until(secs(10), |s| s.app(1, b).eof));
  // The server has seen the client's FIN and still sends for a while
  let app = sim.app_mut(1, b);
  app.to_send = payload(2, 300_000);
  app.finish = true;
  assert!(sim.run_until(secs(60), |s| s.app(0, a).closed.is_some()
    && s.app(1, b).closed.is_some()));
  assert_transferred(&sim, a, b, 10_000, 300_000);
  assert_eq!(sim.app(1, b).closed, Some(CloseReason::Finished));
}

#[test]
fn packets_from_other_addresses_change_nothing() {
  let mut sim = Sim::new(6, 3, Config::default());
  let len = 400_000;
  let (a, b) = bidirectional(&mut sim, len, len);
  assert!(sim.run_until(secs(5), |s| s.app(1, b).received.len() > 10_000));
  let attacker = sim.addr(2);
  let client = sim.nodes[0].ep.connection_id(a).unwrap();
  let server = sim.nodes[1].ep.connection_id(b).unwrap();
  let mut rng = crate::Rng::new(99);
  for i in 0..3000u32 {
    let ty = [
      PacketType::Reset,
      PacketType::Data,
      PacketType::State,
      PacketType::Fin,
      PacketType::Syn,
    ][i as usize % 5];
    let header = Header {
      ty,
      conn_id: if i % 2 == 0 {
        server
      } else {
        server.wrapping_sub(1)
      },
      timestamp: rng.next_u64() as u32,
      timestamp_diff: 0,
      wnd_size: 0,
      seq_nr: SeqNr(rng.next_u16()),
      ack_nr: SeqNr(rng.next_u16()),
    };
    let mut buf = Vec::new();
    Packet {
      header,
      sack: None,
      ours: Ours::NONE,
      payload: b"evil",
    }
    .encode(&mut buf);
    sim.inject(1, attacker, buf);
    let header = Header {
      conn_id: client,
      ..header
    };
    let mut buf = Vec::new();
    Packet {
      header,
      sack: None,
      ours: Ours::NONE,
      payload: b"evil",
    }
    .encode(&mut buf);
    sim.inject(0, attacker, buf);
    let junk = payload(i as u64, 1 + rng.below(100) as usize);
    sim.inject(1, attacker, junk);
    sim.step();
  }
  assert!(sim.run_until(secs(120), |s| s.app(0, a).closed.is_some()
    && s.app(1, b).closed.is_some()));
  assert_transferred(&sim, a, b, len, len);
  assert_eq!(sim.app(0, a).closed, Some(CloseReason::Finished));
}

#[test]
fn foreign_datagrams_are_surfaced_not_answered() {
  let mut sim = Sim::new(8, 2, Config::default());
  sim.nodes[1].ep.set_listening(true);
  let stun = {
    let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    m.extend_from_slice(&[7; 12]);
    m
  };
  let from = sim.addr(0);
  sim.inject(1, from, b"UTPRS-probe".to_vec());
  sim.inject(1, from, stun.clone());
  sim.inject(1, from, vec![0x41; 10]);
  sim.nodes[1].log_sends = true;
  sim.run_until(secs(1), |_| false);
  assert_eq!(sim.nodes[1].foreign.len(), 3);
  assert_eq!(sim.nodes[1].foreign[1], stun);
  assert!(sim.nodes[1].sent_log.is_empty(), "nothing answered");
}

#[test]
fn many_connections_between_two_endpoints() {
  // 300 handshakes at once from one address: more than the default allows unconfirmed per
  // address (a SYN flood's bound), which `syns_past_the_per_address_bound_go_unanswered` tests
  let cfg = Config {
    max_unconfirmed_per_ip: 300,
    ..Config::default()
  };
  let mut sim = Sim::new(12, 2, cfg);
  sim.nodes[1].ep.set_listening(true);
  let handles: Vec<_> = (0..300)
    .map(|i| sim.connect(0, 1, payload(i, 3000), true))
    .collect();
  assert!(sim.run_until(secs(60), |s| s.nodes[1].accepted.len() == 300));
  for &h in &sim.nodes[1].accepted.clone() {
    sim.app_mut(1, h).finish = true;
  }
  assert!(sim.run_until(secs(120), |s| handles
    .iter()
    .all(|&h| s.app(0, h).closed.is_some())));
  let mut got: Vec<Vec<u8>> = sim.nodes[1].apps.values().map(|a| a.received.clone()).collect();
  let mut want: Vec<Vec<u8>> = (0..300).map(|i| payload(i, 3000)).collect();
  got.sort();
  want.sort();
  assert!(got == want);
}

#[test]
fn ledbat_holds_queueing_delay_near_target_at_a_bottleneck() {
  let cfg = Config {
    recv_buffer: 4 << 20,
    send_buffer: 4 << 20,
    ..Config::default()
  };
  let mut sim = Sim::new(13, 2, cfg);
  // 1 MB/s bottleneck, 20 ms each way, a deep (2 s) buffer that a loss-based sender would fill
  let link = Link {
    latency: Duration::from_millis(20),
    rate: Some(1_000_000),
    max_queue: secs(2),
    ..Link::default()
  };
  sim.set_link(0, 1, link);
  sim.nodes[1].ep.set_listening(true);
  let len = 60_000_000;
  let a = sim.connect(0, 1, payload(1, len), true);
  let start = sim.now;
  sim.run_until(secs(60), |_| false);
  let b = sim.nodes[1].accepted[0];
  let got = sim.app(1, b).received.len();
  let late: Vec<_> = sim
    .queue_samples
    .iter()
    .filter(|(t, link, _)| *link == (0, 1) && t.saturating_since(start) > secs(20))
    .map(|(_, _, d)| d.as_micros() as f64 / 1000.0)
    .collect();
  let mean = late.iter().sum::<f64>() / late.len() as f64;
  let goodput = got as f64 / 60.0;
  eprintln!(
    "ledbat: mean queueing delay {mean:.1} ms, goodput {goodput:.0} B/s, cwnd {}",
    sim.nodes[0].ep.connection_stats(a).unwrap().cwnd
  );
  assert!((50.0..=150.0).contains(&mean), "mean queueing delay {mean:.1} ms");
  assert!(goodput > 0.85 * 1_000_000.0, "goodput {goodput:.0} B/s");
}

#[test]
fn syn_answer_is_bep29_and_libutp_compatible() {
  let mut sim = Sim::new(14, 2, Config::default());
  sim.nodes[1].ep.set_listening(true);
  sim.nodes[1].log_sends = true;
  // An odd connection id, as libutp picks half the time (the original utp-punch refused these)
  let syn = Header {
    ty: PacketType::Syn,
    conn_id: 0x1235,
    timestamp: 1,
    timestamp_diff: 0,
    wnd_size: 1 << 20,
    seq_nr: SeqNr(500),
    ack_nr: SeqNr(0),
  };
  let mut buf = Vec::new();
  Packet {
    header: syn,
    sack: None,
    ours: Ours::NONE,
    payload: &[],
  }
  .encode(&mut buf);
  let from: std::net::SocketAddr = "10.9.9.9:9".parse().unwrap(); // a peer outside the simulation
  sim.inject(1, from, buf.clone());
  sim.run_until(Duration::from_millis(1), |_| false);
  sim.inject(1, from, buf); // repeated SYN: answered again, no second connection
  sim.run_until(Duration::from_millis(1), |_| false);
  // Announced only once the initiator confirms (below)
  assert_eq!(sim.nodes[1].accepted.len(), 0);
  assert_eq!(sim.nodes[1].ep.stats().unconfirmed_connections, 1);
  let answers: Vec<_> = sim.nodes[1]
    .sent_log
    .iter()
    .map(|d| packet::decode(d).unwrap().header)
    .collect();
  assert!(answers.len() >= 2);
  for h in &answers[..2] {
    assert_eq!(h.ty, PacketType::State);
    assert_eq!(h.conn_id, 0x1235, "responder sends with the SYN's id");
    assert_eq!(h.ack_nr, SeqNr(500));
  }
  // The initiator's follow-up uses id + 1
  let data = Header {
    ty: PacketType::Data,
    conn_id: 0x1236,
    seq_nr: SeqNr(501),
    ack_nr: answers[0].seq_nr.sub(1),
    ..syn
  };
  let mut buf = Vec::new();
  Packet {
    header: data,
    sack: None,
    ours: Ours::NONE,
    payload: b"hello",
  }
  .encode(&mut buf);
  sim.inject(1, from, buf);
  sim.run_until(Duration::from_millis(1), |_| false);
  assert_eq!(sim.nodes[1].accepted.len(), 1);
  let b = sim.nodes[1].accepted[0];
  assert_eq!(sim.app(1, b).received, b"hello");
}

#[test]
fn out_of_order_data_is_selectively_acked() {
  let mut sim = Sim::new(15, 2, Config::default());
  sim.nodes[1].ep.set_listening(true);
  sim.nodes[1].log_sends = true;
  let syn = Header {
    ty: PacketType::Syn,
    conn_id: 100,
    timestamp: 1,
    timestamp_diff: 0,
    wnd_size: 1 << 20,
    seq_nr: SeqNr(65534),
    ack_nr: SeqNr(0),
  };
  let from: std::net::SocketAddr = "10.9.9.9:9".parse().unwrap();
  let send = |sim: &mut Sim, h: Header, p: &[u8]| {
    let mut buf = Vec::new();
    Packet {
      header: h,
      sack: None,
      ours: Ours::NONE,
      payload: p,
    }
    .encode(&mut buf);
    sim.inject(1, from, buf);
    sim.run_until(Duration::from_millis(1), |_| false);
  };
  send(&mut sim, syn, &[]);
  let ack = packet::decode(&sim.nodes[1].sent_log[0])
    .unwrap()
    .header
    .seq_nr
    .sub(1);
  let data = |seq: u16| Header {
    ty: PacketType::Data,
    conn_id: 101,
    seq_nr: SeqNr(seq),
    ack_nr: ack,
    ..syn
  };
  // 65535 is missing; 0 and 2 arrive: ack stays at 65534, SACK bits 0 (seq 0) and 2 (seq 2)
  send(&mut sim, data(0), b"b");
  send(&mut sim, data(2), b"d");
  let last = sim.nodes[1].sent_log.last().unwrap().clone();
  let p = packet::decode(&last).unwrap();
  assert_eq!(p.header.ack_nr, SeqNr(65534));
  assert_eq!(
    p.sack.unwrap().acked(p.header.ack_nr).collect::<Vec<_>>(),
    vec![SeqNr(0), SeqNr(2)]
  );
  send(&mut sim, data(65535), b"a");
  send(&mut sim, data(1), b"c");
  let b = sim.nodes[1].accepted[0];
  assert_eq!(sim.app(1, b).received, b"abcd");
  let p = packet::decode(sim.nodes[1].sent_log.last().unwrap()).unwrap();
  assert_eq!(p.header.ack_nr, SeqNr(2));
  assert!(p.sack.is_none());
}

#[test]
fn a_peer_whose_nat_rebound_is_followed_once_told_its_new_address() {
  let mut sim = Sim::new(21, 2, Config::default());
  let len = 2_000_000;
  let (a, b) = bidirectional(&mut sim, len, len);
  assert!(sim.run_until(secs(10), |s| s.app(1, b).received.len() > 200_000
    && s.app(0, a).received.len() > 200_000));
  // Node 0's NAT rebinds: it now sends from another port, and what node 1 sends to the old one is lost
  let old = sim.addr(0);
  let moved: std::net::SocketAddr = "10.0.0.1:5999".parse().unwrap();
  sim.nodes[0].addr = moved;
  let reset_budget_before = sim.nodes[1].ep.stats().unmatched_packets;
  sim.run_until(Duration::from_millis(1500), |_| false);
  // Node 0's packets from the new port are not the connection's yet, but they are not answered with
  // RESET either (that would kill the connection before it could be re-aimed)
  assert!(sim.nodes[1].ep.stats().unmatched_packets > reset_budget_before);
  assert!(sim.app(0, a).closed.is_none() && sim.app(1, b).closed.is_none());
  // Told the new address (by a rendezvous server, say), node 1 re-aims the connection
  let now = sim.now;
  assert_eq!(sim.nodes[1].ep.migrate(now, b, moved), Ok(old));
  assert_eq!(sim.nodes[1].ep.remote_addr(b), Some(moved));
  assert!(sim.run_until(secs(60), |s| s.app(0, a).closed.is_some()
    && s.app(1, b).closed.is_some()));
  assert_transferred(&sim, a, b, len, len);
  assert_eq!(sim.app(1, b).closed, Some(CloseReason::Finished));
  // A closed or unknown connection cannot move
  let now = sim.now;
  assert_eq!(
    sim.nodes[1].ep.migrate(now, ConnectionHandle(9999), old),
    Err(MigrateError::UnknownConnection)
  );
}

#[test]
fn path_mtu_discovery_finds_the_largest_packet_the_path_carries() {
  let cfg = Config {
    pmtu_ceiling: 1448,
    ..Config::default()
  };
  for (limit, seed) in [(1472, 31), (1220, 32), (1030, 33)] {
    let mut sim = Sim::new(seed, 2, cfg);
    // `limit` bytes of UDP payload get through, with a little loss and reordering besides
    let link = Link {
      max_datagram: limit,
      loss_pct: 1.0,
      reorder_pct: 1.0,
      ..Link::default()
    };
    sim.set_link(0, 1, link);
    sim.nodes[0].log_sends = true;
    let len = 3_000_000;
    let (a, b) = bidirectional(&mut sim, len, len);
    assert!(sim.run_until(secs(120), |s| s.app(0, a).closed.is_some()
      && s.app(1, b).closed.is_some()));
    assert_transferred(&sim, a, b, len, len);
    // The largest DATA packet node 0 sent: what the search settled on
    let found = sim.nodes[0]
      .sent_log
      .iter()
      .filter_map(|d| packet::decode(d).ok())
      .filter(|p| p.header.ty == PacketType::Data)
      .map(|p| p.payload.len())
      .max()
      .unwrap_or(0);
    // A packet that ends a write carries 4 bytes of our extensions: the probes stood for those too
    let want = (limit - 24).clamp(1000, 1448);
    assert!(
      found <= want && want - found <= 16,
      "limit {limit}: payload {found}, want ~{want}"
    );
    let largest_utp = sim.nodes[0]
      .sent_log
      .iter()
      .filter(|d| !pmtu::is_pmtu(d))
      .map(Vec::len)
      .max()
      .unwrap_or(0);
    assert!(
      largest_utp <= limit,
      "limit {limit}: sent a {largest_utp}-byte uTP datagram"
    );
  }
}

#[test]
fn a_peer_that_vanishes_before_its_fin_does_not_hold_the_connection_forever() {
  let cfg = Config {
    idle_timeout: secs(5),
    ..Config::default()
  };
  let mut sim = Sim::new(41, 2, cfg);
  sim.nodes[1].ep.set_listening(true);
  // Node 0 sends everything and its FIN at once: the connection is never idle, so no keepalive is
  // ever answered before node 1 reads it all and vanishes without a FIN of its own
  let a = sim.connect(0, 1, payload(3, 200_000), true);
  assert!(sim.run_until(secs(30), |s| s.nodes[1]
    .accepted
    .first()
    .is_some_and(|&b| s.app(1, b).eof)));
  let vanished = sim.now;
  cut(&mut sim, 1, 0);
  cut(&mut sim, 0, 1);
  assert!(sim.run_until(secs(90), |s| s.app(0, a).closed.is_some()));
  let took = sim.app(0, a).closed_at.unwrap().saturating_since(vanished);
  // A peer of ours answers keepalives, so its silence is death: a notice after the idle timeout,
  // the close twice that after our first unanswered keepalive (a stranger, which may simply be
  // thinking, gets TCP's FIN_WAIT_2 minute: real_peers.rs)
  assert!(took <= secs(11) + Duration::from_millis(100), "took {took:?}");
  assert_eq!(sim.app(0, a).timeout_notices, 1);
  assert_eq!(sim.app(0, a).closed, Some(CloseReason::TimedOut));
}

/// A short silence limit on an idle connection whose peer is alive: the notice comes between
/// keepalives (as in utp-punch), and nothing closes
#[test]
fn a_short_silence_limit_notifies_and_closes_nothing() {
  let mut sim = Sim::new(8, 2, Config::default());
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, vec![], false);
  assert!(sim.run_until(secs(5), |s| s.app(0, a).connected));
  sim.nodes[0].ep.set_timeout(a, Some(Duration::from_millis(300)));
  sim.run_until(secs(5), |_| false);
  assert!(sim.app(0, a).timeout_notices >= 1);
  assert!(sim.app(0, a).closed.is_none(), "{:?}", sim.app(0, a).closed);
}

/// A short silence limit is for the notice: a live peer 250 ms away, with data outstanding, is not
/// killed at twice the limit before it could answer; an absurd limit does not overflow
#[test]
fn a_short_silence_limit_does_not_kill_a_slow_live_peer() {
  let mut sim = Sim::new(9, 2, Config::default());
  sim.set_link(
    0,
    1,
    Link {
      latency: Duration::from_millis(250),
      ..Link::default()
    },
  );
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, payload(4, 300_000), true);
  assert!(sim.run_until(secs(10), |s| s.app(0, a).connected));
  sim.nodes[0].ep.set_timeout(a, Some(Duration::from_millis(200)));
  assert!(sim.run_until(secs(60), |s| s.app(0, a).closed.is_some()
    || s.nodes[1].accepted.first().is_some_and(|&b| s.app(1, b).eof)));
  assert_ne!(sim.app(0, a).closed, Some(CloseReason::TimedOut));
  sim.nodes[0].ep.set_timeout(a, Some(Duration::MAX));
  sim.run_until(secs(5), |_| false);
}
