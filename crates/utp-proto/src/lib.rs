//! Sans-IO uTP: the Micro Transport Protocol of BEP 29, wire-compatible with libutp
//!
//! This crate holds every protocol decision and no I/O. It never reads a clock (each input carries
//! `now`), never draws ambient randomness (an [`Endpoint`] is seeded), and never touches a socket:
//!
//! - feed datagrams with [`Endpoint::handle_datagram`] and expired timers with
//!   [`Endpoint::handle_timeout`];
//! - drive the application side with [`Endpoint::connect`], [`Endpoint::write`],
//!   [`Endpoint::read`], [`Endpoint::shutdown`] and [`Endpoint::abort`];
//! - then pull outputs: [`Endpoint::poll_transmit`] until it returns `None`, [`Endpoint::poll_event`]
//!   until `None`, and sleep until [`Endpoint::poll_timeout`]. Any input can change all three.
//!
//! Connection ids follow BEP 29 and libutp: the initiator picks a random `recv_id`, puts it in the
//! SYN and sends everything after with `recv_id + 1`; the responder receives on `id + 1` and sends
//! with `id`. Any id is accepted. Datagrams that are not uTP (STUN, hole-punch probes, anything
//! else) are reported back to the caller, never answered with RESET.
//!
//! Specifications: <https://www.bittorrent.org/beps/bep_0029.html> (uTP),
//! <https://datatracker.ietf.org/doc/html/rfc6817> (LEDBAT).
#![warn(missing_docs)]

pub mod congestion;
mod conn;
mod endpoint;
mod pacing;
pub mod packet;
pub mod pmtu;
mod rng;
pub mod rtt;
pub mod seq;
pub mod time;
mod timers;

#[cfg(test)]
mod tests;

use core::time::Duration;
use std::net::SocketAddr;

pub use congestion::Congestion;
pub use conn::{CloseReason, ConnectionStats, Event, Read, WriteError};
pub use endpoint::{ConnectError, DatagramKind, Endpoint, EndpointStats, MigrateError};
pub use rng::Rng;
pub use time::Instant;

/// Identifies a connection within its [`Endpoint`]; never reused by that endpoint
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub u32);

/// A datagram [`Endpoint::poll_transmit`] wrote into the caller's buffer
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
  /// Where to send it
  pub destination: SocketAddr,
  /// Its length in bytes
  pub size: usize,
  /// A path MTU probe ([`pmtu`]): send it alone, with IP fragmentation forbidden, or it proves
  /// nothing about the path
  pub dont_fragment: bool,
}

/// Tunables shared by every connection of an endpoint
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
  /// Largest payload per packet, excluding the uTP header (utp-punch's `mtu`)
  pub max_payload: usize,
  /// Receive buffer per connection in bytes: the largest window we advertise
  pub recv_buffer: usize,
  /// Written-but-unacknowledged bytes past which `write` asks the caller to wait
  pub send_buffer: usize,
  /// Congestion window at the start, in bytes
  pub initial_window: usize,
  /// Ceiling of the congestion window, in bytes
  pub max_window: usize,
  /// Packets allowed in flight (the peer's reorder buffer: libutp keeps 1024)
  pub max_packets_in_flight: usize,
  /// Retransmission timeout before the first RTT sample
  pub initial_rto: Duration,
  /// Floor of the retransmission timeout (utp-punch's `resend`)
  pub min_rto: Duration,
  /// Ceiling of the backed-off retransmission timeout
  pub max_rto: Duration,
  /// A peer silent this long while we wait on it is declared dead (utp-punch's `timeout`)
  pub idle_timeout: Duration,
  /// Send a keepalive after this long without sending (utp-punch's `keepAlive`); zero disables
  pub keepalive: Duration,
  /// Connections an endpoint holds at once
  pub max_connections: usize,
  /// RESET packets per second sent in answer to unknown packets
  pub resets_per_second: u32,
  /// How long a peer's connection may wait for its handshake to be confirmed (a packet showing
  /// the peer got our SYN-ACK) before it is forgotten, unannounced
  pub handshake_timeout: Duration,
  /// Connections awaiting that confirmation, at most (over it, SYNs are dropped unanswered). They
  /// do not count against `max_connections`: a SYN flood cannot take the room of real connections
  pub max_unconfirmed: usize,
  /// The same, per source IP address (loopback sources excepted: local processes share it)
  pub max_unconfirmed_per_ip: usize,
  /// Packet size and buffers for peers on a loopback address, whose path MTU is 64 KiB: fewer,
  /// larger packets cost far less per byte there. The larger packets go only to a peer whose
  /// hello says it reads them (libtorrent reads 1,500 bytes and truncates the rest); until then
  /// packets have `max_payload`. `None` treats loopback peers like any other
  pub loopback: Option<Loopback>,
  /// Probe the path for payloads above `max_payload`, up to this many bytes (DPLPMTUD, see
  /// [`pmtu`]); 0 turns probing off. For IPv6 peers the ceiling is 20 bytes lower (larger header).
  /// Only toward peers whose hello says they answer probes ([`packet::Hello`])
  pub pmtu_ceiling: usize,
  /// Let one packet carry the ends of several writes. Off, each packet holds bytes of one write
  /// only, so a write shorter than a packet reaches the peer as one packet (utp-punch's
  /// behaviour, which programs that read each 'data' event as one message rely on)
  pub coalesce_writes: bool,
  /// The congestion controller new connections start with ([`Endpoint::set_congestion`] changes
  /// it per connection). It runs at the sender only, so any choice talks to any peer
  pub congestion: Congestion,
}

/// What [`Config::loopback`] changes for a loopback peer
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loopback {
  /// Largest payload per packet
  pub max_payload: usize,
  /// Receive and send buffer in bytes
  pub buffer: usize,
}

impl Config {
  /// The configuration a connection to `remote` runs with
  pub fn for_peer(&self, remote: SocketAddr) -> Config {
    match self.loopback {
      Some(l) if remote.ip().is_loopback() => Config {
        recv_buffer: l.buffer,
        send_buffer: l.buffer,
        // The same number of packets as the general setting allows
        initial_window: (self.initial_window / self.max_payload.max(1)).max(1) * l.max_payload,
        pmtu_ceiling: 0,
        ..*self
      },
      _ if remote.is_ipv6() => Config {
        pmtu_ceiling: self.pmtu_ceiling.saturating_sub(20),
        ..*self
      },
      _ => *self,
    }
  }
}

impl Default for Config {
  fn default() -> Self {
    Self {
      max_payload: 1000,
      recv_buffer: 64 * 1000,
      send_buffer: 64 * 1000,
      initial_window: 10 * 1000,
      max_window: 4 << 20,
      max_packets_in_flight: 1000,
      initial_rto: Duration::from_millis(1000),
      min_rto: Duration::from_millis(100),
      max_rto: Duration::from_secs(60),
      idle_timeout: Duration::from_millis(5000),
      loopback: None,
      pmtu_ceiling: 0,
      keepalive: Duration::from_millis(1000),
      max_connections: 32768,
      resets_per_second: 100,
      handshake_timeout: Duration::from_secs(5),
      max_unconfirmed: 4096,
      max_unconfirmed_per_ip: 64,
      coalesce_writes: false,
      congestion: Congestion::Ledbat,
    }
  }
}

#[cfg(test)]
mod config_tests {
  use super::*;

  /// A loopback peer gets the loopback buffers and packet size with the same number of packets in
  /// the initial window and no probing; an IPv6 peer a 20-byte lower probing ceiling; any other
  /// peer, or every peer when `loopback` is None, the configuration as it is
  #[test]
  fn each_peer_gets_its_path_s_configuration() {
    let cfg = Config {
      max_payload: 1000,
      initial_window: 10_000,
      recv_buffer: 1 << 20,
      send_buffer: 1 << 19,
      pmtu_ceiling: 1448,
      loopback: Some(Loopback {
        max_payload: 16_000,
        buffer: 64 * 16_000,
      }),
      ..Config::default()
    };
    let lo = cfg.for_peer("127.0.0.1:9".parse().unwrap());
    assert_eq!(
      (
        lo.recv_buffer,
        lo.send_buffer,
        lo.initial_window,
        lo.pmtu_ceiling,
        lo.max_payload
      ),
      (64 * 16_000, 64 * 16_000, 10 * 16_000, 0, 1000),
      "max_payload stays: the larger size waits for the peer's hello"
    );
    let lo6 = cfg.for_peer("[::1]:9".parse().unwrap());
    assert_eq!((lo6.recv_buffer, lo6.pmtu_ceiling), (64 * 16_000, 0));
    let v6 = cfg.for_peer("[2001:db8::1]:9".parse().unwrap());
    assert_eq!(
      (v6.recv_buffer, v6.send_buffer, v6.pmtu_ceiling),
      (1 << 20, 1 << 19, 1428)
    );
    let v4 = cfg.for_peer("192.0.2.1:9".parse().unwrap());
    assert_eq!(
      (v4.recv_buffer, v4.initial_window, v4.pmtu_ceiling),
      (1 << 20, 10_000, 1448)
    );
    let plain = Config {
      loopback: None,
      ..cfg
    };
    let lo = plain.for_peer("127.0.0.1:9".parse().unwrap());
    assert_eq!(
      (lo.recv_buffer, lo.initial_window, lo.pmtu_ceiling),
      (1 << 20, 10_000, 1448)
    );
    let odd = Config {
      initial_window: 2500,
      ..cfg
    }
    .for_peer("127.0.0.1:9".parse().unwrap());
    assert_eq!(
      odd.initial_window,
      2 * 16_000,
      "whole packets of the general setting"
    );
  }
}
