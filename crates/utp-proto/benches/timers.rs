//! Endpoint timers at scale: 10,000 idle connection pairs, one virtual second at a time
//!
//! The timer queue itself is private to the crate, so it is measured through the endpoint: every
//! connection's keepalive deadline comes due once a second, fires, and is rescheduled, and the
//! keepalive and its ACK cross the in-memory link. One iteration is one second of that.

mod common;

use std::time::Duration;

use common::{config, Pair};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const CONNECTIONS: usize = 10_000;

fn bench(c: &mut Criterion) {
  let mut p = Pair::new(config(1000, 64), Duration::from_micros(50));
  p.connect(CONNECTIONS);
  let mut g = c.benchmark_group("timers");
  g.sample_size(20);
  g.throughput(Throughput::Elements(CONNECTIONS as u64));
  g.bench_function("10,000 idle connection pairs, 1 s of keepalives", |b| {
    b.iter(|| {
      let end = p.now + Duration::from_secs(1);
      let mut datagrams = 0;
      loop {
        datagrams += p.transmit();
        p.advance(Some(end));
        p.deliver();
        p.timers();
        while p.a.poll_event().is_some() || p.b.poll_event().is_some() {}
        if p.now >= end {
          break;
        }
      }
      datagrams
    })
  });
  g.finish();
  assert_eq!(
    p.a.open_connections().len(),
    CONNECTIONS,
    "keepalives kept every connection open"
  );
}

criterion_group!(benches, bench);
criterion_main!(benches);
