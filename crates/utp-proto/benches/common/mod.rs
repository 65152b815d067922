//! A perfect in-memory network between two endpoints, on a virtual clock
//!
//! Datagrams arrive after a fixed one-way `latency`, in order, never lost. Time jumps to the next
//! arrival or timer, so a run is deterministic and costs only the protocol's own CPU. Each bench
//! target includes this file as a module and uses the parts it needs.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use utp_proto::{Config, ConnectionHandle, Endpoint, Event, Instant};

/// Which endpoint of the pair
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
  A,
  B,
}

/// Two endpoints joined by a lossless link
pub struct Pair {
  pub a: Endpoint,
  pub b: Endpoint,
  pub now: Instant,
  pub latency: Duration,
  /// Datagrams on the wire, in arrival order: arrival time, receiving side, bytes
  pub wire: VecDeque<(Instant, Side, Vec<u8>)>,
  /// Spare datagram buffers, so steady state does not allocate
  spare: Vec<Vec<u8>>,
}

pub fn addr(side: Side) -> SocketAddr {
  let host = match side {
    Side::A => Ipv4Addr::new(10, 0, 0, 1),
    Side::B => Ipv4Addr::new(10, 0, 0, 2),
  };
  SocketAddr::new(IpAddr::V4(host), 4000)
}

impl Pair {
  /// Endpoints with `cfg`, fixed seeds; B listens
  pub fn new(cfg: Config, latency: Duration) -> Self {
    let mut b = Endpoint::new(cfg, 2);
    b.set_listening(true);
    Self {
      a: Endpoint::new(cfg, 1),
      b,
      now: Instant::from_micros(1_000_000),
      latency,
      wire: VecDeque::new(),
      spare: Vec::new(),
    }
  }

  pub fn endpoint(&mut self, side: Side) -> &mut Endpoint {
    match side {
      Side::A => &mut self.a,
      Side::B => &mut self.b,
    }
  }

  /// Put everything both endpoints want to send on the wire; returns the datagram count
  pub fn transmit(&mut self) -> usize {
    let mut sent = 0;
    for (from, to) in [(Side::A, Side::B), (Side::B, Side::A)] {
      loop {
        let mut buf = self.spare.pop().unwrap_or_default();
        let now = self.now;
        if self.endpoint(from).poll_transmit(now, &mut buf).is_none() {
          self.spare.push(buf);
          break;
        }
        self.wire.push_back((now + self.latency, to, buf));
        sent += 1;
      }
    }
    sent
  }

  /// Deliver every datagram due by now; returns how many
  pub fn deliver(&mut self) -> usize {
    let mut n = 0;
    while self.wire.front().is_some_and(|(at, _, _)| *at <= self.now) {
      let (_, to, buf) = self.wire.pop_front().unwrap();
      let now = self.now;
      let from = match to {
        Side::A => addr(Side::B),
        Side::B => addr(Side::A),
      };
      self.endpoint(to).handle_datagram(now, from, &buf);
      self.spare.push(buf);
      n += 1;
    }
    n
  }

  /// Run timers due by now on both sides
  pub fn timers(&mut self) {
    let now = self.now;
    for side in [Side::A, Side::B] {
      let ep = self.endpoint(side);
      if ep.poll_timeout().is_some_and(|t| t <= now) {
        ep.handle_timeout(now);
      }
    }
  }

  /// Jump to the next arrival or timer (or to `limit`, whichever is first); false if nothing is pending
  pub fn advance(&mut self, limit: Option<Instant>) -> bool {
    let next = [
      self.wire.front().map(|(at, _, _)| *at),
      self.a.poll_timeout(),
      self.b.poll_timeout(),
      limit,
    ]
    .into_iter()
    .flatten()
    .min();
    match next {
      Some(t) => {
        self.now = self.now.max(t);
        true
      }
      None => false,
    }
  }

  /// Open `n` connections from A to B and complete their handshakes; returns (A's, B's) handles
  pub fn connect(&mut self, n: usize) -> (Vec<ConnectionHandle>, Vec<ConnectionHandle>) {
    let now = self.now;
    let client: Vec<_> = (0..n)
      .map(|_| self.a.connect(now, addr(Side::B)).expect("connect"))
      .collect();
    let mut server = Vec::with_capacity(n);
    let mut connected = 0;
    while connected < n || server.len() < n {
      self.transmit();
      self.advance(None);
      self.deliver();
      self.timers();
      while let Some((h, ev)) = self.b.poll_event() {
        if ev == Event::Incoming {
          server.push(h);
        }
      }
      while let Some((_, ev)) = self.a.poll_event() {
        if ev == Event::Connected {
          connected += 1;
        }
      }
    }
    (client, server)
  }
}

/// A configuration whose windows are `packets` packets of `payload` bytes
pub fn config(payload: usize, packets: usize) -> Config {
  Config {
    max_payload: payload,
    recv_buffer: payload * packets,
    send_buffer: payload * packets,
    ..Config::default()
  }
}
