//! How connections end and move, checked at the edges: which reason a close gives, when a late
//! silence limit may close, what an ICMP report or a re-aimed path does at once. Written for
//! mutants that cargo-mutants found surviving (docs/mutation.md)

use std::time::Duration;

use super::sim::{payload, Link, Sim};
use super::{connected, cut, secs};
use crate::{CloseReason, Config};

/// Both streams complete, our FIN sent, and the peer's ACK of it lost for good (the peer closed and
/// left): the peer has everything, so the end is `Finished`, not a timeout
#[test]
fn a_peer_gone_after_both_fins_finished_the_connection() {
  let (mut sim, a, b) = connected(51, Config::default(), Vec::new());
  sim.app_mut(1, b).finish = true;
  assert!(sim.run_until(secs(10), |s| s.app(0, a).eof));
  cut(&mut sim, 1, 0);
  sim.app_mut(0, a).finish = true;
  assert!(sim.run_until(secs(90), |s| s.app(0, a).closed.is_some()));
  assert_eq!(sim.app(0, a).closed, Some(CloseReason::Finished));
}

/// The peer's stream is complete but ours is not (data unacknowledged when the path died): that is
/// a timeout, whatever the peer sent
#[test]
fn a_peer_gone_before_our_data_arrived_timed_out() {
  let (mut sim, a, b) = connected(52, Config::default(), Vec::new());
  sim.app_mut(1, b).finish = true;
  assert!(sim.run_until(secs(10), |s| s.app(0, a).eof));
  cut(&mut sim, 1, 0);
  cut(&mut sim, 0, 1);
  let app = sim.app_mut(0, a);
  app.to_send = payload(5, 50_000);
  app.finish = true;
  assert!(sim.run_until(secs(90), |s| s.app(0, a).closed.is_some()));
  assert_eq!(sim.app(0, a).closed, Some(CloseReason::TimedOut));
}

/// A silence limit set late, long after the peer went silent: the notice comes at once, and the
/// connection still gets the whole limit after it before it is closed
#[test]
fn a_late_silence_limit_notifies_first_and_closes_a_limit_later() {
  let (mut sim, a, _) = connected(53, Config::default(), Vec::new());
  sim.nodes[0].ep.set_timeout(a, None);
  cut(&mut sim, 1, 0);
  cut(&mut sim, 0, 1);
  sim.run_until(secs(100), |_| false);
  assert!(sim.app(0, a).closed.is_none() && sim.app(0, a).timeout_notices == 0);
  let set_at = sim.now;
  sim.nodes[0].ep.set_timeout(a, Some(secs(10)));
  assert!(sim.run_until(secs(60), |s| s.app(0, a).closed.is_some()));
  assert_eq!(sim.app(0, a).timeout_notices, 1);
  let took = sim.app(0, a).closed_at.unwrap().saturating_since(set_at);
  assert!(
    took >= secs(10) && took <= secs(11),
    "closed {took:?} after the limit was set"
  );
  assert_eq!(sim.app(0, a).closed, Some(CloseReason::TimedOut));
}

/// An ICMP unreachable fails a connection attempt at once, on a path that would never answer (no
/// RESET from a node that is not listening to do it instead)
#[test]
fn an_unreachable_report_fails_an_attempt_that_would_never_hear_back() {
  let mut sim = Sim::new(54, 2, Config::default());
  cut(&mut sim, 0, 1);
  let attempt = sim.connect(0, 1, Vec::new(), false);
  sim.run_until(Duration::from_millis(100), |_| false);
  let (now, to) = (sim.local_now(0), sim.addr(1));
  assert_eq!(sim.nodes[0].ep.handle_unreachable(now, to), 1);
  assert!(sim.run_until(Duration::from_millis(10), |s| s.app(0, attempt).closed.is_some()));
  assert_eq!(sim.app(0, attempt).closed, Some(CloseReason::Refused));
}

/// Re-aimed at a new address, a connection resends what is in flight there at once: the old path
/// lost it, and waiting for the timer would stall the stream for a second or more
#[test]
fn a_migrated_connection_resends_its_flight_at_once() {
  let (mut sim, a, b) = connected(55, Config::default(), Vec::new());
  cut(&mut sim, 0, 1);
  sim.app_mut(0, a).to_send = payload(6, 5000);
  sim.run_until(Duration::from_millis(50), |_| false);
  assert!(sim.nodes[0].ep.connection_stats(a).unwrap().in_flight > 0);
  // Node 1 moves to a new port; node 0 is told
  let moved: std::net::SocketAddr = "10.0.0.2:5999".parse().unwrap();
  sim.nodes[1].addr = moved;
  sim.set_link(0, 1, Link::default());
  let now = sim.local_now(0);
  sim.nodes[0].ep.migrate(now, a, moved).unwrap();
  assert!(sim.run_until(Duration::from_millis(100), |s| s.app(1, b).received.len() == 5000));
}

/// A black hole is large packets going unanswered: timeouts of a packet of the base size (which
/// every path takes) are plain loss and keep the size the search found
#[test]
fn timeouts_of_base_size_packets_are_not_a_black_hole() {
  let cfg = Config {
    pmtu_ceiling: 1448,
    ..Config::default()
  };
  let mut sim = Sim::new(56, 2, cfg);
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, Vec::new(), false);
  sim.run_until(secs(20), |_| false);
  let b = sim.nodes[1].accepted[0];
  assert_eq!(
    sim.nodes[0].ep.connection_stats(a).unwrap().max_payload,
    1448,
    "the search ended"
  );
  // Exactly one packet of the base size, lost twice
  cut(&mut sim, 0, 1);
  sim.app_mut(0, a).to_send = payload(7, 1000);
  sim.run_until(Duration::from_millis(3500), |_| false);
  assert!(sim.nodes[0].ep.connection_stats(a).unwrap().timeouts >= 2);
  sim.set_link(0, 1, Link::default());
  assert!(sim.run_until(secs(10), |s| s.app(1, b).received.len() == 1000));
  let st = sim.nodes[0].ep.connection_stats(a).unwrap();
  assert_eq!((st.black_holes, st.max_payload), (0, 1448));
}

/// A node that stops listening, and is gone, while a handshake it answered waits for the
/// initiator's confirmation: the initiator has the SYN-ACK and counts itself connected. It hears
/// a RESET at once instead of waiting out its timeout for a peer that will never answer
#[test]
fn an_initiator_whose_handshake_the_responder_forgot_is_reset_at_once() {
  let mut sim = Sim::new(53, 2, Config::default());
  sim.set_link(
    0,
    1,
    Link {
      latency: Duration::from_millis(100),
      ..Link::default()
    },
  );
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, Vec::new(), false);
  // The SYN arrived and was answered; the initiator's confirmation is still on the way
  assert!(sim.run_until(secs(1), |s| s.nodes[1].ep.stats().unconfirmed_connections == 1));
  let stopped = sim.now;
  sim.nodes[1].ep.set_listening(false);
  // Gone: what the initiator sends from now on is lost (what is on the way back still arrives)
  sim.links.insert(
    (0, 1),
    Link {
      latency: Duration::from_millis(100),
      loss_pct: 100.0,
      ..Link::default()
    },
  );
  assert!(sim.run_until(secs(30), |s| s.app(0, a).closed.is_some()));
  assert_eq!(sim.app(0, a).closed, Some(CloseReason::Reset));
  // One way of the path, after the SYN-ACK it follows
  assert!(sim.app(0, a).closed_at.unwrap().saturating_since(stopped) <= Duration::from_millis(101));
  assert!(sim.nodes[1].accepted.is_empty());
}
