//! Drive one `Endpoint` with an arbitrary sequence of datagrams from a few fixed peers, time
//! advances, timer runs and application calls; nothing may panic, every output must be pulled to
//! exhaustion, and every datagram the endpoint emits must be a uTP packet we can decode.
//!
//! Besides raw bytes, `Op::Reply` builds a well-formed packet from the last one the endpoint sent
//! to that peer (connection id, seq and ack nudged by small deltas), so the fuzzer gets past the
//! demultiplexer into the connection state machine without having to guess 16-bit ids.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use utp_proto::packet::{self, Header, Ours, Packet, PacketType, SelectiveAck};
use utp_proto::seq::SeqNr;
use utp_proto::{Config, ConnectionHandle, Endpoint, Event, Instant};

/// Bound on outputs pulled per step: more means `poll_transmit` / `poll_event` never ends
const MAX_PULLS: usize = 100_000;
/// Bound on `handle_timeout` calls at one instant before its deadline must lie in the future
const MAX_TIMER_ROUNDS: usize = 1_000;

fn peers() -> [SocketAddr; 3] {
  [
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, 1), 6881)),
    SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 40000)),
    SocketAddr::from((Ipv6Addr::LOCALHOST, 7000)),
  ]
}

/// One step of a run. The variant order is part of the corpus format (`seeds.rs` encodes it)
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
  /// Raw bytes from peer `from % 3`
  Datagram {
    from: u8,
    data: Vec<u8>,
  },
  /// A well-formed packet answering the last one sent to peer `from % 3`
  Reply {
    from: u8,
    ty: u8,
    id_delta: i8,
    seq_delta: i8,
    ack_delta: i8,
    wnd_size: u32,
    timestamp_diff: u32,
    sack: Option<[u8; 4]>,
    payload_len: u16,
  },
  /// Move the clock forward by this many milliseconds
  Advance(u16),
  /// Move the clock forward by this many microseconds
  AdvanceMicros(u16),
  /// Jump to `poll_timeout` (if any) and run the timers
  Timeout,
  /// Open a connection to peer `to % 3` (honoured once per run)
  Connect(u8),
  /// Application write of `len` bytes on connection `conn % n`
  Write {
    conn: u8,
    len: u16,
  },
  /// Application read of up to `max` bytes
  Read {
    conn: u8,
    max: u16,
  },
  Shutdown(u8),
  Abort(u8),
  Listen(bool),
}

/// A whole run: the endpoint's random seed, then the steps
#[derive(Arbitrary, Debug, Clone)]
pub struct Input {
  pub seed: u64,
  pub ops: Vec<Op>,
}

/// How deep a run got, so seeds can be checked to reach the state machine's interior
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
  /// Connections that reached `Event::Connected` or `Event::Incoming`
  pub connected: usize,
  /// Bytes the application read
  pub bytes_read: usize,
  /// Datagrams the endpoint sent
  pub datagrams_sent: usize,
  /// Connections that ended (closed, reset or timed out)
  pub closed: usize,
}

struct Harness {
  ep: Endpoint,
  now: Instant,
  peers: [SocketAddr; 3],
  handles: Vec<ConnectionHandle>,
  /// Last header sent to each peer
  last_sent: HashMap<SocketAddr, Header>,
  buf: Vec<u8>,
  depth: Depth,
}

impl Harness {
  fn handle(&self, i: u8) -> Option<ConnectionHandle> {
    (!self.handles.is_empty()).then(|| self.handles[i as usize % self.handles.len()])
  }

  /// Pull every transmit and every event, checking what comes out
  fn drain(&mut self) {
    let mut n = 0;
    while let Some(t) = self.ep.poll_transmit(self.now, &mut self.buf) {
      n += 1;
      assert!(n < MAX_PULLS, "poll_transmit never returned None");
      assert_eq!(t.size, self.buf.len());
      assert!(
        self.peers.contains(&t.destination),
        "sent to a stranger: {}",
        t.destination
      );
      let pkt = packet::decode(&self.buf)
        .unwrap_or_else(|e| panic!("emitted an undecodable packet ({e}): {:02x?}", self.buf));
      self.last_sent.insert(t.destination, pkt.header);
      self.depth.datagrams_sent += 1;
    }
    let mut n = 0;
    while let Some((h, ev)) = self.ep.poll_event() {
      n += 1;
      assert!(n < MAX_PULLS, "poll_event never returned None");
      match ev {
        Event::Incoming => {
          self.handles.push(h);
          self.depth.connected += 1;
        }
        Event::Connected => self.depth.connected += 1,
        Event::Closed(_) => self.depth.closed += 1,
        _ => {}
      }
    }
  }
}

/// One input as libFuzzer hands it over: bytes, decoded the way `fuzz_target!` decodes them
pub fn run(data: &[u8]) {
  if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) {
    run_input(input);
  }
}

/// Run one decoded input; panics on a violated property
pub fn run_input(input: Input) -> Depth {
  let mut hx = Harness {
    ep: Endpoint::new(Config::default(), input.seed),
    now: Instant::from_micros(1_000_000),
    peers: peers(),
    handles: Vec::new(),
    last_sent: HashMap::new(),
    buf: Vec::new(),
    depth: Depth::default(),
  };
  hx.ep.set_listening(true);
  let mut connected = false;
  let zeros = vec![0x5au8; u16::MAX as usize];

  for op in input.ops {
    match op {
      Op::Datagram { from, data } => {
        let from = hx.peers[from as usize % 3];
        hx.ep.handle_datagram(hx.now, from, &data);
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
        let from = hx.peers[from as usize % 3];
        let last = hx.last_sent.get(&from).copied();
        let (conn_id, seq, ack) = match last {
          // The peer's next seq is what we acknowledged plus one; it acknowledges our seq
          Some(h) => (h.conn_id, h.ack_nr.add(1), h.seq_nr),
          None => (0, SeqNr(0), SeqNr(0)),
        };
        let ty = [
          PacketType::Data,
          PacketType::Fin,
          PacketType::State,
          PacketType::Reset,
          PacketType::Syn,
        ][ty as usize % 5];
        let header = Header {
          ty,
          conn_id: conn_id.wrapping_add(id_delta as u16),
          timestamp: hx.now.wire_timestamp(),
          timestamp_diff,
          wnd_size,
          seq_nr: SeqNr(seq.0.wrapping_add(seq_delta as u16)),
          ack_nr: SeqNr(ack.0.wrapping_add(ack_delta as u16)),
        };
        let sack = sack.as_ref().and_then(|b| SelectiveAck::new(b).ok());
        let payload = &zeros[..(payload_len as usize).min(1400)];
        let mut dgram = Vec::new();
        Packet {
          header,
          sack,
          ours: Ours::NONE,
          payload,
        }
        .encode(&mut dgram);
        hx.ep.handle_datagram(hx.now, from, &dgram);
      }
      Op::Advance(ms) => hx.now = hx.now + Duration::from_millis(ms.into()),
      Op::AdvanceMicros(us) => hx.now = hx.now + Duration::from_micros(us.into()),
      Op::Timeout => {
        if let Some(at) = hx.ep.poll_timeout() {
          hx.now = hx.now.max(at);
        }
        // A driver sleeps until `poll_timeout` and then calls `handle_timeout`: with the clock
        // standing still, the deadline must move past `now` within a few rounds, or it would spin
        for round in 0.. {
          hx.ep.handle_timeout(hx.now);
          hx.drain();
          if hx.ep.poll_timeout().is_none_or(|at| at > hx.now) {
            break;
          }
          assert!(
            round < MAX_TIMER_ROUNDS,
            "timers still due at {:?} after {round} rounds",
            hx.now
          );
        }
      }
      Op::Connect(to) => {
        if !connected {
          connected = true;
          if let Ok(h) = hx.ep.connect(hx.now, hx.peers[to as usize % 3]) {
            hx.handles.push(h);
          }
        }
      }
      Op::Write { conn, len } => {
        if let Some(h) = hx.handle(conn) {
          let _ = hx.ep.write(h, &zeros[..len as usize]);
        }
      }
      Op::Read { conn, max } => {
        if let Some(h) = hx.handle(conn) {
          let mut out = Vec::new();
          let n = hx.ep.read(h, &mut out, max as usize).bytes;
          assert_eq!(n, out.len());
          assert!(n <= max as usize);
          hx.depth.bytes_read += n;
        }
      }
      Op::Shutdown(conn) => {
        if let Some(h) = hx.handle(conn) {
          hx.ep.shutdown(h);
        }
      }
      Op::Abort(conn) => {
        if let Some(h) = hx.handle(conn) {
          hx.ep.abort(hx.now, h);
        }
      }
      Op::Listen(on) => hx.ep.set_listening(on),
    }
    // Timers that are due run before outputs are pulled, as a driver would
    if hx.ep.poll_timeout().is_some_and(|at| at <= hx.now) {
      hx.ep.handle_timeout(hx.now);
    }
    hx.drain();
  }
  hx.depth
}
