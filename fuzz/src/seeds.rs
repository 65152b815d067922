//! The `endpoint` target's seed corpus, written as scripts and encoded to the bytes the target
//! decodes. Random bytes almost never hold a handshake (the reply must carry the right ids and
//! sequence numbers), so without seeds both fuzzers would spend their time at the door. Each
//! script reaches a state worth mutating from: connected, transferring, losing packets, closing.
//!
//! The encoding is the inverse of `arbitrary` 1.x's derive for `Input` (see its `Unstructured`):
//! integers little-endian; an enum variant is a u32 `v` chosen so that `(v * variants) >> 32` is
//! its index; `Option` and `bool` a byte whose low bit says yes; a `Vec` an element after each
//! byte 1, ended by a 0 or by the end of the input (the last field, `ops`).
//! `fuzz-ci make-seeds` writes them to `corpus/endpoint/`; a test checks that the committed files
//! are these bytes and that each run gets as deep as its name says.

use crate::endpoint::{Input, Op};

/// Variants of `Op`, in declaration order
const OP_VARIANTS: u64 = 11;

fn variant(out: &mut Vec<u8>, index: u64) {
  // The smallest v with (v * n) >> 32 == index
  let v = (index << 32).div_ceil(OP_VARIANTS);
  out.extend_from_slice(&(v as u32).to_le_bytes());
}

fn encode_op(out: &mut Vec<u8>, op: &Op) {
  match op {
    Op::Datagram { from, data } => {
      variant(out, 0);
      out.push(*from);
      for &b in data {
        out.extend_from_slice(&[1, b]);
      }
      out.push(0);
    }
    Op::Reply {
      from,
      ty,
      id_delta,
      seq_delta,
      ack_delta,
      wnd_size,
      timestamp_diff,
      sack,
      payload_len,
    } => {
      variant(out, 1);
      out.extend_from_slice(&[*from, *ty, *id_delta as u8, *seq_delta as u8, *ack_delta as u8]);
      out.extend_from_slice(&wnd_size.to_le_bytes());
      out.extend_from_slice(&timestamp_diff.to_le_bytes());
      match sack {
        Some(bits) => {
          out.push(1);
          out.extend_from_slice(bits);
        }
        None => out.push(0),
      }
      out.extend_from_slice(&payload_len.to_le_bytes());
    }
    Op::Advance(ms) => {
      variant(out, 2);
      out.extend_from_slice(&ms.to_le_bytes());
    }
    Op::AdvanceMicros(us) => {
      variant(out, 3);
      out.extend_from_slice(&us.to_le_bytes());
    }
    Op::Timeout => variant(out, 4),
    Op::Connect(to) => {
      variant(out, 5);
      out.push(*to);
    }
    Op::Write { conn, len } => {
      variant(out, 6);
      out.push(*conn);
      out.extend_from_slice(&len.to_le_bytes());
    }
    Op::Read { conn, max } => {
      variant(out, 7);
      out.push(*conn);
      out.extend_from_slice(&max.to_le_bytes());
    }
    Op::Shutdown(conn) => {
      variant(out, 8);
      out.push(*conn);
    }
    Op::Abort(conn) => {
      variant(out, 9);
      out.push(*conn);
    }
    Op::Listen(on) => {
      variant(out, 10);
      out.push(u8::from(*on));
    }
  }
}

/// The bytes that decode to `input`
pub fn encode(input: &Input) -> Vec<u8> {
  let mut out = input.seed.to_le_bytes().to_vec();
  for op in &input.ops {
    out.push(1);
    encode_op(&mut out, op);
  }
  out
}

// Reply types, indexing the target's table
const DATA: u8 = 0;
const FIN: u8 = 1;
const STATE: u8 = 2;
const RESET: u8 = 3;

/// A well-formed reply from peer `from` to the last packet sent there, moved by `deltas`
fn reply(from: u8, ty: u8, deltas: (i8, i8, i8), sack: Option<[u8; 4]>, payload_len: u16) -> Op {
  Op::Reply {
    from,
    ty,
    id_delta: deltas.0,
    seq_delta: deltas.1,
    ack_delta: deltas.2,
    wnd_size: 1 << 20,
    timestamp_diff: 20_000,
    sack,
    payload_len,
  }
}

// The id a reply carries is ours to receive on. Our SYN carries that id itself, but every later
// packet of a connection we opened carries the peer's (ours + 1), and every packet of one we
// accepted the peer's SYN id (ours - 1): replies to those are moved by -1 and +1
const TO_SYN: i8 = 0;
const OPENED: i8 = -1;
const ACCEPTED: i8 = 1;

fn ack(from: u8, id: i8) -> Op {
  reply(from, STATE, (id, 0, 0), None, 0)
}

/// A SYN from a peer that wants to open a connection: id 0x1234, seq 100
fn syn_bytes() -> Vec<u8> {
  let mut h = vec![0x41, 0, 0x12, 0x34];
  h.extend_from_slice(&1_000_000u32.to_be_bytes());
  h.extend_from_slice(&0u32.to_be_bytes());
  h.extend_from_slice(&(1u32 << 20).to_be_bytes());
  h.extend_from_slice(&100u16.to_be_bytes());
  h.extend_from_slice(&0u16.to_be_bytes());
  h
}

/// Every seed: its file name and its script
pub fn all() -> Vec<(&'static str, Input)> {
  let run = |seed, ops| Input { seed, ops };
  vec![
    (
      // Open, send 6,000 bytes acknowledged as they go, receive 900, close both ways
      "connect_transfer_close",
      run(
        1,
        vec![
          Op::Connect(1),
          ack(1, TO_SYN),
          Op::Write { conn: 0, len: 6000 },
          Op::Advance(30),
          ack(1, OPENED),
          reply(1, DATA, (OPENED, 0, 0), None, 900),
          Op::Read { conn: 0, max: 2000 },
          Op::Shutdown(0),
          ack(1, OPENED),
          reply(1, FIN, (OPENED, 0, 0), None, 0),
          Op::Timeout,
          Op::Advance(2000),
          Op::Timeout,
        ],
      ),
    ),
    (
      // A peer connects to us, sends data, we answer, it resets
      "accept_receive_reset",
      run(
        2,
        vec![
          Op::Datagram {
            from: 0,
            data: syn_bytes(),
          },
          // The initiator acknowledges our SYN-ACK's seq - 1 (libutp's and libtorrent's ack_nr)
          reply(0, STATE, (ACCEPTED, 0, -1), None, 0),
          reply(0, DATA, (ACCEPTED, 0, -1), None, 1200),
          reply(0, DATA, (ACCEPTED, 0, -1), None, 1200),
          Op::Read { conn: 0, max: 5000 },
          Op::Write { conn: 0, len: 300 },
          Op::Advance(50),
          reply(0, RESET, (ACCEPTED, 0, 0), None, 0),
          Op::Timeout,
        ],
      ),
    ),
    (
      // A window of packets, a selective ACK with holes, duplicate ACKs, then the timer: loss
      // recovery, fast retransmit and the retransmission timeout
      "sack_loss_and_timeout",
      run(
        3,
        vec![
          Op::Connect(2),
          ack(2, TO_SYN),
          Op::Write { conn: 0, len: 20_000 },
          Op::Advance(20),
          reply(2, STATE, (OPENED, 0, -12), Some([0b1011_0110, 0xff, 0, 0]), 0),
          reply(2, STATE, (OPENED, 0, -12), Some([0b1011_0110, 0xff, 0x0f, 0]), 0),
          reply(2, STATE, (OPENED, 0, -12), Some([0b1111_0110, 0xff, 0x0f, 0]), 0),
          Op::Advance(400),
          Op::Timeout,
          Op::Advance(1200),
          Op::Timeout,
          ack(2, OPENED),
          Op::Timeout,
        ],
      ),
    ),
    (
      // Nobody answers: SYN retries until the connection gives up
      "unanswered_syn",
      run(
        4,
        vec![
          Op::Connect(0),
          Op::Timeout,
          Op::Timeout,
          Op::Timeout,
          Op::Timeout,
          Op::Timeout,
          Op::Timeout,
          Op::Timeout,
          Op::Timeout,
        ],
      ),
    ),
    (
      // Out-of-order and duplicate data, a reader that stops, a zero window, keepalives
      "reorder_and_zero_window",
      run(
        5,
        vec![
          Op::Connect(1),
          ack(1, TO_SYN),
          // Each reply is moved by its place in the stream: the third packet first, then the
          // second, then the first. Our ACK of the third (with a SACK) is the last packet sent
          // from then on; a STATE's seq is the next one we will send, so replies acknowledge one
          // less
          Op::Write { conn: 0, len: 10 },
          reply(1, DATA, (OPENED, 2, 0), None, 1000),
          reply(1, DATA, (OPENED, 1, -1), None, 1000),
          reply(1, DATA, (OPENED, 0, -1), None, 1000),
          reply(1, DATA, (OPENED, 0, -1), None, 1000),
          Op::Read { conn: 0, max: 1500 },
          Op::Reply {
            from: 1,
            ty: STATE,
            id_delta: OPENED,
            seq_delta: 0,
            ack_delta: -1,
            wnd_size: 0,
            timestamp_diff: 0,
            sack: None,
            payload_len: 0,
          },
          Op::Write { conn: 0, len: 4000 },
          Op::Advance(3000),
          Op::Timeout,
          Op::Advance(3000),
          Op::Timeout,
          Op::Abort(0),
        ],
      ),
    ),
  ]
}

#[cfg(test)]
mod tests {
  use std::path::Path;

  use arbitrary::{Arbitrary, Unstructured};

  use super::*;
  use crate::endpoint::run_input;

  /// The encoding decodes back to the script, op for op
  #[test]
  fn seeds_decode_to_their_scripts() {
    for (name, input) in all() {
      let bytes = encode(&input);
      let back = Input::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
      assert_eq!(format!("{back:?}"), format!("{input:?}"), "{name}");
    }
  }

  /// Each seed gets where its name says, and the committed corpus holds exactly these bytes
  /// (regenerate with `cargo run -p utp-proto-fuzz --bin fuzz-ci -- make-seeds`)
  #[test]
  fn seeds_reach_the_state_machine_and_are_committed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/endpoint");
    for (name, input) in all() {
      let bytes = encode(&input);
      let d = run_input(input);
      match name {
        "connect_transfer_close" => {
          assert_eq!(d.connected, 1, "{name}: {d:?}");
          assert!(d.bytes_read >= 900, "{name}: {d:?}");
          assert!(d.closed >= 1, "{name}: {d:?}");
        }
        "accept_receive_reset" => {
          assert_eq!(d.connected, 1, "{name}: {d:?}");
          assert!(d.bytes_read >= 2400, "{name}: {d:?}");
          assert_eq!(d.closed, 1, "{name}: {d:?}");
        }
        "sack_loss_and_timeout" => {
          assert_eq!(d.connected, 1, "{name}: {d:?}");
          assert!(d.datagrams_sent > 25, "{name}: {d:?}");
        }
        "unanswered_syn" => {
          assert_eq!((d.connected, d.closed), (0, 1), "{name}: {d:?}");
        }
        "reorder_and_zero_window" => {
          assert_eq!(d.connected, 1, "{name}: {d:?}");
          assert!(d.bytes_read >= 1500, "{name}: {d:?}");
          assert_eq!(d.closed, 1, "{name}: {d:?}");
        }
        other => panic!("no expectation for seed {other}"),
      }
      let committed = std::fs::read(dir.join(format!("{name}.bin")));
      assert_eq!(
        committed.ok(),
        Some(bytes),
        "corpus/endpoint/{name}.bin is stale: run make-seeds"
      );
    }
  }
}
