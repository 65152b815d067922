//! Congestion control: the [`Controller`] trait, LEDBAT (background) and CUBIC (foreground)
//!
//! The controller runs at the sender only: whichever a connection uses, its peer sees ordinary
//! uTP, so the choice never costs compatibility.

mod cubic;
mod ledbat;

use core::fmt;
use core::time::Duration;

use crate::time::Instant;

pub use cubic::Cubic;
pub use ledbat::{Ledbat, TARGET_DELAY};

/// Which controller a connection's sending side runs
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Congestion {
  /// LEDBAT (RFC 6817, with LEDBAT++'s refinements): a background transfer that keeps the queue
  /// it builds near 100 ms and yields to TCP and interactive traffic
  #[default]
  Ledbat,
  /// CUBIC (RFC 9438), the default TCP controller of Linux, macOS and Windows: a foreground
  /// transfer that competes for its fair share as TCP does
  Cubic,
}

/// What an acknowledgement tells the controller
#[derive(Debug, Clone, Copy)]
pub struct AckSample {
  /// Payload bytes newly acknowledged (cumulatively or selectively)
  pub bytes_acked: usize,
  /// Bytes in flight before this acknowledgement
  pub in_flight: usize,
  /// The peer's one-way delay measurement of our packets (`timestamp_difference`), if non-zero
  pub one_way_delay: Option<u32>,
  /// Largest payload a packet may carry now
  pub mss: usize,
  /// Smoothed round-trip time, once there is a sample
  pub srtt: Option<Duration>,
  /// Its mean deviation (the connection's estimator: jitter shows here, a queue building in `srtt`)
  pub rttvar: Duration,
  /// A fresh round-trip sample taken from this acknowledgement (never from a retransmission)
  pub rtt_sample: Option<Duration>,
  /// The window was what held the sender back during the last round trip (not the application,
  /// the peer's window or the pacer): only then does an acknowledgement say the path had room for
  /// more, and only then may the window grow
  pub window_limited: bool,
  /// Our own one-way delay measurement of the peer's packets (what we echo to it), which moves
  /// the opposite way of `one_way_delay` when the two clocks drift apart
  pub reverse_delay: Option<u32>,
}

impl AckSample {
  /// A sample with only the acknowledged bytes and the window state filled in (for tests)
  pub fn new(bytes_acked: usize, in_flight: usize, mss: usize) -> Self {
    Self {
      bytes_acked,
      in_flight,
      one_way_delay: None,
      mss,
      srtt: None,
      rttvar: Duration::ZERO,
      rtt_sample: None,
      window_limited: true,
      reverse_delay: None,
    }
  }
}

/// Why the window must shrink
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CongestionEvent {
  /// A packet was lost and fast-retransmitted (once per window of data: the connection reports
  /// only the first loss of a flight)
  Loss,
  /// The retransmission timer expired (only the first expiry of a series: the window is already
  /// at its floor for the ones that follow)
  Timeout,
}

/// A congestion controller: decides how many bytes may be in flight
pub trait Controller: Send + fmt::Debug {
  /// Bytes were acknowledged
  fn on_ack(&mut self, now: Instant, ack: &AckSample);
  /// Loss or timeout was detected
  fn on_congestion_event(&mut self, now: Instant, event: CongestionEvent, mss: usize);
  /// Current congestion window in bytes
  fn window(&self) -> usize;
  /// Latest queuing-delay estimate, for statistics
  fn queuing_delay(&self) -> Duration {
    Duration::ZERO
  }
  /// Whether the window is still growing exponentially (the pacer sends faster then)
  fn in_slow_start(&self) -> bool {
    false
  }
  /// The lowest one-way delay sample of the base history (LEDBAT), to share with the other
  /// connections to the same peer: same two clocks, same path
  fn base_delay(&self) -> Option<u32> {
    None
  }
  /// Another connection to the same peer measured `base` as its lowest delay: a flow that started
  /// while the queue was full learns the empty queue's delay from one that saw it
  fn share_base_delay(&mut self, _now: Instant, _base: u32) {}
  /// The last reduction was a mistake (the acknowledgement that followed a timeout was for the
  /// original transmission: the path was slow, not lossy): return to the state before it
  fn undo(&mut self);
}

#[cfg(test)]
mod tests {
  use super::*;

  /// A controller that keeps a fixed window and overrides nothing it need not
  #[derive(Debug)]
  struct Fixed;

  impl Controller for Fixed {
    fn on_ack(&mut self, _now: Instant, _ack: &AckSample) {}
    fn on_congestion_event(&mut self, _now: Instant, _event: CongestionEvent, _mss: usize) {}
    fn window(&self) -> usize {
      10_000
    }
    fn undo(&mut self) {}
  }

  /// A controller that says nothing of slow start or of delays is taken as past slow start, with
  /// no queue and no base delay to share
  #[test]
  fn a_controller_claims_no_slow_start_and_no_delays_unless_it_says_so() {
    let c = Fixed;
    assert!(!c.in_slow_start());
    assert_eq!(c.queuing_delay(), Duration::ZERO);
    assert_eq!(c.base_delay(), None);
  }

  /// CUBIC measures no one-way delay: it has no base delay to share with other connections, however
  /// many delay samples its acknowledgements carry
  #[test]
  fn cubic_shares_no_base_delay() {
    let mut c = Cubic::new(10_000, 2_000, 1 << 20);
    let mut ack = AckSample::new(1000, 5000, 1000);
    ack.one_way_delay = Some(5_000);
    c.on_ack(Instant::from_micros(1_000), &ack);
    assert_eq!(c.base_delay(), None);
  }
}
