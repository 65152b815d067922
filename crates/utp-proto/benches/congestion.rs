//! LEDBAT controller updates and the RTT estimator, driven with synthetic acknowledgements

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use utp_proto::congestion::{AckSample, CongestionEvent, Controller, Ledbat};
use utp_proto::rtt::RttEstimator;
use utp_proto::Instant;

const ACKS: u64 = 1000;

fn bench(c: &mut Criterion) {
  let mut g = c.benchmark_group("congestion");
  g.throughput(Throughput::Elements(ACKS));
  // One-way delays wander between 0 and 150 ms of queueing over an arbitrary clock offset,
  // so the window both grows and shrinks
  let delays: Vec<u32> = (0..ACKS)
    .map(|i| 3_000_000_000u32.wrapping_add(((i * 7919) % 150) as u32 * 1000))
    .collect();
  g.bench_function("Ledbat::on_ack x1000", |b| {
    let mut cc = Ledbat::new(10_000, 1000, 4 << 20);
    let mut now = 1_000_000u64;
    b.iter(|| {
      for &d in &delays {
        now += 100;
        let ack = AckSample {
          one_way_delay: Some(d),
          ..AckSample::new(1000, cc.window(), 1000)
        };
        cc.on_ack(Instant::from_micros(now), black_box(&ack));
      }
      black_box(cc.window())
    })
  });
  g.bench_function("Ledbat loss + on_ack x1000", |b| {
    let mut cc = Ledbat::new(10_000, 1000, 4 << 20);
    let mut now = 1_000_000u64;
    b.iter(|| {
      for (i, &d) in delays.iter().enumerate() {
        now += 1000;
        if i % 50 == 0 {
          cc.on_congestion_event(Instant::from_micros(now), CongestionEvent::Loss, 1000);
        }
        let ack = AckSample {
          one_way_delay: Some(d),
          ..AckSample::new(1000, cc.window(), 1000)
        };
        cc.on_ack(Instant::from_micros(now), black_box(&ack));
      }
      black_box(cc.window())
    })
  });
  g.bench_function("RttEstimator::on_sample x1000", |b| {
    let mut rtt = RttEstimator::new(
      Duration::from_secs(1),
      Duration::from_millis(100),
      Duration::from_secs(60),
    );
    b.iter(|| {
      for i in 0..ACKS {
        rtt.on_sample(black_box(Duration::from_micros(20_000 + (i * 37) % 5000)));
      }
      black_box(rtt.rto())
    })
  });
  g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
