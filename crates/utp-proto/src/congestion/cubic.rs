//! CUBIC (RFC 9438): a foreground controller that competes as TCP does

use super::{AckSample, CongestionEvent, Controller, Ledbat};
use crate::time::Instant;

/// Placeholder until the real controller lands
#[derive(Debug, Clone)]
pub struct Cubic(Ledbat);

impl Cubic {
  /// A controller starting at `initial_window` bytes, between `min_window` and `max_window`
  pub fn new(initial_window: usize, min_window: usize, max_window: usize) -> Self {
    Self(Ledbat::new(initial_window, min_window, max_window))
  }
}

impl Controller for Cubic {
  fn on_ack(&mut self, now: Instant, ack: &AckSample) {
    self.0.on_ack(now, ack)
  }
  fn on_congestion_event(&mut self, now: Instant, event: CongestionEvent, mss: usize) {
    self.0.on_congestion_event(now, event, mss)
  }
  fn window(&self) -> usize {
    self.0.window()
  }
}
