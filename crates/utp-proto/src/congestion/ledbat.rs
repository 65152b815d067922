//! LEDBAT (RFC 6817) with LEDBAT++'s refinements: a background controller
//!
//! LEDBAT keeps the queue it builds at a bottleneck near a target delay (100 ms), so a uTP
//! transfer yields to TCP and interactive traffic. It measures one-way delay from the timestamps
//! peers echo, takes the minimum seen over the last minutes as the base (propagation) delay, and
//! steers the window by how far the current queuing delay is from the target.
//!
//! Real paths break the plain algorithm in three ways, each handled here:
//! - **A base delay that includes a queue.** A flow that starts while another keeps the queue
//!   full takes that queue for propagation delay and pushes the first flow out; a flow that never
//!   sees the queue empty lets its base creep up minute by minute. LEDBAT++
//!   (draft-irtf-iccrg-ledbat-plus-plus) slows down periodically: the window drops for two round
//!   trips (to two packets on a short path, by twice its share of the queue on a long one), the
//!   queue drains, every flow measures the true base, and the window climbs back in slow start.
//! - **Clocks that drift.** The samples are differences of two unsynchronised clocks; when one runs
//!   faster, delays one way rise and the other way fall at the same rate. As libutp does, a fall of
//!   the reverse base (our own measurements of the peer's packets) shifts our base up.
//! - **Bogus samples.** Old clients send uninitialised `timestamp_difference` values, and a clock
//!   may jump: a sample seconds away from the base is ignored, and only a run of them (a jump
//!   that stays) resets the history. Queuing delay never exceeds the round-trip time.

use core::time::Duration;

use super::{AckSample, CongestionEvent, Controller};
use crate::time::Instant;

//= https://datatracker.ietf.org/doc/html/rfc6817#section-2.5
//# TARGET MUST be 100 milliseconds or less
/// libutp `CCONTROL_TARGET`
pub const TARGET_DELAY: Duration = Duration::from_millis(100);
//= https://datatracker.ietf.org/doc/html/rfc6817#section-2.5
//# GAIN MUST be set to 1 or less
/// Packets the window may grow per round trip at zero queuing delay
const GAIN: f64 = 1.0;
/// Below this fraction of the target the queue counts as empty (see `on_ack`)
const EMPTY_QUEUE: f64 = 0.25;
/// Above the target the window shrinks by at most this fraction per round trip (LEDBAT++)
const MAX_DECREASE_PER_RTT: f64 = 0.5;
/// Slow start ends once queuing delay passes this fraction of the target (LEDBAT++'s 3/4):
/// exponential growth overshoots by a round trip's worth of window
const SLOW_START_EXIT: f64 = 0.75;
//= https://datatracker.ietf.org/doc/html/rfc6817#section-2.5
//# BASE_HISTORY SHOULD be 10
const BASE_HISTORY_MINUTES: usize = 10;
/// libutp `CUR_DELAY_SIZE`: the current delay is the minimum of this many recent samples
const CURRENT_SAMPLES: usize = 3;
/// A sample this far from the base is not a delay but garbage or a clock that jumped
const OUTLIER: u32 = 10_000_000;
/// Outliers in a row that mean the clock really jumped: start the history again
const OUTLIERS_TO_RESET: u32 = 16;
/// What old clients send as `timestamp_difference` when they have no measurement
const UNSET_DELAY: u32 = i32::MAX as u32;
/// LEDBAT++ slowdowns: how long the window stays at its floor, in round trips, and how many times
/// the duration of one slowdown passes before the next
const SLOWDOWN_ROUND_TRIPS: u32 = 2;
const SLOWDOWN_INTERVAL_FACTOR: u32 = 9;
/// Round trip assumed before the first sample
const DEFAULT_RTT: Duration = Duration::from_millis(100);

/// Minimum one-way delay over the last minutes, kept in one-minute buckets
///
/// Delays are wrapping 32-bit microsecond differences of two unsynchronised clocks, so they are
/// compared relative to each other, never as absolute values.
#[derive(Debug, Clone)]
struct BaseDelay {
  buckets: [u32; BASE_HISTORY_MINUTES],
  current_bucket: usize,
  bucket_started: Option<Instant>,
  outliers: u32,
}

fn wrapping_lt(a: u32, b: u32) -> bool {
  (b.wrapping_sub(a) as i32) > 0
}

fn wrapping_distance(a: u32, b: u32) -> u32 {
  (a.wrapping_sub(b) as i32).unsigned_abs()
}

impl BaseDelay {
  fn new() -> Self {
    Self {
      buckets: [0; BASE_HISTORY_MINUTES],
      current_bucket: 0,
      bucket_started: None,
      outliers: 0,
    }
  }

  /// Take a sample; false if it was rejected as an outlier
  fn add(&mut self, now: Instant, sample: u32) -> bool {
    let Some(start) = self.bucket_started else {
      self.reset(now, sample);
      return true;
    };
    if wrapping_distance(sample, self.base()) > OUTLIER {
      self.outliers += 1;
      if self.outliers >= OUTLIERS_TO_RESET {
        self.reset(now, sample);
        return true;
      }
      return false;
    }
    self.outliers = 0;
    if now.saturating_since(start) >= Duration::from_secs(60) {
      self.current_bucket = (self.current_bucket + 1) % BASE_HISTORY_MINUTES;
      self.buckets[self.current_bucket] = sample;
      self.bucket_started = Some(now);
    } else if wrapping_lt(sample, self.buckets[self.current_bucket]) {
      self.buckets[self.current_bucket] = sample;
    }
    true
  }

  fn reset(&mut self, now: Instant, sample: u32) {
    self.buckets = [sample; BASE_HISTORY_MINUTES];
    self.bucket_started = Some(now);
    self.outliers = 0;
  }

  fn is_set(&self) -> bool {
    self.bucket_started.is_some()
  }

  fn base(&self) -> u32 {
    let mut base = self.buckets[0];
    for &b in &self.buckets[1..] {
      if wrapping_lt(b, base) {
        base = b;
      }
    }
    base
  }

  /// Every bucket moves by `by` (clock drift compensation)
  fn shift(&mut self, by: u32) {
    for b in &mut self.buckets {
      *b = b.wrapping_add(by);
    }
  }
}

/// Where the periodic slowdown stands
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slowdown {
  /// Still in the initial slow start: the first slowdown is scheduled when it ends
  NotScheduled,
  /// The next slowdown begins at this time
  Due(Instant),
  /// The window is held at its floor until `until`; `saved` is what it returns to
  Frozen {
    until: Instant,
    saved: f64,
    started: Instant,
  },
  /// Climbing back to `saved` in slow start
  Recovering { saved: f64, started: Instant },
}

#[derive(Debug, Clone, Copy)]
struct Saved {
  cwnd: f64,
  ssthresh: f64,
  slow_start: bool,
}

/// LEDBAT with slow start and LEDBAT++'s multiplicative decrease and periodic slowdowns
#[derive(Debug, Clone)]
pub struct Ledbat {
  cwnd: f64,
  max_window: usize,
  min_window: usize,
  slow_start: bool,
  ssthresh: f64,
  base: BaseDelay,
  /// Base of the reverse direction, for clock drift
  reverse_base: BaseDelay,
  recent: [u32; CURRENT_SAMPLES],
  recent_len: usize,
  recent_next: usize,
  queuing_delay: Duration,
  target: Duration,
  slowdown: Slowdown,
  saved: Option<Saved>,
}

impl Ledbat {
  /// A controller starting at `initial_window` bytes, never exceeding `max_window`
  pub fn new(initial_window: usize, min_window: usize, max_window: usize) -> Self {
    Self {
      cwnd: initial_window.min(max_window) as f64,
      max_window,
      min_window,
      slow_start: true,
      ssthresh: max_window as f64,
      base: BaseDelay::new(),
      reverse_base: BaseDelay::new(),
      recent: [0; CURRENT_SAMPLES],
      recent_len: 0,
      recent_next: 0,
      queuing_delay: Duration::ZERO,
      target: TARGET_DELAY,
      slowdown: Slowdown::NotScheduled,
      saved: None,
    }
  }

  /// Change the ceiling (for example when the send buffer changes)
  pub fn set_max_window(&mut self, max_window: usize) {
    self.max_window = max_window;
    self.cwnd = self.cwnd.min(max_window as f64);
  }

  /// The reverse direction's base fell: if that is drift, ours rose as much
  fn record_reverse(&mut self, now: Instant, sample: u32) {
    if sample == UNSET_DELAY {
      return;
    }
    let before = self.reverse_base.is_set().then(|| self.reverse_base.base());
    if !self.reverse_base.add(now, sample) {
      return;
    }
    if let Some(before) = before {
      let after = self.reverse_base.base();
      if wrapping_lt(after, before) && self.base.is_set() {
        self.base.shift(before.wrapping_sub(after));
      }
    }
  }

  fn record_delay(&mut self, now: Instant, sample: u32, rtt: Option<Duration>) {
    if sample == UNSET_DELAY || !self.base.add(now, sample) {
      return;
    }
    self.recent[self.recent_next] = sample;
    self.recent_next = (self.recent_next + 1) % CURRENT_SAMPLES;
    self.recent_len = (self.recent_len + 1).min(CURRENT_SAMPLES);
    let mut current = self.recent[0];
    for &s in &self.recent[1..self.recent_len] {
      if wrapping_lt(s, current) {
        current = s;
      }
    }
    let queued = current.wrapping_sub(self.base.base()) as i32;
    let mut delay = Duration::from_micros(queued.max(0) as u64);
    // A queue on the way out cannot hold a packet longer than the whole round trip took
    if let Some(rtt) = rtt {
      delay = delay.min(rtt);
    }
    self.queuing_delay = delay;
  }

  /// LEDBAT++ §4.4: run the periodic slowdown; true while it holds the window
  fn run_slowdown(&mut self, now: Instant, rtt: Duration, mss: f64) -> bool {
    match self.slowdown {
      Slowdown::NotScheduled => false,
      Slowdown::Due(at) if now >= at => {
        self.slowdown = Slowdown::Frozen {
          until: now + rtt * SLOWDOWN_ROUND_TRIPS,
          saved: self.cwnd,
          started: now,
        };
        // Enough to drain the queue: our share of it is `cwnd · queue / rtt`, taken out twice
        // over. On a short path that is two packets (LEDBAT++'s floor); on a long one most of the
        // window stays, and the climb back costs a round trip instead of ten
        let queue_share = self.queuing_delay.as_secs_f64() / rtt.as_secs_f64().max(1e-3);
        let drained = self.cwnd * (1.0 - 2.0 * queue_share.min(0.5));
        self.cwnd = drained.max(2.0 * mss).max(self.min_window as f64);
        true
      }
      Slowdown::Due(_) => false,
      Slowdown::Frozen {
        until,
        saved,
        started,
      } => {
        if now < until {
          return true;
        }
        self.slow_start = true;
        self.ssthresh = saved;
        self.slowdown = Slowdown::Recovering { saved, started };
        false
      }
      Slowdown::Recovering { saved, started } => {
        if !self.slow_start || self.cwnd >= saved {
          let took = now.saturating_since(started);
          self.slowdown = Slowdown::Due(now + took * SLOWDOWN_INTERVAL_FACTOR);
        }
        false
      }
    }
  }

  fn save(&mut self) {
    self.saved = Some(Saved {
      cwnd: self.cwnd,
      ssthresh: self.ssthresh,
      slow_start: self.slow_start,
    });
  }
}

impl Controller for Ledbat {
  fn on_ack(&mut self, now: Instant, ack: &AckSample) {
    if let Some(reverse) = ack.reverse_delay {
      self.record_reverse(now, reverse);
    }
    if let Some(delay) = ack.one_way_delay {
      self.record_delay(now, delay, ack.rtt_sample.or(ack.srtt));
    }
    let rtt = ack.srtt.unwrap_or(DEFAULT_RTT);
    let mss = ack.mss.max(1) as f64;
    if self.run_slowdown(now, rtt, mss) || ack.bytes_acked == 0 {
      return;
    }
    let target = self.target.as_micros() as f64;
    let queued = self.queuing_delay.as_micros() as f64;
    let gain = if queued > target {
      // Above the target, shrink in proportion to the overshoot, by up to half the window per
      // round trip (LEDBAT++'s multiplicative decrease): a standing queue that a TCP flow built,
      // or our own slow-start overshoot, must clear within a few round trips. RFC 6817's linear
      // decrease took tens of seconds there and left TCP a fifth less than it gets alone.
      -(queued / target - 1.0).min(MAX_DECREASE_PER_RTT) * ack.bytes_acked as f64
    } else if ack.window_limited && queued < EMPTY_QUEUE * target {
      // The queue is (nearly) empty: capacity is free, typically because another flow is in its
      // slowdown. Taking it at half the slow-start rate is what moves shares between flows: the
      // flow in its slowdown climbs back only until the queue passes 3/4 of the target
      0.5 * ack.bytes_acked as f64
    } else if ack.window_limited {
      //= https://datatracker.ietf.org/doc/html/rfc6817#section-2.4.2
      //# cwnd += GAIN * off_target * bytes_newly_acked * MSS / cwnd
      GAIN * (target - queued) / target * ack.bytes_acked as f64 * mss / self.cwnd
    } else {
      // A sender that is not filling its window learns nothing about the path: don't grow
      0.0
    };
    let mut next = self.cwnd + gain;
    if self.slow_start {
      if queued > SLOW_START_EXIT * target {
        self.slow_start = false;
        self.ssthresh = self.cwnd;
      } else if ack.window_limited {
        next = next.max(self.cwnd + ack.bytes_acked as f64);
        if next >= self.ssthresh {
          // Slow start ends at the threshold, it doesn't jump past it
          next = self.ssthresh.max(self.cwnd);
          self.slow_start = false;
        }
      }
      if !self.slow_start && self.slowdown == Slowdown::NotScheduled {
        // The first slowdown comes two round trips after the initial slow start
        self.slowdown = Slowdown::Due(now + rtt * SLOWDOWN_ROUND_TRIPS);
      }
    }
    self.cwnd = next.clamp(self.min_window as f64, self.max_window as f64);
  }

  fn on_congestion_event(&mut self, now: Instant, event: CongestionEvent, mss: usize) {
    self.save();
    if let Slowdown::Frozen { started, .. } | Slowdown::Recovering { started, .. } = self.slowdown {
      // A loss ends the slowdown where it stands: what it was climbing back to is stale now
      self.slowdown = Slowdown::Due(now + now.saturating_since(started) * SLOWDOWN_INTERVAL_FACTOR);
    }
    match event {
      CongestionEvent::Loss => {
        self.cwnd = (self.cwnd / 2.0).max(self.min_window as f64);
        self.ssthresh = self.cwnd;
        self.slow_start = false;
      }
      CongestionEvent::Timeout => {
        self.ssthresh = (self.cwnd / 2.0).max(self.min_window as f64);
        self.cwnd = (mss as f64).clamp(self.min_window as f64, self.max_window as f64);
        self.slow_start = true;
      }
    }
    if self.slowdown == Slowdown::NotScheduled && !self.slow_start {
      self.slowdown = Slowdown::Due(now + DEFAULT_RTT * SLOWDOWN_ROUND_TRIPS);
    }
  }

  fn window(&self) -> usize {
    self.cwnd as usize
  }

  fn queuing_delay(&self) -> Duration {
    self.queuing_delay
  }

  fn in_slow_start(&self) -> bool {
    self.slow_start
  }

  fn base_delay(&self) -> Option<u32> {
    self.base.is_set().then(|| self.base.base())
  }

  fn share_base_delay(&mut self, now: Instant, base: u32) {
    if self.base.is_set() && wrapping_lt(base, self.base.base()) {
      self.base.add(now, base);
    }
  }

  fn undo(&mut self) {
    if let Some(s) = self.saved.take() {
      self.cwnd = s.cwnd;
      self.ssthresh = s.ssthresh;
      self.slow_start = s.slow_start;
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use proptest::prelude::*;

  fn ack(bytes: usize, in_flight: usize, delay: u32) -> AckSample {
    AckSample {
      one_way_delay: Some(delay),
      ..AckSample::new(bytes, in_flight, 1000)
    }
  }

  #[test]
  fn grows_below_target_and_shrinks_above() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(10_000, 1000, 1_000_000);
    // Base delay 5 ms (with an arbitrary clock offset), no queue: window grows
    c.on_ack(t(0), &ack(1000, 10_000, 3_000_000_000));
    let w0 = c.window();
    for i in 1..50 {
      c.on_ack(t(i * 1000), &ack(1000, c.window(), 3_000_000_000));
    }
    assert!(c.window() > w0);
    // Queue of 300 ms: slow start ends and the window shrinks every ack
    let before = c.window();
    for i in 0..100 {
      c.on_ack(t(100_000 + i * 1000), &ack(1000, c.window(), 3_000_300_000));
    }
    assert!(!c.in_slow_start());
    assert!(c.window() < before);
    assert!(c.queuing_delay() >= Duration::from_millis(299));
  }

  /// GAIN 1: with a queue of half the target, half a packet per window
  #[test]
  fn congestion_avoidance_grows_at_most_one_packet_per_window() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(20_000, 1000, 1_000_000);
    c.slow_start = false;
    c.slowdown = Slowdown::Due(t(u64::MAX / 2));
    c.on_ack(t(0), &ack(0, 20_000, 5_000));
    for i in 1..=3 {
      c.on_ack(t(i), &ack(0, 20_000, 55_000)); // the current delay is the least of three
    }
    for i in 4..24 {
      c.on_ack(t(i), &ack(1000, 20_000, 55_000));
    }
    let grew = c.window() - 20_000;
    assert!((450..=500).contains(&grew), "grew {grew} in one window");
  }

  /// An empty queue (another flow in its slowdown, or one that left) is taken at half the
  /// slow-start rate
  #[test]
  fn an_empty_queue_is_filled_quickly() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(20_000, 1000, 1_000_000);
    c.slow_start = false;
    c.slowdown = Slowdown::Due(t(u64::MAX / 2));
    for i in 0..20 {
      c.on_ack(t(i), &ack(1000, 20_000, 5_000));
    }
    assert_eq!(c.window(), 30_000);
  }

  #[test]
  fn each_loss_halves_and_undo_restores() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(64_000, 1000, 1_000_000);
    c.on_congestion_event(t(1_000_000), CongestionEvent::Loss, 1000);
    assert_eq!(c.window(), 32_000);
    c.on_congestion_event(t(1_050_000), CongestionEvent::Loss, 1000);
    assert_eq!(c.window(), 16_000);
    c.on_congestion_event(t(1_300_000), CongestionEvent::Timeout, 1000);
    assert_eq!(c.window(), 1000);
    assert!(c.in_slow_start());
    c.undo();
    assert_eq!(c.window(), 16_000);
    assert!(!c.in_slow_start());
  }

  #[test]
  fn wrapping_delays_compare_correctly() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(10_000, 1000, 1_000_000);
    c.on_ack(t(0), &ack(0, 0, u32::MAX - 1000));
    c.on_ack(t(1), &ack(0, 0, 49_000)); // 50 ms later across the wrap
    c.on_ack(t(2), &ack(0, 0, 49_000));
    c.on_ack(t(3), &ack(0, 0, 49_000));
    assert_eq!(c.queuing_delay(), Duration::from_micros(50_001));
  }

  /// One uninitialised `timestamp_difference` (INT_MAX) or a random one must not become the base:
  /// every real sample after it would look like a queue of seconds and starve the window
  #[test]
  fn bogus_delay_samples_are_ignored() {
    let t = Instant::from_micros;
    for bogus in [UNSET_DELAY, 3_900_000_000, 1] {
      let mut c = Ledbat::new(10_000, 1000, 1_000_000);
      c.on_ack(t(0), &ack(1000, 10_000, 2_000_000_000));
      c.on_ack(t(1000), &ack(1000, 10_000, bogus));
      for i in 2..200 {
        c.on_ack(t(i * 1000), &ack(1000, c.window(), 2_000_010_000));
      }
      assert_eq!(c.queuing_delay(), Duration::from_millis(10), "bogus {bogus}");
      assert!(c.window() > 100_000, "bogus {bogus}: window {}", c.window());
    }
  }

  /// A sample exactly OUTLIER from the base is still a delay, one more is an outlier; sixteen
  /// outliers in a row mean the clock jumped and the base starts again from the sixteenth, but
  /// any sample taken in between starts the count again
  #[test]
  fn outliers_are_judged_at_their_bound_and_sixteen_in_a_row_reset_the_base() {
    let t = Instant::from_micros;
    let far = 1_000_001 + OUTLIER;
    let mut b = BaseDelay::new();
    assert!(b.add(t(0), 1_000_000));
    assert!(b.add(t(1), 1_000_000 + OUTLIER), "at the bound: a delay");
    for i in 0..OUTLIERS_TO_RESET - 1 {
      assert!(!b.add(t(2 + i as u64), far), "outlier {}", i + 1);
    }
    assert!(b.add(t(20), 1_000_500), "a real sample between them");
    for i in 0..OUTLIERS_TO_RESET - 1 {
      assert!(!b.add(t(21 + i as u64), far), "outlier {} after it", i + 1);
    }
    assert_eq!(b.base(), 1_000_000);
    assert!(b.add(t(40), far), "the sixteenth in a row resets");
    assert_eq!(b.base(), far);
    assert!(b.add(t(41), far + 5_000));
    assert_eq!(b.base(), far);
  }

  /// A lower ceiling (a smaller send buffer) takes effect at once and holds growth below it
  #[test]
  fn a_lower_maximum_window_cuts_the_window_and_caps_growth() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(100_000, 1000, 1_000_000);
    c.set_max_window(50_000);
    assert_eq!(c.window(), 50_000);
    for i in 0..200 {
      c.on_ack(t(i * 1000), &ack(1000, c.window(), 1_000_000));
    }
    assert_eq!(c.window(), 50_000);
  }

  /// One LEDBAT++ slowdown step by step: it drains our share of the queue (twice
  /// `cwnd · queue / rtt`), holds the window for two round trips up to the exact instant, then
  /// climbs back in slow start; the next is due nine durations after the one that ended, once
  /// the window is back or slow start ended early
  #[test]
  fn a_slowdown_drains_holds_recovers_and_schedules_the_next() {
    let ms = |m: u64| Instant::from_micros(m * 1000);
    let rtt = Duration::from_millis(100);
    for leave_slow_start_early in [false, true] {
      let mut c = Ledbat::new(50_000, 1000, 1_000_000);
      c.slowdown = Slowdown::Due(ms(1000));
      c.queuing_delay = Duration::from_millis(20);
      assert!(!c.run_slowdown(ms(999), rtt, 1000.0), "not due yet");
      assert!(c.run_slowdown(ms(1000), rtt, 1000.0));
      assert!((c.cwnd - 30_000.0).abs() < 1e-6, "{}", c.cwnd);
      assert!(c.run_slowdown(ms(1199), rtt, 1000.0), "held");
      assert!(
        !c.run_slowdown(ms(1200), rtt, 1000.0),
        "released after two round trips"
      );
      assert!(c.slow_start);
      assert_eq!(c.ssthresh, 50_000.0);
      assert!(matches!(c.slowdown, Slowdown::Recovering { .. }));
      if leave_slow_start_early {
        c.slow_start = false;
      } else {
        c.cwnd = 49_999.0;
        c.run_slowdown(ms(1300), rtt, 1000.0);
        assert!(
          matches!(c.slowdown, Slowdown::Recovering { .. }),
          "still climbing"
        );
        c.cwnd = 50_000.0;
      }
      c.run_slowdown(ms(1400), rtt, 1000.0);
      assert!(
        matches!(c.slowdown, Slowdown::Due(at) if at == ms(1400 + 400 * 9)),
        "{:?}",
        c.slowdown
      );
    }
  }

  /// A clock that jumps and stays there resets the history instead of starving forever
  #[test]
  fn a_clock_jump_that_stays_resets_the_base() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(10_000, 1000, 1_000_000);
    c.on_ack(t(0), &ack(1000, 10_000, 1_000_000));
    for i in 1..40 {
      c.on_ack(t(i * 1000), &ack(1000, c.window(), 1_000_000 + 3_600_000_000));
    }
    assert_eq!(c.queuing_delay(), Duration::ZERO);
  }

  /// The queuing delay is clamped to the round trip (both references do this)
  #[test]
  fn queuing_delay_never_exceeds_the_round_trip() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(10_000, 1000, 1_000_000);
    c.on_ack(t(0), &ack(1000, 10_000, 1_000_000));
    let a = AckSample {
      rtt_sample: Some(Duration::from_millis(40)),
      ..ack(1000, 10_000, 1_500_000)
    };
    for i in 1..5 {
      c.on_ack(t(i), &a);
    }
    assert_eq!(c.queuing_delay(), Duration::from_millis(40));
  }

  /// When the peer's clock runs fast, our samples rise and its (our reverse samples) fall by as
  /// much: the fall moves our base up, so drift is not mistaken for a growing queue
  #[test]
  fn clock_drift_shifts_the_base() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(10_000, 1000, 1_000_000);
    for minute in 0..30u64 {
      let drift = (minute * 60 * 300) as u32; // 300 ppm: 18 ms a minute
      for i in 0..60 {
        let a = AckSample {
          reverse_delay: Some(2_000_000u32.wrapping_sub(drift)),
          ..ack(0, 0, 1_000_000 + drift)
        };
        c.on_ack(t((minute * 60 + i) * 1_000_000), &a);
      }
    }
    assert!(
      c.queuing_delay() < Duration::from_millis(5),
      "{:?}",
      c.queuing_delay()
    );
  }

  /// LEDBAT++: two round trips after slow start, the window drops to two packets for two round
  /// trips, climbs back, and the next slowdown comes nine times that duration later
  #[test]
  fn slows_down_periodically() {
    let t = |ms: u64| Instant::from_micros(ms * 1000);
    let mut c = Ledbat::new(10_000, 1000, 1_000_000);
    let rtt = AckSample {
      srtt: Some(Duration::from_millis(100)),
      ..ack(1000, 0, 1_000_000)
    };
    let mut ms = 0;
    let mut floor_seen = Vec::new();
    // Queue at 80 ms: slow start ends at once, then the window hovers
    for _ in 0..60_000 {
      ms += 1;
      let a = AckSample {
        in_flight: c.window(),
        one_way_delay: Some(if ms < 3 { 1_000_000 } else { 1_080_000 }),
        ..rtt
      };
      c.on_ack(t(ms), &a);
      if c.window() <= 2000 {
        floor_seen.push(ms);
      }
    }
    assert!(
      floor_seen.first().is_some_and(|&f| (150..400).contains(&f)),
      "{:?}",
      floor_seen.first()
    );
    let episodes = floor_seen.windows(2).filter(|w| w[1] - w[0] > 1000).count() + 1;
    assert!((2..=40).contains(&episodes), "{episodes} slowdowns in a minute");
  }

  /// The lowest delay seen is the base for BASE_HISTORY_MINUTES whole minutes, one bucket per
  /// minute, and then ages out: the buckets are used in turn, every one of them
  #[test]
  fn the_base_delay_is_the_minimum_of_the_last_ten_minutes() {
    let minute = |m: u64| Instant::from_micros(m * 60_000_000 + 1);
    let mut b = BaseDelay::new();
    b.add(minute(0), 1_000);
    for m in 1..BASE_HISTORY_MINUTES as u64 {
      assert!(b.add(minute(m), 5_000 + m as u32));
      assert_eq!(b.base(), 1_000, "minute {m}");
    }
    // The eleventh minute overwrites the first one's bucket: the next lowest is now the base
    b.add(minute(BASE_HISTORY_MINUTES as u64), 9_000);
    assert_eq!(b.base(), 5_001);
    b.add(minute(BASE_HISTORY_MINUTES as u64 + 1), 9_000);
    assert_eq!(b.base(), 5_002);
  }

  /// Another connection to the same peer (same clocks, same path) that saw a lower base delay
  /// lowers ours; a higher one, or one offered before we measured anything, changes nothing
  #[test]
  fn a_lower_base_delay_shared_by_a_sibling_connection_is_adopted() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(10_000, 1000, 1_000_000);
    c.share_base_delay(t(0), 3_000);
    assert_eq!(c.base_delay(), None);
    c.on_ack(t(1_000), &ack(1000, 10_000, 50_000));
    assert_eq!(c.base_delay(), Some(50_000));
    c.share_base_delay(t(2_000), 80_000);
    assert_eq!(c.base_delay(), Some(50_000));
    c.share_base_delay(t(3_000), 20_000);
    assert_eq!(c.base_delay(), Some(20_000));
  }

  /// The first loss ends the initial slow start and schedules the first periodic slowdown two
  /// round trips later (LEDBAT++); a loss during slow start after a timeout does not
  #[test]
  fn the_first_loss_schedules_the_periodic_slowdown() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(64_000, 1000, 1_000_000);
    assert_eq!(c.slowdown, Slowdown::NotScheduled);
    c.on_congestion_event(t(1_000_000), CongestionEvent::Timeout, 1000);
    assert!(c.in_slow_start());
    assert_eq!(c.slowdown, Slowdown::NotScheduled, "still in slow start");
    c.on_congestion_event(t(2_000_000), CongestionEvent::Loss, 1000);
    assert_eq!(
      c.slowdown,
      Slowdown::Due(t(2_000_000) + DEFAULT_RTT * SLOWDOWN_ROUND_TRIPS)
    );
  }

  /// Slow start ends when the queue passes three quarters of the target, not at it: 75 ms of
  /// queue keeps growing, 75.001 ms stops
  #[test]
  fn slow_start_ends_past_three_quarters_of_the_target() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(10_000, 1000, 1_000_000);
    c.on_ack(t(0), &ack(1000, c.window(), 1_000_000));
    for i in 1..=3 {
      c.on_ack(t(i * 1000), &ack(1000, c.window(), 1_075_000));
    }
    assert_eq!(c.queuing_delay(), Duration::from_millis(75));
    assert!(c.in_slow_start(), "exactly 3/4 of the target");
    for i in 4..=6 {
      c.on_ack(t(i * 1000), &ack(1000, c.window(), 1_075_001));
    }
    assert!(!c.in_slow_start(), "past 3/4 of the target");
  }

  /// Below a quarter of the target the queue counts as empty and the window takes half of what
  /// was acknowledged; from a quarter on, RFC 6817's off-target gain applies
  #[test]
  fn a_queue_under_a_quarter_of_the_target_counts_as_empty() {
    let t = Instant::from_micros;
    for (queue, growth) in [
      (0, 500.0),
      (10_000, 500.0),
      (24_999, 500.0),
      (25_000, 37.5),
      (50_000, 25.0),
    ] {
      let mut c = Ledbat::new(20_000, 1000, 1_000_000);
      c.slow_start = false;
      c.slowdown = Slowdown::Due(t(u64::MAX / 2));
      c.on_ack(t(0), &ack(0, 20_000, 1_000_000));
      for i in 1..=3 {
        c.on_ack(t(i), &ack(0, 20_000, 1_000_000 + queue));
      }
      assert_eq!(c.queuing_delay(), Duration::from_micros(queue.into()));
      c.on_ack(t(4), &ack(1000, 20_000, 1_000_000 + queue));
      assert!(
        (c.cwnd - 20_000.0 - growth).abs() < 1e-9,
        "queue {queue} µs: grew {}",
        c.cwnd - 20_000.0
      );
    }
  }

  /// A loss during a slowdown ends it where it stands; the next one is due nine times as long
  /// after the loss as the slowdown had lasted
  #[test]
  fn a_loss_during_a_slowdown_schedules_the_next_nine_durations_later() {
    let ms = |m: u64| Instant::from_micros(m * 1000);
    let rtt = Duration::from_millis(100);
    for recovering in [false, true] {
      let mut c = Ledbat::new(50_000, 1000, 1_000_000);
      c.slowdown = Slowdown::Due(ms(1000));
      assert!(c.run_slowdown(ms(1000), rtt, 1000.0));
      let lost_at = if recovering {
        c.run_slowdown(ms(1200), rtt, 1000.0);
        assert!(matches!(c.slowdown, Slowdown::Recovering { .. }));
        ms(1300)
      } else {
        ms(1050)
      };
      c.on_congestion_event(lost_at, CongestionEvent::Loss, 1000);
      let lasted = lost_at.saturating_since(ms(1000));
      assert_eq!(
        c.slowdown,
        Slowdown::Due(lost_at + lasted * SLOWDOWN_INTERVAL_FACTOR),
        "recovering {recovering}"
      );
    }
  }

  /// A timeout restarts slow start from one packet towards half the window it had
  #[test]
  fn a_timeout_sets_the_threshold_to_half_the_window() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(64_000, 1000, 1_000_000);
    c.on_congestion_event(t(1_000_000), CongestionEvent::Timeout, 1000);
    assert_eq!((c.window(), c.ssthresh), (1000, 32_000.0));
    c.on_congestion_event(t(2_000_000), CongestionEvent::Timeout, 1000);
    assert_eq!(
      (c.window(), c.ssthresh),
      (1000, 1000.0),
      "never below the minimum window"
    );
  }

  /// Only a fall of the reverse base (the peer's clock running fast) moves ours. When the
  /// reverse base rises because its lowest minute aged out, ours stays where it is
  #[test]
  fn a_reverse_base_that_rises_leaves_ours_alone() {
    let minute = |m: u64| Instant::from_micros(m * 60_000_000 + 1);
    let mut c = Ledbat::new(10_000, 1000, 1_000_000);
    for m in 0..=BASE_HISTORY_MINUTES as u64 {
      let reverse = if m == 0 { 1_000 } else { 5_000 };
      let a = AckSample {
        reverse_delay: Some(reverse),
        ..ack(0, 0, 50_000)
      };
      c.on_ack(minute(m), &a);
    }
    assert_eq!(c.reverse_base.base(), 5_000, "the lowest minute aged out");
    assert_eq!(c.base_delay(), Some(50_000));
  }

  /// A base offered by a sibling before we measured anything is ignored, even one that is
  /// lower than an unset base's zero buckets in wrapping order
  #[test]
  fn a_shared_base_before_any_sample_is_ignored() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(10_000, 1000, 1_000_000);
    c.share_base_delay(t(0), u32::MAX - 1000);
    assert_eq!(c.base_delay(), None);
    c.on_ack(t(1_000), &ack(1000, 10_000, 50_000));
    assert_eq!(c.base_delay(), Some(50_000));
  }

  proptest! {
    #[test]
    fn window_stays_within_bounds(steps in proptest::collection::vec((0usize..70_000, 0u32..400_000, any::<bool>()), 1..200)) {
      let mut c = Ledbat::new(10_000, 1000, 500_000);
      let mut now = 0;
      for (bytes, delay, loss) in steps {
        now += 7_000;
        if loss {
          c.on_congestion_event(Instant::from_micros(now), CongestionEvent::Loss, 1000);
        } else {
          c.on_ack(Instant::from_micros(now), &ack(bytes, c.window(), 1_000_000 + delay));
        }
        prop_assert!(c.window() >= 1000 && c.window() <= 500_000);
      }
    }
  }
}
