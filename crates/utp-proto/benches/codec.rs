//! Packet encode and decode: a full DATA packet, and a STATE packet with a selective ACK

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use utp_proto::packet::{decode, Header, Ours, Packet, PacketType, SelectiveAck};
use utp_proto::seq::SeqNr;

fn header(ty: PacketType) -> Header {
  Header {
    ty,
    conn_id: 0x1234,
    timestamp: 0xdead_beef,
    timestamp_diff: 12_345,
    wnd_size: 64_000,
    seq_nr: SeqNr(40_000),
    ack_nr: SeqNr(39_000),
  }
}

fn bench(c: &mut Criterion) {
  let payload = vec![0xa5u8; 1000];
  let data = Packet {
    header: header(PacketType::Data),
    sack: None,
    ours: Ours::NONE,
    payload: &payload,
  };
  // Every other packet of the 256 past the cumulative ACK arrived
  let mask = [0x55u8; 32];
  let state = Packet {
    header: header(PacketType::State),
    sack: Some(SelectiveAck::new(&mask).unwrap()),
    ours: Ours::NONE,
    payload: &[],
  };
  let mut data_wire = Vec::new();
  data.encode(&mut data_wire);
  let mut state_wire = Vec::new();
  state.encode(&mut state_wire);

  let mut g = c.benchmark_group("codec");
  g.throughput(Throughput::Elements(1));
  let mut buf = Vec::with_capacity(2048);
  g.bench_function("encode DATA 1000 B", |b| {
    b.iter(|| {
      buf.clear();
      black_box(&data).encode(&mut buf);
      black_box(buf.len())
    })
  });
  g.bench_function("decode DATA 1000 B", |b| {
    b.iter(|| decode(black_box(&data_wire)).unwrap().payload.len())
  });
  g.bench_function("encode STATE + 32 B SACK", |b| {
    b.iter(|| {
      buf.clear();
      black_box(&state).encode(&mut buf);
      black_box(buf.len())
    })
  });
  g.bench_function("decode STATE + 32 B SACK", |b| {
    b.iter(|| decode(black_box(&state_wire)).unwrap().sack.is_some())
  });
  g.bench_function("decode STATE + iterate 128 SACKed seqs", |b| {
    b.iter(|| {
      let pkt = decode(black_box(&state_wire)).unwrap();
      pkt.sack.unwrap().acked(pkt.header.ack_nr).count()
    })
  });
  g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
