//! Unsynchronised clocks: each node reads its own time, with an offset (so its 32-bit wire
//! timestamps wrap when they will) and a drift against the other's. Transfers must not care;
//! LEDBAT's one-way delays, the difference of two such clocks, drift with them

use std::time::Duration;

use super::sim::{payload, Clock, Link, Sim};
use super::{assert_transferred, secs};
use crate::{CloseReason, Config, ConnectionHandle, Instant};

const WRAP: u64 = 1 << 32;

/// The conversion back to simulation time rounds up, to the earliest moment the clock reads the
/// deadline, so a node woken for its deadline always finds it due
#[test]
fn a_deadline_converts_to_the_first_moment_the_local_clock_reaches_it() {
  for (offset, ppm) in [
    (0, 0.0),
    (7, 500.0),
    (WRAP - 3, -500.0),
    (3 * WRAP, 300.0),
    (0, -999_999.0),
  ] {
    let clock = Clock::new(Duration::from_micros(offset), ppm);
    for local in [
      0,
      1,
      offset,
      offset + 1,
      offset + 999,
      offset + 1_000_001,
      offset + 12_345_678_901,
    ] {
      let local = Instant::from_micros(local);
      let sim = clock.sim(local);
      assert!(
        clock.local(sim) >= local,
        "{clock:?}: {local:?} maps to {sim:?}, which reads {:?}",
        clock.local(sim)
      );
      if sim > Instant::ZERO {
        let before = Instant::from_micros(sim.as_micros() - 1);
        assert!(
          clock.local(before) < local,
          "{clock:?}: {sim:?} is not the earliest for {local:?}"
        );
      }
    }
  }
  assert_eq!(Clock::new(Duration::ZERO, 0.0), Clock::IDENTITY);
  let fast = Clock::new(secs(5), 500.0);
  assert_eq!(
    fast.local(Instant::from_micros(2_000_000)).as_micros(),
    5_000_000 + 2_001_000
  );
  let slow = Clock::new(Duration::ZERO, -500.0);
  assert_eq!(slow.local(Instant::from_micros(2_000_000)).as_micros(), 1_999_000);
}

/// The offset that makes a clock running `ppm` fast show the wire timestamp 0 (in its `laps`-th
/// lap of 2³² µs) at simulation time `at`
fn wrap_at(at: Instant, ppm: f64, laps: u64) -> Duration {
  let ticks = (at.as_micros() as f64 * (1.0 + ppm / 1e6)).round() as u64;
  Duration::from_micros(laps * WRAP - ticks)
}

const LEN_A: usize = 3_000_000;
const LEN_B: usize = 2_000_000;
const QUIET: Duration = Duration::from_secs(20);

/// Node 0 and node 1 exchange `LEN_A` and `LEN_B` bytes in two halves, idle for `QUIET` (longer
/// than the idle timeout, so only keepalives sent on time keep the connection quiet) in between,
/// through a bottleneck with buffers large enough to leave the pace to LEDBAT. Returns the
/// handles and when the first half arrived, the second began, and the second arrived
fn transfer_in_two_halves(sim: &mut Sim) -> (ConnectionHandle, ConnectionHandle, [Instant; 3]) {
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, payload(1, LEN_A / 2), false);
  assert!(sim.run_until(secs(10), |s| !s.nodes[1].accepted.is_empty()));
  let b = sim.nodes[1].accepted[0];
  sim.app_mut(1, b).to_send = payload(2, LEN_B / 2);
  let halves = |s: &Sim, n: usize| {
    s.app(1, b).received.len() == n * LEN_A / 2 && s.app(0, a).received.len() == n * LEN_B / 2
  };
  assert!(
    sim.run_until(secs(60), |s| halves(s, 1)),
    "seed {}: first half stalled at {} and {} bytes",
    sim.seed,
    sim.app(1, b).received.len(),
    sim.app(0, a).received.len()
  );
  let first = sim.now;
  sim.run_until(QUIET, |_| false);
  for (i, h) in [(0, a), (1, b)] {
    let app = sim.app(i, h);
    assert!(
      app.closed.is_none() && app.timeout_notices == 0,
      "node {i} after the quiet spell: closed {:?}, {} timeout notices",
      app.closed,
      app.timeout_notices
    );
  }
  let second = sim.now;
  sim.app_mut(0, a).to_send = payload(1, LEN_A);
  sim.app_mut(1, b).to_send = payload(2, LEN_B);
  sim.app_mut(0, a).finish = true;
  sim.app_mut(1, b).finish = true;
  assert!(
    sim.run_until(secs(60), |s| halves(s, 2)),
    "seed {}: second half stalled at {} and {} bytes",
    sim.seed,
    sim.app(1, b).received.len(),
    sim.app(0, a).received.len()
  );
  (a, b, [first, second, sim.now])
}

fn two_halves_sim() -> Sim {
  let cfg = Config {
    recv_buffer: 1 << 20,
    send_buffer: 1 << 20,
    ..Config::default()
  };
  let mut sim = Sim::new(31, 2, cfg);
  sim.set_link(
    0,
    1,
    Link {
      rate: Some(2_000_000),
      ..Link::default()
    },
  );
  sim
}

/// Both ends' wire timestamps wrap mid-transfer (node 0's in the first half, node 1's in the
/// second) while their clocks drift 1000 ppm apart: the data arrives intact, nothing times out
/// or is sent twice, keepalives hold the idle connection, and it takes as long as on one clock
#[test]
fn a_transfer_survives_wrapping_timestamps_and_drifting_clocks() {
  // The same transfer on one clock, for its timeline
  let mut sim = two_halves_sim();
  let start = sim.now;
  let (_, _, [first, second, end]) = transfer_in_two_halves(&mut sim);
  // Time spent transferring, the quiet spell left out
  let busy = |start: Instant, [first, second, end]: [Instant; 3]| {
    first.saturating_since(start) + end.saturating_since(second)
  };
  let reference = busy(start, [first, second, end]);
  let mid = |a: Instant, b: Instant| a + b.saturating_since(a) / 2;

  for (ppm_0, ppm_1) in [(500.0, -500.0), (-500.0, 500.0)] {
    let mut sim = two_halves_sim();
    // Node 0 in its first lap of 2³² µs, node 1 a few laps on
    sim.set_clock(0, wrap_at(mid(start, first), ppm_0, 1), ppm_0);
    sim.set_clock(1, wrap_at(mid(second, end), ppm_1, 3), ppm_1);
    let wire_start = [0, 1].map(|i| sim.local_now(i).wire_timestamp());
    let (a, b, times) = transfer_in_two_halves(&mut sim);
    let took = busy(start, times);
    let wire_end = [0, 1].map(|i| sim.local_now(i).wire_timestamp());
    let stats = [(0, a), (1, b)].map(|(i, h)| sim.nodes[i].ep.connection_stats(h).unwrap());
    eprintln!(
      "drift {ppm_0}/{ppm_1} ppm: transferring took {took:?} (one clock: {reference:?}); wire \
       timestamps {wire_start:x?} -> {wire_end:x?}; rtt {}/{} us, timeouts {}/{}, retransmits {}/{}",
      stats[0].rtt_us,
      stats[1].rtt_us,
      stats[0].timeouts,
      stats[1].timeouts,
      stats[0].retransmits,
      stats[1].retransmits,
    );
    for i in 0..2 {
      assert!(
        wire_end[i] < wire_start[i],
        "node {i}'s wire timestamps did not wrap during the transfer"
      );
      assert_eq!(stats[i].timeouts, 0, "drift {ppm_0}/{ppm_1}: node {i} timed out");
      assert_eq!(
        stats[i].retransmits, 0,
        "drift {ppm_0}/{ppm_1}: node {i} retransmitted"
      );
    }
    assert!(
      took <= reference + reference / 10,
      "drift {ppm_0}/{ppm_1}: took {took:?}, one clock {reference:?}"
    );
    assert!(sim.run_until(secs(60), |s| s.app(0, a).closed.is_some()
      && s.app(1, b).closed.is_some()));
    assert_transferred(&sim, a, b, LEN_A, LEN_B);
    for (i, h) in [(0, a), (1, b)] {
      let app = sim.app(i, h);
      assert_eq!(app.closed, Some(CloseReason::Finished), "node {i}");
      assert_eq!(app.timeout_notices, 0, "node {i} saw its peer go silent");
    }
  }
}

/// One 5-minute window of a long LEDBAT flow
#[derive(Debug)]
struct Window {
  /// Minutes since the flow started, at the window's end
  minute: u64,
  /// Median and 90th percentile of the real queue at the bottleneck, per packet sent, in ms
  median_queue_ms: f64,
  p90_queue_ms: f64,
  /// Bytes the receiving application got, per second
  goodput: f64,
  /// At the window's end: LEDBAT's own estimate of the queue, and its window
  estimated_queue_ms: f64,
  cwnd: usize,
  /// Over the window
  timeouts: u64,
  retransmits: u64,
}

const LINK_RATE: u64 = 1_000_000;
const WINDOW: Duration = Duration::from_secs(300);

/// One LEDBAT flow from node 0 to node 1 through a 1 MB/s bottleneck for `minutes`, the clocks
/// running `sender_ppm` and `receiver_ppm` fast; what the bottleneck saw, window by window
fn ledbat_under_drift(sender_ppm: f64, receiver_ppm: f64, minutes: u64) -> Vec<Window> {
  let cfg = Config {
    recv_buffer: 4 << 20,
    send_buffer: 4 << 20,
    ..Config::default()
  };
  let mut sim = Sim::new(13, 2, cfg);
  // As ledbat_holds_queueing_delay_near_target_at_a_bottleneck: 20 ms each way, a 2 s buffer
  sim.set_link(
    0,
    1,
    Link {
      latency: Duration::from_millis(20),
      rate: Some(LINK_RATE),
      max_queue: secs(2),
      ..Link::default()
    },
  );
  sim.set_clock(0, Duration::ZERO, sender_ppm);
  sim.set_clock(1, Duration::ZERO, receiver_ppm);
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, Vec::new(), false);
  let start = sim.now;
  let mut b: Option<ConnectionHandle> = None;
  let (mut received, mut timeouts, mut retransmits) = (0usize, 0, 0);
  let mut windows = Vec::new();
  let mut window_start = start;
  let chunk = vec![0x5a; 8 << 20];
  while sim.now.saturating_since(start) < secs(minutes * 60) {
    // An application that always has more to send, and reads everything at once
    let app = sim.app_mut(0, a);
    if app.to_send.len() - app.sent < chunk.len() {
      app.to_send.drain(..app.sent);
      app.sent = 0;
      app.to_send.extend_from_slice(&chunk);
    }
    sim.run_until(secs(1), |_| false);
    assert!(
      sim.app(0, a).closed.is_none(),
      "seed {}: the flow closed: {:?}",
      sim.seed,
      sim.app(0, a).closed
    );
    let b = *b.get_or_insert_with(|| sim.nodes[1].accepted[0]);
    let got = &mut sim.app_mut(1, b).received;
    received += got.len();
    got.clear();
    if sim.now.saturating_since(window_start) >= WINDOW {
      let stats = sim.nodes[0].ep.connection_stats(a).unwrap();
      let mut queue: Vec<f64> = sim
        .queue_samples
        .iter()
        .filter(|(_, link, _)| *link == (0, 1))
        .map(|(_, _, d)| d.as_micros() as f64 / 1000.0)
        .collect();
      queue.sort_by(f64::total_cmp);
      let at = |q: f64| {
        queue
          .get((queue.len() as f64 * q) as usize)
          .copied()
          .unwrap_or(f64::NAN)
      };
      let elapsed = sim.now.saturating_since(window_start).as_secs_f64();
      windows.push(Window {
        minute: sim.now.saturating_since(start).as_secs() / 60,
        median_queue_ms: at(0.5),
        p90_queue_ms: at(0.9),
        goodput: received as f64 / elapsed,
        estimated_queue_ms: stats.queuing_delay_us as f64 / 1000.0,
        cwnd: stats.cwnd,
        timeouts: stats.timeouts - timeouts,
        retransmits: stats.retransmits - retransmits,
      });
      (timeouts, retransmits) = (stats.timeouts, stats.retransmits);
      sim.queue_samples.clear();
      received = 0;
      window_start = sim.now;
    }
  }
  eprintln!("ledbat, sender {sender_ppm} ppm, receiver {receiver_ppm} ppm:");
  for w in &windows {
    eprintln!(
      "  to minute {:2}: queue median {:6.1} ms, p90 {:6.1} ms; goodput {:7.0} B/s; \
       LEDBAT's estimate {:6.1} ms, cwnd {:7}; timeouts {}, retransmits {}",
      w.minute,
      w.median_queue_ms,
      w.p90_queue_ms,
      w.goodput,
      w.estimated_queue_ms,
      w.cwnd,
      w.timeouts,
      w.retransmits
    );
  }
  windows
}

/// The last window of a long flow keeps the real queue near LEDBAT's 100 ms target, neither
/// above it (a drifting clock hiding a queue) nor well below it (drift taken for a queue), and
/// most of the link busy
fn assert_holds_target(windows: &[Window]) {
  let last = windows.last().expect("a whole window");
  assert!(
    (80.0..=150.0).contains(&last.median_queue_ms),
    "queue median {:.1} ms in the last window",
    last.median_queue_ms
  );
  assert!(
    last.goodput >= 0.5 * LINK_RATE as f64,
    "goodput {:.0} B/s in the last window",
    last.goodput
  );
}

/// One clock, one virtual hour: LEDBAT holds the target across base-delay bucket turnovers.
/// Before LEDBAT++'s slowdowns it did not: a lone flow keeps its queue standing at the target, so
/// once the empty-queue samples of its start left the base history, the base delay included that
/// queue and the real queue stepped up by another target (99 ms, then 198 ms from minute ~13,
/// 298 ms from ~26)
#[test]
fn ledbat_holds_its_target_for_an_hour_on_one_clock() {
  assert_holds_target(&ledbat_under_drift(0.0, 0.0, 60));
}

/// The receiver's clock runs fast: one-way delays grow 0.3 ms a second with no queue behind them.
/// Before the fixes LEDBAT read the growth as a queue (up to 13 minutes × 18 ms) and backed off to
/// its minimum window; the queuing delay is now clamped to the round trip, and the reverse base's
/// fall shifts the base. With the clamp alone the real queue settled at 58 ms (the estimate was
/// the whole round trip): the base the endpoint shares between connections to one peer kept
/// handing the connection its old minimum back, until the connection that set it kept it current
#[test]
fn ledbat_holds_its_target_when_the_receivers_clock_runs_fast() {
  assert_holds_target(&ledbat_under_drift(0.0, 300.0, 40));
}

/// The sender's clock runs fast: one-way delays shrink 0.3 ms a second, so the base delay is
/// always fresh and a real queue hides behind the falling delays. Before the fixes the queue grew
/// with the drift, 0.3 ms a second, to 943 ms by minute 40; the periodic slowdowns now show the
/// real base every few minutes
#[test]
fn ledbat_holds_its_target_when_the_senders_clock_runs_fast() {
  assert_holds_target(&ledbat_under_drift(300.0, 0.0, 40));
}
