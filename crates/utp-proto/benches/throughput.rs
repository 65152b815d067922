//! Whole-connection CPU cost: 4 MiB from A to B over a perfect link on a virtual clock
//!
//! Everything a transfer does in the protocol core (segmenting, ACKs, RTT, LEDBAT, pacing, window
//! updates, timers) but no syscalls. Throughput is CPU throughput: 1e9 / (bytes per second) is the
//! core's CPU seconds per GB.

mod common;

use std::time::Duration;

use common::{config, Pair};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use utp_proto::{Config, Event};

const TOTAL: usize = 4 << 20;

/// Move TOTAL bytes A -> B, reading as data arrives; returns the bytes received
fn transfer(cfg: Config) -> usize {
  let mut p = Pair::new(cfg, Duration::from_micros(50));
  let (client, server) = p.connect(1);
  let (ha, hb) = (client[0], server[0]);
  let chunk = vec![0x5au8; 64 << 10];
  let mut out = Vec::with_capacity(cfg.recv_buffer);
  let (mut written, mut received, mut blocked) = (0, 0, false);
  while received < TOTAL {
    while !blocked && written < TOTAL {
      let n = (TOTAL - written).min(chunk.len());
      blocked = p.a.write(ha, &chunk[..n]).unwrap() >= cfg.send_buffer;
      written += n;
    }
    p.transmit();
    assert!(p.advance(None), "transfer stalled at {received} bytes");
    p.deliver();
    p.timers();
    while let Some((_, ev)) = p.a.poll_event() {
      if ev == Event::Writable {
        blocked = false;
      }
    }
    while let Some((_, ev)) = p.b.poll_event() {
      if ev == Event::Readable {
        loop {
          out.clear();
          let n = p.b.read(hb, &mut out, usize::MAX).bytes;
          received += n;
          if n == 0 {
            break;
          }
        }
      }
    }
  }
  received
}

fn bench(c: &mut Criterion) {
  let mut g = c.benchmark_group("connection");
  g.sample_size(20);
  g.throughput(Throughput::BytesDecimal(TOTAL as u64));
  let cases = [
    ("4 MiB, default (1000 B x 64 packets)", config(1000, 64)),
    ("4 MiB, 1380 B x 64 packets", config(1380, 64)),
    ("4 MiB, 1000 B x 1024 packets", config(1000, 1024)),
  ];
  for (name, cfg) in cases {
    assert_eq!(transfer(cfg), TOTAL);
    g.bench_function(name, |b| b.iter(|| transfer(cfg)));
  }
  g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
