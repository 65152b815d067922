//! CUBIC (RFC 9438): a foreground controller that competes for its share as TCP does
//!
//! After a loss the window grows along a cubic curve centred on the size it had when the loss
//! came (`w_max`): fast while far below it, flat near it, fast again past it. A Reno estimate
//! runs alongside so that on short, slow paths CUBIC is never less aggressive than standard TCP.
//! Slow start ends early when round trips start to grow (HyStart++, RFC 9406), before the
//! bottleneck queue overflows and costs a window of losses.
//!
//! A loss that comes while round trips show no queue at all is taken for what it most likely is,
//! a corrupted or dropped-at-random packet (Wi-Fi, a lossy link), as TCP Veno and BBR read it: the
//! packet is resent, the window stays. Only when such losses are frequent (more than one in
//! `RANDOM_LOSS_SPACING` packets) or a queue is visible does a loss cut the window: a shallow
//! buffer that overflows before any delay shows still gets the standard response.

use core::time::Duration;

use super::{AckSample, CongestionEvent, Controller};
use crate::time::Instant;

//= https://www.rfc-editor.org/rfc/rfc9438#section-4.6
//# Parameter C SHOULD be set to 0.4
const C: f64 = 0.4;
//= https://www.rfc-editor.org/rfc/rfc9438#section-4.6
//# β_cubic SHOULD be set to 0.7
const BETA: f64 = 0.7;
/// Reno-friendly additive increase per round trip, in packets (RFC 9438 §4.3)
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);
/// Before the first RTT sample, the cubic curve is evaluated this far ahead
const DEFAULT_RTT: Duration = Duration::from_millis(100);
/// A loss is "random" only if the smoothed round trip is within this much (or an eighth, or three
/// mean deviations: jitter) of the path's minimum...
const RANDOM_LOSS_QUEUE: Duration = Duration::from_millis(5);
/// ...and at least this many packets were delivered since the last loss taken as random
const RANDOM_LOSS_SPACING: usize = 20;
/// The minimum round trip is forgotten after this long (a route may have become longer)
const MIN_RTT_LIFETIME: Duration = Duration::from_secs(30);
/// HyStart++: samples a round needs before it may end slow start, and the delay increase that does
const HYSTART_MIN_SAMPLES: u32 = 8;
const HYSTART_MIN_ETA: Duration = Duration::from_millis(4);
const HYSTART_MAX_ETA: Duration = Duration::from_millis(16);

#[derive(Debug, Clone, Copy)]
struct Saved {
  cwnd: f64,
  ssthresh: f64,
  w_max: f64,
}

/// CUBIC with HyStart++ slow start; windows in bytes, the curve in packets of the current size
#[derive(Debug, Clone)]
pub struct Cubic {
  cwnd: f64,
  ssthresh: f64,
  min_window: usize,
  max_window: usize,
  /// The window when the last congestion event came
  w_max: f64,
  /// Seconds from the start of the epoch until the curve reaches `w_max`
  k: f64,
  /// When the current congestion-avoidance epoch began
  epoch: Option<Instant>,
  /// The window standard TCP (Reno with CUBIC's β) would have now
  w_est: f64,
  saved: Option<Saved>,
  /// HyStart++ round: ends at this time (one smoothed RTT after it began)
  round_end: Option<Instant>,
  last_round_min: Option<Duration>,
  round_min: Option<Duration>,
  round_samples: u32,
  /// The smallest round trip seen lately, and when
  min_rtt: Option<(Duration, Instant)>,
  /// The connection's smoothed round trip and its deviation, as the last ACK reported them: the
  /// queue test tells a jittery path (Wi-Fi) from a queue building with them
  smoothed: Option<(Duration, Duration)>,
  /// Bytes delivered since the last loss taken as random
  delivered_since_random: usize,
}

impl Cubic {
  /// A controller starting at `initial_window` bytes, between `min_window` and `max_window`
  pub fn new(initial_window: usize, min_window: usize, max_window: usize) -> Self {
    Self {
      cwnd: initial_window.clamp(min_window, max_window) as f64,
      ssthresh: f64::INFINITY,
      min_window,
      max_window,
      w_max: 0.0,
      k: 0.0,
      epoch: None,
      w_est: 0.0,
      saved: None,
      round_end: None,
      last_round_min: None,
      round_min: None,
      round_samples: 0,
      min_rtt: None,
      smoothed: None,
      delivered_since_random: usize::MAX / 2,
    }
  }

  fn note_min_rtt(&mut self, now: Instant, sample: Duration) {
    match self.min_rtt {
      Some((min, at)) if sample > min && now.saturating_since(at) < MIN_RTT_LIFETIME => {}
      _ => self.min_rtt = Some((sample, now)),
    }
  }

  /// No queue on the path and losses rare: this one is noise, not congestion
  fn loss_looks_random(&self, mss: usize) -> bool {
    let (Some((min, _)), Some((smooth, deviation))) = (self.min_rtt, self.smoothed) else {
      return false;
    };
    // Jitter alone lifts the average above the minimum by about its deviation
    let margin = (min / 8).max(RANDOM_LOSS_QUEUE).max(3 * deviation);
    smooth <= min + margin && self.delivered_since_random >= RANDOM_LOSS_SPACING * mss
  }

  fn save(&mut self) {
    self.saved = Some(Saved {
      cwnd: self.cwnd,
      ssthresh: self.ssthresh,
      w_max: self.w_max,
    });
  }

  /// HyStart++ (RFC 9406 §4.2): a round whose minimum RTT grew past the last round's by more
  /// than an eighth (4–16 ms) means a queue is building: leave slow start before it overflows
  fn hystart(&mut self, now: Instant, ack: &AckSample) -> bool {
    let Some(srtt) = ack.srtt else { return false };
    if self.round_end.is_none_or(|end| now >= end) {
      self.round_end = Some(now + srtt);
      self.last_round_min = self.round_min.or(self.last_round_min);
      self.round_min = None;
      self.round_samples = 0;
    }
    let Some(sample) = ack.rtt_sample else {
      return false;
    };
    self.round_samples += 1;
    self.round_min = Some(self.round_min.map_or(sample, |m| m.min(sample)));
    match (self.last_round_min, self.round_min) {
      (Some(last), Some(current)) if self.round_samples >= HYSTART_MIN_SAMPLES => {
        let eta = (last / 8).clamp(HYSTART_MIN_ETA, HYSTART_MAX_ETA);
        current >= last + eta
      }
      _ => false,
    }
  }

  fn congestion_avoidance(&mut self, now: Instant, ack: &AckSample) {
    let mss = ack.mss.max(1) as f64;
    let epoch = *self.epoch.get_or_insert_with(|| {
      if self.cwnd < self.w_max {
        self.k = ((self.w_max - self.cwnd) / mss / C).cbrt();
      } else {
        self.k = 0.0;
        self.w_max = self.cwnd;
      }
      self.w_est = self.cwnd;
      now
    });
    let rtt = ack.srtt.unwrap_or(DEFAULT_RTT).as_secs_f64();
    let t = now.saturating_since(epoch).as_secs_f64();
    let w_cubic = |t: f64| mss * C * (t - self.k).powi(3) + self.w_max;
    //= https://www.rfc-editor.org/rfc/rfc9438#section-4.3
    //# W_est = W_est + α_cubic * segments_acked / cwnd
    self.w_est += ALPHA * mss * ack.bytes_acked as f64 / self.cwnd;
    if w_cubic(t) < self.w_est {
      self.cwnd = self.w_est;
    } else {
      //= https://www.rfc-editor.org/rfc/rfc9438#section-4.4
      //# cwnd MUST be incremented by (target - cwnd)/cwnd for each received new ACK
      let target = w_cubic(t + rtt).clamp(self.cwnd, 1.5 * self.cwnd);
      self.cwnd += (target - self.cwnd) * ack.bytes_acked as f64 / self.cwnd;
    }
  }
}

impl Controller for Cubic {
  fn on_ack(&mut self, now: Instant, ack: &AckSample) {
    if let Some(sample) = ack.rtt_sample {
      self.note_min_rtt(now, sample);
    }
    if let Some(srtt) = ack.srtt {
      self.smoothed = Some((srtt, ack.rttvar));
    }
    self.delivered_since_random = self.delivered_since_random.saturating_add(ack.bytes_acked);
    // HyStart++ only in the initial slow start (RFC 9406 §4.3): a later one, after a timeout, has
    // its threshold already, and the round minimum kept from before the timeout is out of date
    let initial_slow_start = self.ssthresh == f64::INFINITY;
    if initial_slow_start && self.hystart(now, ack) {
      self.ssthresh = self.cwnd;
    }
    // A sender the application holds back learns nothing about the path (RFC 9438 §4.8)
    if ack.bytes_acked == 0 || !ack.window_limited {
      return;
    }
    if self.cwnd < self.ssthresh {
      self.cwnd = (self.cwnd + ack.bytes_acked as f64).min(self.ssthresh.max(self.cwnd));
    } else {
      self.congestion_avoidance(now, ack);
    }
    self.cwnd = self.cwnd.clamp(self.min_window as f64, self.max_window as f64);
  }

  fn on_congestion_event(&mut self, _now: Instant, event: CongestionEvent, mss: usize) {
    if event == CongestionEvent::Loss && self.loss_looks_random(mss) {
      self.delivered_since_random = 0;
      return;
    }
    self.save();
    self.epoch = None;
    //= https://www.rfc-editor.org/rfc/rfc9438#section-4.7
    //# if cwnd < W_max and fast convergence enabled, further reduce W_max
    self.w_max = if self.cwnd < self.w_max {
      self.cwnd * (1.0 + BETA) / 2.0
    } else {
      self.cwnd
    };
    let floor = self.min_window as f64;
    self.ssthresh = (self.cwnd * BETA).max(floor).max(2.0 * mss as f64);
    self.cwnd = match event {
      CongestionEvent::Loss => self.ssthresh,
      CongestionEvent::Timeout => mss as f64,
    }
    .clamp(floor, self.max_window as f64);
  }

  fn window(&self) -> usize {
    self.cwnd as usize
  }

  fn in_slow_start(&self) -> bool {
    self.cwnd < self.ssthresh
  }

  fn undo(&mut self) {
    if let Some(s) = self.saved.take() {
      self.cwnd = s.cwnd;
      self.ssthresh = s.ssthresh;
      self.w_max = s.w_max;
      self.epoch = None;
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn ack(bytes: usize, srtt_ms: u64, sample_ms: u64) -> AckSample {
    AckSample {
      srtt: Some(Duration::from_millis(srtt_ms)),
      rtt_sample: Some(Duration::from_millis(sample_ms)),
      ..AckSample::new(bytes, 0, 1000)
    }
  }

  /// Drive `rounds` round trips of `rtt_ms`, acknowledging a full window each
  fn rounds(c: &mut Cubic, start_ms: u64, n: u64, rtt_ms: u64) -> u64 {
    let mut now = start_ms;
    for _ in 0..n {
      let packets = (c.window() / 1000).max(1) as u64;
      for i in 0..packets {
        c.on_ack(
          Instant::from_micros((now + i * rtt_ms / packets) * 1000),
          &ack(1000, rtt_ms, rtt_ms),
        );
      }
      now += rtt_ms;
    }
    now
  }

  #[test]
  fn slow_start_doubles_per_round_trip() {
    let mut c = Cubic::new(10_000, 1000, 10_000_000);
    rounds(&mut c, 0, 4, 100);
    assert_eq!(c.window(), 160_000);
    assert!(c.in_slow_start());
  }

  #[test]
  fn loss_cuts_to_beta_and_the_curve_returns_to_w_max_after_k() {
    let mut c = Cubic::new(100_000, 1000, 10_000_000);
    c.ssthresh = 100_000.0; // in congestion avoidance
    c.on_congestion_event(Instant::ZERO, CongestionEvent::Loss, 1000);
    assert_eq!(c.window(), 70_000);
    // K = cbrt(30 packets / 0.4) = 4.22 s: after that the window is back near 100 KB, and not
    // much before
    rounds(&mut c, 0, 30, 100);
    let at_3s = c.window();
    assert!((80_000..100_000).contains(&at_3s), "{at_3s}");
    rounds(&mut c, 3000, 15, 100);
    let at_4_5s = c.window();
    assert!((99_000..110_000).contains(&at_4_5s), "{at_4_5s}");
  }

  #[test]
  fn a_timeout_restarts_from_one_packet_and_undo_restores() {
    let mut c = Cubic::new(50_000, 1000, 10_000_000);
    c.on_congestion_event(Instant::ZERO, CongestionEvent::Timeout, 1000);
    assert_eq!(c.window(), 1000);
    assert!(c.in_slow_start());
    c.undo();
    assert_eq!(c.window(), 50_000);
  }

  #[test]
  fn hystart_leaves_slow_start_when_round_trips_grow() {
    let mut c = Cubic::new(10_000, 1000, 100_000_000);
    let mut now = rounds(&mut c, 0, 3, 100);
    assert!(c.in_slow_start());
    // The queue builds: every sample 30 ms above the last round's minimum
    for _ in 0..3 {
      for _ in 0..20 {
        now += 5;
        c.on_ack(Instant::from_micros(now * 1000), &ack(1000, 100, 130));
      }
    }
    assert!(!c.in_slow_start());
  }

  /// HyStart++'s thresholds exactly (RFC 9406 §4.2): a round needs eight RTT samples before it
  /// may end slow start, and what ends it is a minimum grown by an eighth of the last round's
  /// (12.5 ms of 100 ms), the eighth clamped to 4–16 ms
  #[test]
  fn hystart_needs_eight_samples_and_an_eighth_more_delay() {
    let us = Duration::from_micros;
    // (last round's minimum, this round's, whether it ends slow start), in µs
    for (base, rtt, exits) in [
      (100_000, 112_500, true),
      (100_000, 112_499, false),
      (200_000, 216_000, true),
      (200_000, 215_999, false),
      (20_000, 24_000, true),
      (20_000, 23_999, false),
    ] {
      let mut c = Cubic::new(10_000, 1000, 100_000_000);
      let mut sample = |at: u64, rtt: u64| {
        let a = AckSample {
          srtt: Some(us(base)),
          rtt_sample: Some(us(rtt)),
          ..AckSample::new(1000, 0, 1000)
        };
        c.on_ack(Instant::from_micros(at), &a);
        c.in_slow_start()
      };
      // One round at the base delay, then samples of the next one
      for i in 0..10 {
        assert!(sample(i * base / 20, base));
      }
      for i in 0..12 {
        let still = sample(base + i * base / 20, rtt);
        let expected = !exits || i < 7;
        assert_eq!(still, expected, "{base} -> {rtt} µs, sample {}", i + 1);
      }
    }
  }

  /// HyStart++ is for the initial slow start only (RFC 9406 §4.3): a slow start after a timeout
  /// already has its threshold, and the round minimum HyStart kept from before the timeout is out
  /// of date. Here a delay spike (RTT 100 to 160 ms) fired the timeout, and the original flight's
  /// ACKs come in late right after it: they must not end the new slow start at a few packets
  #[test]
  fn a_slow_start_after_a_timeout_runs_to_its_threshold() {
    let mut c = Cubic::new(10_000, 1000, 100_000_000);
    let mut now = rounds(&mut c, 0, 4, 100);
    assert!(c.in_slow_start());
    let threshold = (c.window() as f64 * BETA) as usize;
    c.on_congestion_event(Instant::from_micros(now * 1000), CongestionEvent::Timeout, 1000);
    assert_eq!(c.window(), 1000);
    for _ in 0..20 {
      now += 2;
      c.on_ack(Instant::from_micros(now * 1000), &ack(1000, 160, 160));
    }
    assert!(c.in_slow_start(), "window {}", c.window());
    rounds(&mut c, now, 3, 160);
    assert!(!c.in_slow_start());
    assert!(c.window() >= threshold, "{} < {threshold}", c.window());
  }

  /// A loss with no queue in sight keeps the window; a second one soon after, or one with a
  /// queue, cuts it
  #[test]
  fn random_losses_keep_the_window_congestion_cuts_it() {
    let mut c = Cubic::new(100_000, 1000, 10_000_000);
    c.ssthresh = 100_000.0;
    for i in 0..100 {
      c.on_ack(Instant::from_micros(i * 1000), &ack(1000, 100, 100));
    }
    let w = c.window();
    c.on_congestion_event(Instant::from_micros(200_000), CongestionEvent::Loss, 1000);
    assert_eq!(c.window(), w, "random");
    c.on_congestion_event(Instant::from_micros(210_000), CongestionEvent::Loss, 1000);
    assert_eq!(
      c.window(),
      (w as f64 * BETA) as usize,
      "too frequent to be random"
    );
    let mut c = Cubic::new(100_000, 1000, 10_000_000);
    c.ssthresh = 100_000.0;
    for i in 0..100 {
      c.on_ack(
        Instant::from_micros(i * 1000),
        &(if i < 50 {
          ack(1000, 100, 100)
        } else {
          ack(1000, 150, 150)
        }),
      );
    }
    let w = c.window();
    c.on_congestion_event(Instant::from_micros(200_000), CongestionEvent::Loss, 1000);
    assert!(c.window() < w, "a queue: congestion");
  }

  /// A loss counts as random only after RANDOM_LOSS_SPACING packets were delivered since the last
  /// one that did: the 19th packet after it is too soon, the 20th is not
  #[test]
  fn random_losses_must_be_spaced_by_twenty_packets() {
    let mut c = Cubic::new(100_000, 1000, 10_000_000);
    c.ssthresh = 100_000.0;
    let mut ms = 0;
    let mut deliver = |c: &mut Cubic, packets: u64| {
      for _ in 0..packets {
        ms += 1;
        c.on_ack(Instant::from_micros(ms * 1000), &ack(1000, 100, 100));
      }
    };
    deliver(&mut c, 100);
    let w = c.window();
    c.on_congestion_event(Instant::from_micros(200_000), CongestionEvent::Loss, 1000);
    assert_eq!(c.window(), w, "random");
    deliver(&mut c, 20);
    let w = c.window();
    c.on_congestion_event(Instant::from_micros(300_000), CongestionEvent::Loss, 1000);
    assert_eq!(c.window(), w, "20 packets later: random again");
    deliver(&mut c, 19);
    let w = c.window();
    c.on_congestion_event(Instant::from_micros(400_000), CongestionEvent::Loss, 1000);
    assert_eq!(
      c.window(),
      (w as f64 * BETA) as usize,
      "19 packets later: congestion"
    );
  }

  /// The path's minimum round trip takes every lower sample at once; a higher one replaces it
  /// only after MIN_RTT_LIFETIME, when a route change may have made the old minimum unreachable
  #[test]
  fn the_minimum_rtt_follows_lower_samples_and_expires() {
    let t = |s: u64| Instant::from_micros(s * 1_000_000);
    let ms = Duration::from_millis;
    let mut c = Cubic::new(100_000, 1000, 10_000_000);
    c.on_ack(t(1), &ack(1000, 100, 100));
    assert_eq!(c.min_rtt, Some((ms(100), t(1))));
    c.on_ack(t(2), &ack(1000, 100, 50));
    assert_eq!(c.min_rtt, Some((ms(50), t(2))), "lower: taken at once");
    c.on_ack(t(10), &ack(1000, 100, 80));
    assert_eq!(
      c.min_rtt,
      Some((ms(50), t(2))),
      "higher, within the lifetime: kept"
    );
    // The path still reaches its minimum: the lifetime starts again
    c.on_ack(t(20), &ack(1000, 100, 50));
    assert_eq!(c.min_rtt, Some((ms(50), t(20))), "equal: renewed");
    c.on_ack(t(49), &ack(1000, 100, 80));
    assert_eq!(
      c.min_rtt,
      Some((ms(50), t(20))),
      "higher, within the renewed lifetime: kept"
    );
    c.on_ack(t(50), &ack(1000, 100, 80));
    assert_eq!(
      c.min_rtt,
      Some((ms(80), t(50))),
      "higher, once the lifetime is over: replaced"
    );
  }

  /// A small window after a loss grows at least as fast as Reno would (RFC 9438's Reno-friendly
  /// region, W_est): CUBIC's curve alone is still below the old maximum after a second
  #[test]
  fn small_windows_grow_at_least_as_fast_as_reno() {
    let mut c = Cubic::new(10_000, 1000, 10_000_000);
    c.ssthresh = 10_000.0;
    c.on_congestion_event(Instant::ZERO, CongestionEvent::Loss, 1000);
    assert_eq!(c.window(), 7_000);
    // W_est gains 3·(1-β)/(1+β) ≈ 0.53 packet per round trip: about 5 in ten; the curve 2.6
    rounds(&mut c, 0, 10, 100);
    let w = c.window();
    assert!((11_500..13_500).contains(&w), "{w}");
  }

  /// RFC 9438 to the letter, ACK by ACK, computed here from its formulas: W_cubic(t) = C·(t − K)³
  /// packets + W_max with K = ∛((W_max − cwnd)/C) at the epoch's start (the first ACK after the
  /// loss); W_est grows by α·acked/cwnd packets per ACK. Where W_cubic(t) is below W_est the window
  /// is W_est (§4.3); elsewhere each ACK moves it by (target − cwnd)·acked/cwnd towards target =
  /// W_cubic(t + RTT), clamped to [cwnd, 1.5·cwnd] (§4.4)
  #[test]
  fn each_ack_follows_the_rfc_formulas() {
    let alpha = 3.0 * (1.0 - 0.7) / (1.0 + 0.7);
    for (w_max, times_ms) in [
      (100_000.0, &[0u64, 250, 500, 1000, 2000, 3000, 4000, 5000][..]),
      (10_000.0, &[0, 100, 200, 300, 400, 500, 600, 700][..]),
    ] {
      let mut c = Cubic::new(w_max as usize, 1000, 10_000_000);
      c.ssthresh = w_max;
      c.on_congestion_event(Instant::ZERO, CongestionEvent::Loss, 1000);
      let mut cwnd: f64 = 0.7 * w_max;
      let mut w_est = cwnd;
      let k = ((w_max - cwnd) / 1000.0 / 0.4).cbrt();
      let w_cubic = |t: f64| 1000.0 * 0.4 * (t - k).powi(3) + w_max;
      let (mut reno, mut cubic) = (0, 0);
      for &ms in times_ms {
        c.on_ack(Instant::from_micros(ms * 1000), &ack(1000, 100, 100));
        let t = ms as f64 / 1000.0;
        w_est += alpha * 1000.0 * 1000.0 / cwnd;
        if w_cubic(t) < w_est {
          cwnd = w_est;
          reno += 1;
        } else {
          let target = w_cubic(t + 0.1).clamp(cwnd, 1.5 * cwnd);
          cwnd += (target - cwnd) * 1000.0 / cwnd;
          cubic += 1;
        }
        assert!(
          (c.cwnd - cwnd).abs() < 1e-6,
          "W_max {w_max}, {ms} ms: {} != {cwnd}",
          c.cwnd
        );
      }
      // The large window is in the cubic region from its second ACK (at the first, the curve is
      // at cwnd and W_est just above); the small one starts in the Reno region and leaves it
      if w_max > 50_000.0 {
        assert_eq!((reno, cubic), (1, times_ms.len() - 1));
      } else {
        assert!(reno > 0 && cubic > 0, "{reno} {cubic}");
      }
    }
  }

  /// After a loss the window is the threshold, so the sender is out of slow start; and neither
  /// goes below two packets (RFC 9438 §4.6), even where the minimum window allows less
  #[test]
  fn a_loss_leaves_slow_start_and_keeps_two_packets() {
    let mut c = Cubic::new(2000, 500, 10_000_000);
    c.on_congestion_event(Instant::ZERO, CongestionEvent::Loss, 1000);
    assert_eq!((c.window(), c.ssthresh), (2000, 2000.0));
    assert!(!c.in_slow_start());
    let mut c = Cubic::new(100_000, 500, 10_000_000);
    c.on_congestion_event(Instant::ZERO, CongestionEvent::Loss, 1000);
    assert_eq!(c.window(), 70_000);
    assert!(!c.in_slow_start());
  }

  /// Fast convergence (RFC 9438 §4.7) lowers W_max only when the loss comes below the previous
  /// maximum: a flow that got back to it exactly keeps it as its new maximum
  #[test]
  fn fast_convergence_only_below_the_previous_maximum() {
    let mut c = Cubic::new(100_000, 1000, 10_000_000);
    c.ssthresh = 100_000.0;
    c.w_max = 100_000.0;
    c.on_congestion_event(Instant::ZERO, CongestionEvent::Loss, 1000);
    assert_eq!(c.w_max, 100_000.0, "at the maximum: kept");
    c.cwnd = 90_000.0;
    c.on_congestion_event(Instant::ZERO, CongestionEvent::Loss, 1000);
    assert_eq!(c.w_max, 90_000.0 * (1.0 + BETA) / 2.0, "below it: released");
  }

  #[test]
  fn an_application_limited_sender_does_not_grow() {
    let mut c = Cubic::new(10_000, 1000, 10_000_000);
    let a = AckSample {
      window_limited: false,
      ..ack(1000, 100, 100)
    };
    for i in 0..100 {
      c.on_ack(Instant::from_micros(i * 1000), &a);
    }
    assert_eq!(c.window(), 10_000);
  }
}
