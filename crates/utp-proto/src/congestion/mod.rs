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
}

/// Why the window must shrink
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CongestionEvent {
  /// A packet was lost and fast-retransmitted
  Loss,
  /// The retransmission timer expired
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
}

