//! SACK processing: a sender with 128 packets in flight whose first packet was lost receives the
//! receiver's selective ACKs
//!
//! Two cases: the last of the receiver's ACKs arriving alone (127 packets newly acknowledged at
//! once, fast retransmit of the hole), and the same ACK after all the earlier ones (the usual case
//! in recovery: one new bit in a mask the sender has mostly seen).

mod common;

use std::time::Duration;

use common::{addr, config, Pair, Side};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use utp_proto::packet::decode;
use utp_proto::Config;

const PACKETS: usize = 128;

/// A at the moment the receiver's ACKs come back: (pair, ACKs B sent, in order)
fn setup() -> (Pair, Vec<Vec<u8>>) {
  let cfg = Config {
    initial_window: PACKETS * 1000,
    ..config(1000, PACKETS)
  };
  let mut p = Pair::new(cfg, Duration::from_micros(50));
  let (client, _) = p.connect(1);
  p.a.write(client[0], &vec![7u8; PACKETS * 1000]).unwrap();
  p.transmit();
  assert_eq!(p.wire.len(), PACKETS, "the whole window goes out in one burst");
  p.wire.pop_front(); // lost
  p.advance(None);
  p.deliver();
  let mut acks = Vec::new();
  let mut buf = Vec::new();
  while p.b.poll_transmit(p.now, &mut buf).is_some() {
    acks.push(buf.clone());
  }
  let last = decode(acks.last().expect("B acknowledges")).unwrap();
  assert!(last.sack.is_some(), "B's ACK carries a selective ACK");
  p.now = p.now + p.latency;
  (p, acks)
}

fn bench(c: &mut Criterion) {
  let mut g = c.benchmark_group("sack");
  g.bench_function("ACK with 127 new SACK bits", |b| {
    b.iter_batched(
      || {
        let (p, mut acks) = setup();
        let last = acks.pop().unwrap();
        (p, last)
      },
      |(mut p, ack)| {
        let now = p.now;
        p.a.handle_datagram(now, addr(Side::B), &ack);
        p
      },
      BatchSize::SmallInput,
    )
  });
  g.bench_function("ACK with 1 new SACK bit (after the others)", |b| {
    b.iter_batched(
      || {
        let (mut p, mut acks) = setup();
        let last = acks.pop().unwrap();
        let now = p.now;
        for ack in &acks {
          p.a.handle_datagram(now, addr(Side::B), ack);
        }
        (p, last)
      },
      |(mut p, ack)| {
        let now = p.now;
        p.a.handle_datagram(now, addr(Side::B), &ack);
        p
      },
      BatchSize::SmallInput,
    )
  });
  g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
