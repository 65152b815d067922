//! Round-trip time estimation and the retransmission timeout (Jacobson/Karels, as libutp)

use core::time::Duration;

/// Smoothed RTT, its variance and the resulting retransmission timeout
#[derive(Debug, Clone)]
pub struct RttEstimator {
  srtt: Option<Duration>,
  rttvar: Duration,
  min_rto: Duration,
  max_rto: Duration,
  initial_rto: Duration,
}

impl RttEstimator {
  /// An estimator with no samples yet
  pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
    Self {
      srtt: None,
      rttvar: Duration::ZERO,
      min_rto,
      max_rto,
      initial_rto,
    }
  }

  /// Feed one RTT sample; callers skip retransmitted packets (Karn's algorithm)
  pub fn on_sample(&mut self, sample: Duration) {
    match self.srtt {
      None => {
        self.srtt = Some(sample);
        self.rttvar = sample / 2;
      }
      Some(srtt) => {
        // libutp: var += (|delta| - var) / 4; rtt += (sample - rtt) / 8
        let delta = srtt.abs_diff(sample);
        self.rttvar = if delta > self.rttvar {
          self.rttvar + (delta - self.rttvar) / 4
        } else {
          self.rttvar - (self.rttvar - delta) / 4
        };
        self.srtt = Some(if sample > srtt {
          srtt + (sample - srtt) / 8
        } else {
          srtt - (srtt - sample) / 8
        });
      }
    }
  }

  /// Smoothed RTT, if any sample has been taken
  pub fn srtt(&self) -> Option<Duration> {
    self.srtt
  }

  /// RTT variance
  pub fn rttvar(&self) -> Duration {
    self.rttvar
  }

  /// The base retransmission timeout, before exponential backoff: the smoothed RTT plus a margin
  /// of four variances, at least `min_rto` (as Linux does it). On a steady path the variance
  /// shrinks to nothing, and a timeout of exactly one round trip races every repair's ACK
  pub fn rto(&self) -> Duration {
    match self.srtt {
      None => self.initial_rto.max(self.min_rto),
      Some(srtt) => (srtt + (4 * self.rttvar).max(self.min_rto)).min(self.max_rto),
    }
  }

  /// A timeout turned out spurious after a round trip of `sample` (a delay step): start the
  /// estimate again from it, as from a first sample (RFC 4015's response), so that the next
  /// timeout does not come before the new round trip is over
  pub fn restart_from(&mut self, sample: Duration) {
    if self.srtt.is_none_or(|s| s < sample) {
      self.srtt = Some(sample);
      self.rttvar = self.rttvar.max(sample / 2);
    }
  }

  /// The timeout after `backoffs` consecutive expiries (doubling, capped)
  pub fn backed_off_rto(&self, backoffs: u32) -> Duration {
    self.rto().saturating_mul(1 << backoffs.min(16)).min(self.max_rto)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
  }

  #[test]
  fn converges_and_respects_floor() {
    let mut r = RttEstimator::new(ms(1000), ms(100), ms(60_000));
    assert_eq!(r.rto(), ms(1000));
    r.on_sample(ms(200));
    assert_eq!(r.srtt(), Some(ms(200)));
    assert_eq!(r.rto(), ms(600));
    for _ in 0..100 {
      r.on_sample(ms(10));
    }
    assert!(r.srtt().unwrap() < ms(12));
    let rto = r.rto();
    assert!(
      rto >= ms(100) && rto < ms(112),
      "the margin's floor applies: {rto:?}"
    );
    assert_eq!(r.backed_off_rto(2), rto * 4);
    assert_eq!(r.backed_off_rto(40), ms(60_000));
  }

  fn us(n: u64) -> Duration {
    Duration::from_micros(n)
  }

  /// The exact Jacobson/Karels arithmetic of both branches: the variance moves a quarter and the
  /// average an eighth of the way toward the new sample, up or down
  #[test]
  fn each_sample_moves_the_estimates_by_a_quarter_and_an_eighth() {
    let mut r = RttEstimator::new(ms(1000), ms(100), ms(60_000));
    r.on_sample(ms(100));
    assert_eq!((r.srtt(), r.rttvar(), r.rto()), (Some(ms(100)), ms(50), ms(300)));
    // |delta| 20 < var 50: var 50 - 30/4, srtt 100 + 20/8
    r.on_sample(ms(120));
    assert_eq!((r.srtt(), r.rttvar()), (Some(us(102_500)), us(42_500)));
    assert_eq!(r.rto(), us(102_500 + 170_000));
    // |delta| 62.5 > var 42.5: var 42.5 + 20/4, srtt 102.5 - 62.5/8
    r.on_sample(ms(40));
    assert_eq!(
      (r.srtt(), r.rttvar()),
      (Some(Duration::from_nanos(94_687_500)), us(47_500))
    );
    assert_eq!(r.rto(), Duration::from_nanos(94_687_500 + 190_000_000));
  }

  /// The timeout before any sample is the initial one, never below the floor; after samples it is
  /// capped at `max_rto`
  #[test]
  fn the_timeout_is_bounded_on_both_sides() {
    assert_eq!(RttEstimator::new(ms(50), ms(100), ms(60_000)).rto(), ms(100));
    let mut r = RttEstimator::new(ms(1000), ms(100), ms(2_000));
    r.on_sample(ms(1_500));
    assert_eq!(r.rto(), ms(2_000));
    assert_eq!(r.backed_off_rto(1), ms(2_000));
  }

  /// A spurious timeout restarts the estimate from a longer round trip only: the average jumps to
  /// it and the variance to at least half of it; an equal or shorter one changes nothing
  #[test]
  fn a_restart_takes_only_a_longer_round_trip() {
    let mut r = RttEstimator::new(ms(1000), ms(10), ms(60_000));
    r.on_sample(ms(100));
    for _ in 0..50 {
      r.on_sample(ms(100));
    }
    let var = r.rttvar();
    assert!(var < ms(1));
    r.restart_from(ms(100));
    assert_eq!((r.srtt(), r.rttvar()), (Some(ms(100)), var), "equal: nothing");
    r.restart_from(ms(80));
    assert_eq!((r.srtt(), r.rttvar()), (Some(ms(100)), var), "shorter: nothing");
    r.restart_from(ms(300));
    assert_eq!((r.srtt(), r.rttvar()), (Some(ms(300)), ms(150)));
    let mut fresh = RttEstimator::new(ms(1000), ms(10), ms(60_000));
    fresh.restart_from(ms(40));
    assert_eq!(
      (fresh.srtt(), fresh.rttvar()),
      (Some(ms(40)), ms(20)),
      "no sample yet"
    );
  }
}
