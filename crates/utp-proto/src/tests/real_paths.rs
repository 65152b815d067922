//! Real paths (issue 11): long and changing round trips, dead peers, shrinking MTUs, bogus
//! timestamps, reordering, several flows. Each test rebuilds a case that failed before its fix

use std::time::Duration;

use super::sim::{payload, Link, Sim};
#[allow(unused_imports)]
use super::{cut, secs};
use crate::{CloseReason, Config};

fn ms(n: u64) -> Duration {
  Duration::from_millis(n)
}

/// A receiver whose sender vanished mid-stream (killed, or its host gone) closes with TimedOut
/// after the documented timeout: the notice after the idle timeout, the close as long again
#[test]
fn a_receiver_notices_its_sender_vanished_mid_stream() {
  let cfg = Config {
    idle_timeout: secs(5),
    ..Config::default()
  };
  let mut sim = Sim::new(21, 2, cfg);
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, payload(1, 50_000_000), true);
  assert!(
    sim.run_until(secs(10), |s| s.nodes[1].accepted.first().is_some_and(|&b| s
      .app(1, b)
      .received
      .len()
      > 1_000_000))
  );
  let b = sim.nodes[1].accepted[0];
  let vanished = sim.now;
  cut(&mut sim, 0, 1);
  cut(&mut sim, 1, 0);
  sim.nodes[0].apps.remove(&a);
  assert!(sim.run_until(secs(60), |s| s.app(1, b).closed.is_some()));
  assert_eq!(sim.app(1, b).closed, Some(CloseReason::TimedOut));
  assert_eq!(sim.app(1, b).timeout_notices, 1);
  let took = sim.now.saturating_since(vanished);
  assert!(took <= secs(11) + ms(200), "closed after {took:?}");
}
