//! Pacing: spread a window's worth of packets over the round trip instead of one burst
//!
//! A sender that dumps a whole congestion window at once (slow start doubles it every RTT)
//! overflows shallow queues: the receiver's socket buffer or a router's. Tokens refill at a bit
//! more than `cwnd / srtt`, and a burst may use up to what that rate sends in `BURST_TIME`. Timers
//! on real systems tick in milliseconds, so on fast paths (loopback) the burst covers the whole
//! window and pacing costs nothing.

use core::time::Duration;

use crate::time::Instant;

/// What one burst may carry, expressed as sending time at the paced rate
const BURST_TIME: Duration = Duration::from_millis(2);
/// Bursts never need to be smaller than this many packets
const MIN_BURST_PACKETS: usize = 10;

/// Token bucket over bytes
#[derive(Debug, Clone, Default)]
pub(crate) struct Pacer {
  tokens: f64,
  last: Option<Instant>,
}

impl Pacer {
  /// May `len` bytes go now? If not, returns when they may
  pub(crate) fn check(
    &mut self,
    now: Instant,
    len: usize,
    cwnd: usize,
    srtt: Option<Duration>,
    mss: usize,
    slow_start: bool,
  ) -> Result<(), Instant> {
    let Some(srtt) = srtt.filter(|d| !d.is_zero()) else {
      return Ok(()); // no RTT yet: the initial window goes out at once, as TCP's does
    };
    // Faster than the window strictly needs, so the window (not the pacer) limits throughput
    let gain = if slow_start { 2.0 } else { 1.25 };
    let rate = gain * cwnd as f64 / srtt.as_secs_f64(); // bytes per second
    let capacity = (rate * BURST_TIME.as_secs_f64()).max((MIN_BURST_PACKETS * mss) as f64);
    let elapsed = self
      .last
      .map_or(f64::INFINITY, |t| now.saturating_since(t).as_secs_f64());
    self.tokens = (self.tokens + elapsed * rate).min(capacity);
    self.last = Some(now);
    if self.tokens >= len as f64 {
      self.tokens -= len as f64;
      return Ok(());
    }
    let wait = (len as f64 - self.tokens) / rate;
    Err(now + Duration::from_secs_f64(wait).max(Duration::from_micros(1)))
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn bursts_then_paces() {
    let mut p = Pacer::default();
    let t = Instant::from_micros;
    let srtt = Some(Duration::from_millis(100));
    // 100 KB window over 100 ms, slow start off: 1.25 MB/s, burst = 2.5 KB < 10 packets of 1000
    let mut sent = 0;
    while p.check(t(0), 1000, 100_000, srtt, 1000, false).is_ok() {
      sent += 1;
    }
    assert_eq!(sent, 10);
    let next = p.check(t(0), 1000, 100_000, srtt, 1000, false).unwrap_err();
    assert_eq!(next, t(800), "1000 bytes at 1.25 MB/s");
    assert!(p.check(next, 1000, 100_000, srtt, 1000, false).is_ok());
    assert!(
      p.check(t(0), 1000, 100_000, None, 1000, false).is_ok(),
      "unpaced without an RTT"
    );
  }

  /// Tokens short of a packet wait only for the bytes missing, not for a whole packet more
  #[test]
  fn a_partly_refilled_bucket_waits_for_the_missing_bytes() {
    let mut p = Pacer::default();
    let t = Instant::from_micros;
    let srtt = Some(Duration::from_millis(100));
    while p.check(t(0), 1000, 100_000, srtt, 1000, false).is_ok() {}
    // 400 µs at 1.25 MB/s refill 500 bytes: the other 500 take 400 µs more
    let next = p.check(t(400), 1000, 100_000, srtt, 1000, false).unwrap_err();
    assert!((t(799)..=t(801)).contains(&next), "{next:?}");
  }
}
