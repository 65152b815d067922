//! LEDBAT (RFC 6817): a background controller
//!
//! LEDBAT keeps the queue it builds at a bottleneck near a target delay (100 ms),
//! so a uTP transfer yields to TCP and interactive traffic. It measures one-way delay from the
//! timestamps peers echo, takes the minimum seen over the last minutes as the base (propagation)
//! delay, and steers the window by how far the current queuing delay is from the target.
//! Constants follow libutp, whose behaviour the BitTorrent world already tunes against.

use core::time::Duration;

use super::{AckSample, CongestionEvent, Controller};
use crate::time::Instant;

//= https://datatracker.ietf.org/doc/html/rfc6817#section-2.5
//# TARGET MUST be 100 milliseconds or less
/// libutp `CCONTROL_TARGET`
pub const TARGET_DELAY: Duration = Duration::from_millis(100);
/// libutp `MAX_CWND_INCREASE_BYTES_PER_RTT`
const MAX_GAIN_PER_RTT: f64 = 3000.0;
/// Above the target the window shrinks by at most this fraction per round trip (LEDBAT++)
const MAX_DECREASE_PER_RTT: f64 = 0.5;
/// Slow start ends once queuing delay passes this fraction of the target (LEDBAT++'s 3/4):
/// exponential growth overshoots by a round trip's worth of window
const SLOW_START_EXIT: f64 = 0.75;
/// libutp `MAX_WINDOW_DECAY`: halve at most once per this interval
const DECAY_INTERVAL: Duration = Duration::from_millis(100);
/// libutp `DELAY_BASE_HISTORY`: minutes of base-delay buckets
const BASE_HISTORY_MINUTES: usize = 13;
/// libutp `CUR_DELAY_SIZE`: the current delay is the minimum of this many recent samples
const CURRENT_SAMPLES: usize = 3;

/// Minimum one-way delay over the last minutes, kept in one-minute buckets
///
/// Delays are wrapping 32-bit microsecond differences of two unsynchronised clocks, so they are
/// compared relative to each other, never as absolute values.
#[derive(Debug, Clone)]
struct BaseDelay {
  buckets: [u32; BASE_HISTORY_MINUTES],
  current_bucket: usize,
  bucket_started: Option<Instant>,
}

fn wrapping_lt(a: u32, b: u32) -> bool {
  (b.wrapping_sub(a) as i32) > 0
}

impl BaseDelay {
  fn new() -> Self {
    Self {
      buckets: [0; BASE_HISTORY_MINUTES],
      current_bucket: 0,
      bucket_started: None,
    }
  }

  fn add(&mut self, now: Instant, sample: u32) {
    match self.bucket_started {
      None => {
        self.buckets = [sample; BASE_HISTORY_MINUTES];
        self.bucket_started = Some(now);
      }
      Some(start) => {
        if now.saturating_since(start) >= Duration::from_secs(60) {
          self.current_bucket = (self.current_bucket + 1) % BASE_HISTORY_MINUTES;
          self.buckets[self.current_bucket] = sample;
          self.bucket_started = Some(now);
        } else if wrapping_lt(sample, self.buckets[self.current_bucket]) {
          self.buckets[self.current_bucket] = sample;
        }
      }
    }
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
}

/// LEDBAT with slow start, as libutp runs it
#[derive(Debug, Clone)]
pub struct Ledbat {
  cwnd: f64,
  max_window: usize,
  min_window: usize,
  slow_start: bool,
  ssthresh: f64,
  base: BaseDelay,
  recent: [u32; CURRENT_SAMPLES],
  recent_len: usize,
  recent_next: usize,
  queuing_delay: Duration,
  target: Duration,
  last_decay: Option<Instant>,
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
      recent: [0; CURRENT_SAMPLES],
      recent_len: 0,
      recent_next: 0,
      queuing_delay: Duration::ZERO,
      target: TARGET_DELAY,
      last_decay: None,
    }
  }

  /// Change the ceiling (for example when the send buffer changes)
  pub fn set_max_window(&mut self, max_window: usize) {
    self.max_window = max_window;
    self.cwnd = self.cwnd.min(max_window as f64);
  }

  fn record_delay(&mut self, now: Instant, sample: u32) {
    self.base.add(now, sample);
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
    self.queuing_delay = Duration::from_micros(queued.max(0) as u64);
  }
}

impl Controller for Ledbat {
  fn on_ack(&mut self, now: Instant, ack: &AckSample) {
    if let Some(delay) = ack.one_way_delay {
      self.record_delay(now, delay);
    }
    if ack.bytes_acked == 0 {
      return;
    }
    // A sender that is not filling its window learns nothing about the path: don't grow.
    let window_limited = ack.in_flight + ack.mss >= self.cwnd as usize;
    let target = self.target.as_micros() as f64;
    let queued = self.queuing_delay.as_micros() as f64;
    //= https://datatracker.ietf.org/doc/html/rfc6817#section-2.4.2
    //# cwnd += GAIN * off_target * bytes_newly_acked * MSS / cwnd
    let off_target = (target - queued) / target;
    let window_factor =
      ack.bytes_acked.min(self.cwnd as usize) as f64 / self.cwnd.max(ack.bytes_acked as f64);
    let gain = if queued > target {
      // Above the target, shrink in proportion to the overshoot, by up to half the window per
      // round trip (LEDBAT++'s multiplicative decrease): a standing queue that a TCP flow built,
      // or our own slow-start overshoot, must clear within a few round trips. RFC 6817's linear
      // decrease, capped like the increase at 3 kB per round trip, took tens of seconds there
      // and left TCP a fifth less than it gets alone.
      -(queued / target - 1.0).min(MAX_DECREASE_PER_RTT) * ack.bytes_acked as f64
    } else {
      MAX_GAIN_PER_RTT * off_target * window_factor
    };
    let mut next = self.cwnd + if gain > 0.0 && !window_limited { 0.0 } else { gain };
    if self.slow_start {
      if queued > SLOW_START_EXIT * target {
        self.slow_start = false;
        self.ssthresh = self.cwnd;
      } else if window_limited {
        next = next.max(self.cwnd + ack.bytes_acked as f64);
        if next >= self.ssthresh {
          // Slow start ends at the threshold, it doesn't jump past it
          next = self.ssthresh.max(self.cwnd);
          self.slow_start = false;
        }
      }
    }
    self.cwnd = next.clamp(self.min_window as f64, self.max_window as f64);
  }

  fn on_congestion_event(&mut self, now: Instant, event: CongestionEvent, mss: usize) {
    match event {
      CongestionEvent::Loss => {
        if self
          .last_decay
          .is_some_and(|t| now.saturating_since(t) < DECAY_INTERVAL)
        {
          return;
        }
        self.last_decay = Some(now);
        self.cwnd = (self.cwnd / 2.0).max(self.min_window as f64);
        self.ssthresh = self.cwnd;
        self.slow_start = false;
      }
      CongestionEvent::Timeout => {
        self.ssthresh = (self.cwnd / 2.0).max(self.min_window as f64);
        self.cwnd = (mss as f64).clamp(self.min_window as f64, self.max_window as f64);
        self.slow_start = true;
        self.last_decay = Some(now);
      }
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
}

#[cfg(test)]
mod tests {
  use super::*;
  use proptest::prelude::*;

  fn ack(bytes: usize, in_flight: usize, delay: u32) -> AckSample {
    AckSample {
      bytes_acked: bytes,
      in_flight,
      one_way_delay: Some(delay),
      mss: 1000,
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

  #[test]
  fn loss_halves_at_most_once_per_interval() {
    let t = Instant::from_micros;
    let mut c = Ledbat::new(64_000, 1000, 1_000_000);
    c.on_congestion_event(t(1_000_000), CongestionEvent::Loss, 1000);
    assert_eq!(c.window(), 32_000);
    c.on_congestion_event(t(1_050_000), CongestionEvent::Loss, 1000);
    assert_eq!(c.window(), 32_000);
    c.on_congestion_event(t(1_200_000), CongestionEvent::Loss, 1000);
    assert_eq!(c.window(), 16_000);
    c.on_congestion_event(t(1_300_000), CongestionEvent::Timeout, 1000);
    assert_eq!(c.window(), 1000);
    assert!(c.in_slow_start());
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
