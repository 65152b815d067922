//! One uTP connection: handshake, reliability, flow and congestion control, close
//!
//! A connection only ever sees packets the endpoint has already matched to it by remote address
//! and connection id. Inputs are `handle_*` calls with the current time; outputs are pulled with
//! [`Connection::poll_transmit`] and [`Connection::next_deadline`], and events are appended to the
//! endpoint's queue.

mod recv_buf;
mod send_buf;

use core::time::Duration;
use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::congestion::{AckSample, Congestion, CongestionEvent, Controller, Cubic, Ledbat};
use crate::pacing::Pacer;
use crate::packet::{Fragment, Header, Hello, Ours, Packet, PacketType, SelectiveAck, MAX_SACK_BYTES};
use crate::pmtu::{self, PathMtu};
use crate::rtt::RttEstimator;
use crate::seq::SeqNr;
use crate::time::Instant;
use crate::{Config, ConnectionHandle};
use recv_buf::{Arrival, RecvBuffer};
use send_buf::SendBuffer;

/// Something the application should know about a connection
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
  /// A connection we opened completed its handshake
  Connected,
  /// A peer opened a connection to us (only while listening)
  Incoming,
  /// Data, or the end of the peer's stream, can be read with `read`
  Readable,
  /// The send buffer drained below its limit after a write reported it full
  Writable,
  /// No packet from the peer of an open connection for its silence limit (the idle timeout, or
  /// what [`crate::Endpoint::set_timeout`] set): utp-punch's 'timeout', a notice. Once per silence:
  /// the next comes after a packet arrived and the peer fell silent again. A peer that should be
  /// answering (data or a keepalive outstanding) and stays silent twice the limit closes the
  /// connection with [`CloseReason::TimedOut`]; the application may end or abort it first
  Timeout,
  /// The connection is over; nothing more will be sent or received
  Closed(CloseReason),
}

/// Why a connection ended
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
  /// Both sides finished (FIN sent and acknowledged, FIN received)
  #[error("connection closed")]
  Finished,
  /// The peer sent RESET
  #[error("connection reset by peer")]
  Reset,
  /// The peer answered our SYN with RESET (nobody listening)
  #[error("connection refused")]
  Refused,
  /// Nothing was heard from the peer within the configured timeout
  #[error("connection timed out")]
  TimedOut,
  /// The local application aborted the connection
  #[error("connection aborted")]
  Aborted,
}

/// What one read moved to the caller
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Read {
  /// Bytes appended
  pub bytes: usize,
  /// The peer's stream has ended and everything in it was read
  pub eof: bool,
  /// The last byte read is the last byte of one of the peer's writes: the read stopped there
  /// (only one of our peers says where its writes end, see `packet::Hello`)
  pub ends_write: bool,
}

/// Why a write was refused
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
  /// `shutdown` was already called on this connection
  #[error("write after end")]
  AfterShutdown,
  /// The connection is closed
  #[error("connection is closed")]
  Closed,
}

/// Counters and estimates for one connection
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConnectionStats {
  /// Smoothed round-trip time in microseconds (0 before the first sample)
  pub rtt_us: u64,
  /// Round-trip time variance in microseconds
  pub rttvar_us: u64,
  /// Current retransmission timeout in microseconds
  pub rto_us: u64,
  /// Congestion window in bytes
  pub cwnd: usize,
  /// Payload bytes in flight
  pub in_flight: usize,
  /// Receive window the peer last advertised
  pub peer_window: usize,
  /// Receive window we advertise
  pub recv_window: usize,
  /// Estimated queuing delay on the path to the peer, in microseconds
  pub queuing_delay_us: u64,
  /// Largest payload per packet
  pub max_payload: usize,
  /// Payload bytes sent, retransmissions included
  pub bytes_sent: u64,
  /// Payload bytes received in order
  pub bytes_received: u64,
  /// Datagrams sent
  pub packets_sent: u64,
  /// Datagrams received for this connection
  pub packets_received: u64,
  /// Packets sent again after loss or timeout
  pub retransmits: u64,
  /// Retransmission timer expiries
  pub timeouts: u64,
  /// Data packets received that we already had
  pub duplicates: u64,
  /// Times the window was cut for loss (once per flight) or a timeout
  pub congestion_events: u64,
  /// Times large packets stopped getting through and the packet size fell back (black holes)
  pub black_holes: u64,
  /// Retransmission timeouts found spurious afterwards (the original packet's ACK came) and undone
  pub spurious_timeouts: u64,
  /// The congestion controller the sending side runs
  pub congestion: Congestion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
  /// SYN sent, waiting for the peer's STATE
  SynSent,
  /// A peer's SYN answered, waiting for a packet that shows the peer got our SYN-ACK (TCP's
  /// SYN_RECEIVED). Until then the SYN's source address is unproven (it may be forged): we send it
  /// nothing but SYN-ACKs, one per SYN, and forget the connection quietly at `until`
  SynReceived { until: Instant },
  /// Handshake done (the responder is here from the first packet)
  Connected,
  /// Over; after a graceful close, answering stray retransmissions with ACKs until `until`
  Lingering { until: Instant, graceful: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteSide {
  Open,
  /// `shutdown` called; FIN goes out once the buffered data has
  FinQueued,
  FinSent,
  FinAcked,
}

const DUP_ACKS_BEFORE_RESEND: u32 = 3;
/// Timer expiries in a row, with a packet above the base size oldest unacknowledged, that mean
/// the path stopped carrying large packets (one could be plain loss)
const BLACK_HOLE_TIMEOUTS: u32 = 2;
/// After a black hole, the next path MTU search waits this long (RFC 8899's PMTU_RAISE_TIMER)
const PMTU_RESEARCH_AFTER: Duration = Duration::from_secs(600);
/// Fragmented packets of the peer's held at once while their pieces arrive
const MAX_REASSEMBLY: usize = 64;
/// Unanswered retransmissions of the oldest packet before a silent peer may be declared dead
/// (libutp gives up after four timeouts): with a long round trip, the idle timeout alone may pass
/// before a single retransmission could have been answered
pub(crate) const DEAD_AFTER_RETRANSMISSIONS: u32 = 4;
/// A peer that is not ours never answers keepalives, so an idle one cannot be told from a dead
/// one by asking. A live libutp sends its own keepalive every 29 s and libtorrent's BitTorrent
/// layer one every 2 minutes: total silence this long means it is gone
const STRANGER_SILENCE: Duration = Duration::from_secs(150);
/// The shortest retransmission timeout of the peers we meet: libutp never goes below 1 s
/// (libtorrent below 500 ms). Ours may be 100 ms, so our estimate alone would not wait for theirs
const PEER_MIN_RTO: Duration = Duration::from_secs(1);
/// libutp `ACK_NR_ALLOWED_WINDOW`: ACKs this far behind our oldest packet are still believable
const ACK_NR_SLACK: u16 = 3;
/// A RESET is believed when its `ack_nr` (the sequence number of the packet it answers, in libutp
/// and libtorrent) is one we sent: from this far before our oldest unacknowledged packet (a late
/// answer to an older packet) up to the sequence number our STATEs carry (RFC 5961's idea for TCP)
const RESET_SLACK: u16 = 16;
const MIN_LINGER: Duration = Duration::from_millis(500);
/// Waiting for the FIN of a peer that has not shown it answers keepalives (Linux tcp_fin_timeout)
const FIN_WAIT_2_TIMEOUT: Duration = Duration::from_secs(60);
/// libtorrent drops every packet (ACKs included) whose sequence number is more than
/// `max(16, receive buffer / 1100)` past its cumulative ACK: toward a peer that is not ours, that
/// bounds the packets we keep outstanding
const REORDER_FLOOR: usize = 16;
const REORDER_BYTES_PER_PACKET: usize = 1100;

/// The state machine of one connection
#[derive(Debug)]
pub(crate) struct Connection {
  handle: ConnectionHandle,
  remote: SocketAddr,
  recv_id: u16,
  send_id: u16,
  state: State,
  write_side: WriteSide,
  cfg: Config,

  send: SendBuffer,
  syn_unsent: bool,
  peer_window: usize,
  /// Congestion control behind the trait, so another controller can replace LEDBAT
  cc: Box<dyn Controller>,
  rtt: RttEstimator,
  rto_backoffs: u32,
  rto_deadline: Option<Instant>,
  /// When the retransmission timer last expired with nothing acknowledged since (the first
  /// expiry of the series): an ACK for a packet sent before it shows the timeout was spurious
  rto_fired_at: Option<Instant>,
  dup_acks: u32,
  /// Losses of packets sent before this one belong to a flight the window was already cut for
  recovery_seq: Option<SeqNr>,
  /// The window (or the pacer, which follows it) last held a packet back at this time
  cwnd_full_at: Option<Instant>,
  /// A packet being resent in pieces: its sequence number, the next piece, how many
  fragments_due: Option<(SeqNr, u8, u8)>,
  /// Timer expiries in a row with a packet above the base size first in line (black hole)
  large_packet_timeouts: u32,
  /// Pieces of the peer's fragmented packets: sequence number, then each piece once it came
  reassembly: Vec<(SeqNr, Vec<Option<Vec<u8>>>)>,
  /// When we last started waiting for an answer with nothing outstanding before
  waiting_since: Instant,
  /// Zero-window probe: when to push one packet past a closed window
  persist_deadline: Option<Instant>,
  persist_due: bool,
  write_blocked: bool,
  pacer: Pacer,
  /// Paced: the next packet may go at this time
  pacing_deadline: Option<Instant>,

  recv: RecvBuffer,
  ack_nr: SeqNr,
  eof: Option<SeqNr>,
  eof_reached: bool,
  eof_reported: bool,
  readable_reported: bool,
  ack_pending: bool,
  /// Our one-way delay sample of the peer's packets, echoed as `timestamp_difference`
  reply_micro: u32,
  advertised_window: usize,

  last_recv: Instant,
  last_send: Instant,
  keepalive_due: bool,
  /// Responder: the SYN-ACK's sequence number, until the initiator shows it got the SYN-ACK
  syn_ack_seq: Option<SeqNr>,
  syn_ack_due: bool,
  /// When our unanswered keepalive went out
  keepalive_sent: Option<Instant>,
  peer_answers_keepalive: bool,
  /// Peer silence after which [`Event::Timeout`] goes out (the idle timeout unless the application
  /// set another); `None`: never, and no [`CloseReason::TimedOut`] for silence either once open
  /// (the FIN_WAIT_2 minute and a released connection's bounded wait still end it)
  silence_limit: Option<Duration>,
  /// When [`Event::Timeout`] went out, if no packet came since
  silence_reported: Option<Instant>,
  reset_pending: bool,
  /// A stranger gets each ACK after our FIN a second time, with the FIN's sequence number
  fin_seq_state_due: bool,
  /// The application let go of the connection ([`Connection::release`]): it is reset if its
  /// FIN exchange has not finished by this time
  release_deadline: Option<Instant>,
  /// The application chose the packet size ([`Connection::set_max_payload`]): no path MTU search
  payload_fixed: bool,
  sack_scratch: Vec<u8>,
  stats: ConnectionStats,
  /// Path MTU search, while the configuration asks for one and it is not over
  pmtu: Option<PathMtu>,
  /// The payload size the connection started with (what a new path starts from)
  base_payload: usize,
  /// The peer's hello: it is one of ours (see [`Hello`]); until then it gets only plain BEP 29
  peer_hello: Option<Hello>,
  /// Payload toward a loopback peer once it has shown it reads large datagrams
  large_payload: Option<usize>,
}

/// A controller of kind `mode` for packets of `mss` bytes, starting at `window` bytes (or the
/// configured initial window)
fn new_controller(mode: Congestion, cfg: &Config, mss: usize, window: Option<usize>) -> Box<dyn Controller> {
  let initial = window.unwrap_or(cfg.initial_window).max(mss);
  let (min, max) = (mss.min(cfg.send_buffer), cfg.max_window.max(mss));
  match mode {
    Congestion::Ledbat => Box::new(Ledbat::new(initial, min, max)),
    Congestion::Cubic => Box::new(Cubic::new(initial, min, max)),
  }
}

/// Events produced while handling input, tagged with the connection
pub(crate) type Events = VecDeque<(ConnectionHandle, Event)>;

impl Connection {
  /// A connection we open: `recv_id` is what the SYN carries, we send with `recv_id + 1`
  pub(crate) fn outgoing(
    handle: ConnectionHandle,
    cfg: Config,
    remote: SocketAddr,
    recv_id: u16,
    initial_seq: SeqNr,
    now: Instant,
  ) -> Self {
    let mut c = Self::new(
      handle,
      cfg,
      remote,
      recv_id,
      recv_id.wrapping_add(1),
      initial_seq,
      now,
    );
    c.state = State::SynSent;
    c.send.push(PacketType::Syn, 0, false, now);
    c.syn_unsent = true;
    c
  }

  /// A connection a peer opened with `syn`: we receive on its id + 1 and send with its id
  pub(crate) fn incoming(
    handle: ConnectionHandle,
    cfg: Config,
    remote: SocketAddr,
    syn: &Packet<'_>,
    initial_seq: SeqNr,
    now: Instant,
  ) -> Self {
    let hello = syn.ours.hello;
    let syn = &syn.header;
    let mut c = Self::new(
      handle,
      cfg,
      remote,
      syn.conn_id.wrapping_add(1),
      syn.conn_id,
      initial_seq,
      now,
    );
    c.state = State::SynReceived {
      until: now + c.cfg.handshake_timeout,
    };
    c.ack_nr = syn.seq_nr;
    // libtorrent's SYN advertises a zero window (it has no buffer yet); its first packet after
    // says the real one. Until then assume ours, rather than wait out a zero-window probe
    if syn.wnd_size != 0 {
      c.peer_window = syn.wnd_size as usize;
    }
    if syn.timestamp != 0 {
      c.reply_micro = now.wire_timestamp().wrapping_sub(syn.timestamp);
    }
    c.syn_ack_seq = Some(initial_seq);
    c.syn_ack_due = true;
    if let Some(h) = hello {
      c.on_peer_hello(h, now);
    }
    c
  }

  #[allow(clippy::too_many_arguments)]
  fn new(
    handle: ConnectionHandle,
    cfg: Config,
    remote: SocketAddr,
    recv_id: u16,
    send_id: u16,
    initial_seq: SeqNr,
    now: Instant,
  ) -> Self {
    let mss = cfg.max_payload;
    let large_payload = cfg
      .loopback
      .filter(|l| remote.ip().is_loopback() && l.max_payload > mss)
      .map(|l| l.max_payload);
    Self {
      pmtu: None,
      base_payload: mss,
      peer_hello: None,
      large_payload,
      handle,
      remote,
      recv_id,
      send_id,
      state: State::Connected,
      write_side: WriteSide::Open,
      send: SendBuffer::new(initial_seq),
      syn_unsent: false,
      peer_window: cfg.recv_buffer,
      cc: new_controller(cfg.congestion, &cfg, mss, None),
      rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
      rto_backoffs: 0,
      rto_deadline: None,
      rto_fired_at: None,
      dup_acks: 0,
      recovery_seq: None,
      cwnd_full_at: None,
      fragments_due: None,
      large_packet_timeouts: 0,
      reassembly: Vec::new(),
      waiting_since: now,
      persist_deadline: None,
      persist_due: false,
      write_blocked: false,
      pacer: Pacer::default(),
      pacing_deadline: None,
      recv: RecvBuffer::new(cfg.recv_buffer, cfg.max_packets_in_flight),
      ack_nr: SeqNr(0),
      eof: None,
      eof_reached: false,
      eof_reported: false,
      readable_reported: false,
      ack_pending: false,
      reply_micro: 0,
      advertised_window: cfg.recv_buffer,
      last_recv: now,
      last_send: now,
      keepalive_due: false,
      syn_ack_seq: None,
      syn_ack_due: false,
      keepalive_sent: None,
      peer_answers_keepalive: false,
      silence_limit: Some(cfg.idle_timeout),
      silence_reported: None,
      reset_pending: false,
      fin_seq_state_due: false,
      release_deadline: None,
      payload_fixed: false,
      sack_scratch: Vec::new(),
      stats: ConnectionStats {
        max_payload: mss,
        ..ConnectionStats::default()
      },
      cfg,
    }
  }

  pub(crate) fn remote(&self) -> SocketAddr {
    self.remote
  }

  /// The peer now lives at `to` (see `Endpoint::migrate`): a new path, so acknowledge at once,
  /// give it a full idle timeout and retransmit what is in flight without waiting out a backed-off
  /// timer
  pub(crate) fn migrate(&mut self, now: Instant, to: SocketAddr) {
    self.remote = to;
    // What the old path carried says nothing about the new one: start small and search again
    self.cfg.max_payload = self.base_payload;
    self.stats.max_payload = self.base_payload;
    self.start_pmtu_search(now);
    self.ack_pending = true;
    self.last_recv = now;
    self.waiting_since = now;
    self.rto_backoffs = 0;
    if self.send.in_flight_bytes() > 0 {
      self.rto_deadline = Some(now);
    }
  }

  /// The peer said it is one of ours: use what its hello says it takes
  fn on_peer_hello(&mut self, hello: Hello, now: Instant) {
    self.peer_hello = Some(hello);
    // Our endpoint answers keepalives: a silent idle peer of ours is a dead one (libutp's is not)
    self.peer_answers_keepalive = true;
    if hello.has(Hello::LARGE_DATAGRAMS) {
      if let Some(large) = self.large_payload.filter(|_| !self.payload_fixed) {
        self.base_payload = large;
        self.cfg.max_payload = large;
        self.stats.max_payload = large;
        // The handshake is the only time this happens, before any data: a controller whose
        // smallest window is one of the new packets, not one of the old
        self.cc = new_controller(self.cfg.congestion, &self.cfg, large, None);
      }
    }
    self.start_pmtu_search(now);
  }

  fn peer_has(&self, cap: u8) -> bool {
    self.peer_hello.is_some_and(|h| h.has(cap))
  }

  /// Probing needs a peer that answers probes: anyone else would get unanswered datagrams it
  /// cannot parse
  fn start_pmtu_search(&mut self, now: Instant) {
    let (base, ceiling) = (self.base_payload, self.cfg.pmtu_ceiling);
    // Packets above the base size only go to a peer that can take them back in pieces, should
    // the path shrink under them
    let search =
      ceiling > base && self.peer_has(Hello::PMTU_PROBES | Hello::FRAGMENTS) && !self.payload_fixed;
    self.pmtu = search.then(|| PathMtu::new(base, ceiling, now));
  }

  /// Packets we may keep outstanding (sent and not cumulatively acknowledged)
  fn packet_limit(&self) -> usize {
    if self.peer_hello.is_some() {
      return self.cfg.max_packets_in_flight;
    }
    // Its limit counts its whole buffer; the window it advertises is what is free of it, never
    // more, so this errs on the safe side. A STATE carries our next sequence number, so the last
    // packet sent stays one below the limit for our ACKs to get through as well
    let reorder = (self.peer_window / REORDER_BYTES_PER_PACKET).max(REORDER_FLOOR);
    self.cfg.max_packets_in_flight.min(reorder - 1)
  }

  pub(crate) fn send_buffer_limit(&self) -> usize {
    self.cfg.send_buffer
  }

  pub(crate) fn next_seq_nr(&self) -> u16 {
    self.send.next_seq().0
  }

  /// The congestion controller's base delay (see `Controller::base_delay`)
  pub(crate) fn base_delay(&self) -> Option<u32> {
    self.cc.base_delay()
  }

  /// Another connection to the same peer measured this base delay
  pub(crate) fn share_base_delay(&mut self, now: Instant, base: u32) {
    self.cc.share_base_delay(now, base);
  }

  pub(crate) fn recv_id(&self) -> u16 {
    self.recv_id
  }

  pub(crate) fn send_id(&self) -> u16 {
    self.send_id
  }

  /// The RESET that refuses this connection: what `poll_transmit` sends after `abort`, for a
  /// connection the endpoint forgets instead of keeping (the timestamp is set when it goes out)
  pub(crate) fn reset_header(&self) -> Header {
    self.header(PacketType::Reset, Instant::ZERO, self.send.next_seq())
  }

  /// Our SYN is out and unanswered
  pub(crate) fn is_connecting(&self) -> bool {
    self.state == State::SynSent
  }

  /// A peer's connection whose handshake is not confirmed yet (see `State::SynReceived`)
  pub(crate) fn is_unconfirmed(&self) -> bool {
    matches!(self.state, State::SynReceived { .. })
  }

  /// Whether a RESET acknowledging `ack_nr` answers something we sent (see [`RESET_SLACK`]): a
  /// blind attacker who knows the addresses and the connection id still has to hit this window
  fn reset_acceptable(&self, ack_nr: SeqNr) -> bool {
    let newest = self.send.next_seq();
    let oldest = self.send.first_unacked().sub(1 + RESET_SLACK);
    !ack_nr.precedes(oldest) && !ack_nr.follows(newest)
  }

  /// The first packet after our SYN-ACK that shows the initiator got it: a STATE, DATA or FIN
  /// acknowledging the SYN-ACK (`seq - 1`, as libutp, libtorrent and we set `ack_nr` from it), or
  /// a keepalive, which acknowledges one less (the initiator's confirming STATE was lost)
  fn confirms_syn_ack(&self, h: &Header) -> bool {
    let Some(seq) = self.syn_ack_seq else { return false };
    matches!(h.ty, PacketType::State | PacketType::Data | PacketType::Fin)
      && (h.ack_nr == seq.sub(1) || h.ack_nr == seq.sub(2))
  }

  /// Over without a word to the application, which never heard of the connection (its handshake
  /// was never confirmed)
  fn forget(&mut self, now: Instant) {
    self.state = State::Lingering {
      until: now,
      graceful: false,
    };
    self.ack_pending = false;
    self.syn_ack_due = false;
  }

  /// The network said nobody is there (see `Endpoint::handle_unreachable`): only a connection
  /// attempt gives up on that
  pub(crate) fn refuse(&mut self, now: Instant, events: &mut Events) {
    if self.state == State::SynSent {
      self.close(now, CloseReason::Refused, events);
    }
  }

  /// Run `mode` from now on, starting from the window the current controller reached
  pub(crate) fn set_congestion(&mut self, mode: crate::Congestion) {
    // The handshake may still replace the controller (a peer that takes large packets): with this one
    self.cfg.congestion = mode;
    self.cc = new_controller(mode, &self.cfg, self.cfg.max_payload, Some(self.cc.window()));
  }

  pub(crate) fn is_closed(&self) -> bool {
    matches!(self.state, State::Lingering { .. })
  }

  /// Lingering is over: the endpoint may forget this connection
  pub(crate) fn is_drained(&self, now: Instant) -> bool {
    matches!(self.state, State::Lingering { until, .. } if now >= until)
      && !self.ack_pending
      && !self.fin_seq_state_due
      && !self.reset_pending
  }

  // ---------------------------------------------------------------------------------------------
  // Input from the network

  /// A packet addressed to this connection arrived
  pub(crate) fn handle_packet(&mut self, now: Instant, pkt: &Packet<'_>, events: &mut Events) {
    let h = &pkt.header;
    // A blind RESET (its ack_nr is nothing we sent) and anything but a confirmation or a repeated
    // SYN before the handshake is confirmed are dropped as if the connection did not exist: they
    // change nothing, not even the dead-peer clock
    if h.ty == PacketType::Reset && !self.reset_acceptable(h.ack_nr) {
      return;
    }
    if self.is_unconfirmed() && !matches!(h.ty, PacketType::Reset | PacketType::Syn) {
      if !self.confirms_syn_ack(h) {
        return;
      }
      self.state = State::Connected;
    }
    self.last_recv = now;
    self.silence_reported = None;
    let probing = self.keepalive_sent.take().is_some();
    self.stats.packets_received += 1;
    if h.timestamp != 0 {
      self.reply_micro = now.wire_timestamp().wrapping_sub(h.timestamp);
    }
    match h.ty {
      PacketType::Reset => {
        // libutp forgets a connection once its FIN is acknowledged and answers what follows with
        // RESET; libtorrent resets from its closing states too. When the peer's stream is complete
        // and it has all of ours, that is the end of a normal close, not an error
        if self.is_unconfirmed() {
          self.forget(now);
          return;
        }
        let reason = if self.state == State::SynSent {
          CloseReason::Refused
        } else if self.eof_reached && self.send.buffered() == 0 {
          CloseReason::Finished
        } else {
          CloseReason::Reset
        };
        self.close(now, reason, events);
        return;
      }
      PacketType::Syn => {
        // Our SYN-ACK was lost and the peer asks again: the answer gets a full handshake timeout
        // to be confirmed (a SYN costs its sender as much as our answer costs us)
        if self.is_unconfirmed() && self.send_id == h.conn_id {
          self.state = State::SynReceived {
            until: now + self.cfg.handshake_timeout,
          };
          self.syn_ack_due = true;
        }
        return;
      }
      _ => {}
    }
    if let State::Lingering { graceful, .. } = self.state {
      // After a clean close the peer may still be retransmitting its FIN: our ACK was lost
      if graceful && matches!(h.ty, PacketType::Data | PacketType::Fin) {
        self.ack_pending = true;
      }
      return;
    }
    if self.state == State::SynSent {
      // The SYN-ACK (a STATE) carries the sequence number the responder's first data packet uses.
      if h.ack_nr != self.send.first_unacked() {
        return;
      }
      if h.ty != PacketType::State {
        // Data overtook a lost SYN-ACK: we can't place it yet, so ask for the SYN-ACK again now
        self.send.mark_lost(self.send.first_unacked());
        return;
      }
      self.state = State::Connected;
      self.ack_nr = h.seq_nr.sub(1);
      if let Some(hello) = pkt.ours.hello {
        self.on_peer_hello(hello, now);
      }
      events.push_back((self.handle, Event::Connected));
      // Confirm at once, even with nothing to send: the responder sends nothing before it knows
      // our SYN came from us (a DATA going out now carries the same acknowledgement)
      self.ack_pending = true;
    }
    // Anything past the SYN proves the initiator has our SYN-ACK
    self.syn_ack_seq = None;
    let last_sent = self.send.next_seq().sub(1);
    let oldest_believable = self.send.first_unacked().sub(1 + ACK_NR_SLACK);
    if h.ack_nr.follows(last_sent) || h.ack_nr.precedes(oldest_believable) {
      return; // acknowledges something we never sent: not for us, or garbage
    }
    if self.peer_window < self.cfg.max_payload {
      // Its window was closed: an answer is all the progress a flow-controlled peer can make
      self.waiting_since = now;
      self.rto_backoffs = 0;
    }
    self.peer_window = h.wnd_size as usize;
    if self.peer_window >= self.cfg.max_payload.min(self.send.unsent_len().max(1)) {
      self.persist_deadline = None;
    }
    self.process_ack(now, pkt, probing, events);
    if matches!(h.ty, PacketType::Data | PacketType::Fin) {
      match pkt
        .ours
        .fragment
        .filter(|_| self.peer_hello.is_some() && h.ty == PacketType::Data)
      {
        Some(piece) => {
          if let Some(whole) = self.reassemble(h.seq_nr, piece, pkt.payload) {
            let p = Packet {
              payload: &whole,
              ours: Ours {
                fragment: None,
                ..pkt.ours
              },
              ..*pkt
            };
            self.process_data(&p, events);
          }
        }
        None => self.process_data(pkt, events),
      }
    }
    self.check_finished(now, events);
  }

  fn process_ack(&mut self, now: Instant, pkt: &Packet<'_>, probing: bool, events: &mut Events) {
    let h = &pkt.header;
    let in_flight = self.send.in_flight_bytes();
    let had_outstanding = !self.send.is_empty();
    let mut bytes_acked = 0;
    let mut newest_rtt = None;
    let mut fin_acked = false;
    let progressed = !h.ack_nr.precedes(self.send.first_unacked());
    if progressed {
      self.send.ack_through(h.ack_nr, |_, p| {
        // A selectively acknowledged packet was sampled when its SACK came; its time since
        // would count the wait for the packets before it
        if !p.sacked {
          bytes_acked += p.len;
          if p.transmissions == 1 {
            newest_rtt = Some(now.saturating_since(p.sent_at));
          }
        }
        fin_acked |= p.ty == PacketType::Fin;
      });
    }
    let mut sacked = 0;
    if let Some(sack) = pkt.sack {
      sacked = self.process_sack(now, h.ack_nr, sack, &mut newest_rtt);
      bytes_acked += sacked;
    }
    if let Some(rtt) = newest_rtt {
      self.rtt.on_sample(rtt);
    }
    if progressed {
      self.large_packet_timeouts = 0;
      if let Some(fired) = self.rto_fired_at.take() {
        self.detect_spurious_timeout(now, h, fired);
      }
      self.dup_acks = 0;
      self.rto_backoffs = 0;
      self.rto_deadline = (!self.send.is_empty()).then(|| now + self.current_rto());
      self.waiting_since = now;
    } else if h.ty == PacketType::State
      && had_outstanding
      && sacked == 0
      && h.ack_nr == self.send.first_unacked().sub(1)
    {
      // Only an ACK of exactly what was last acknowledged is a duplicate (libutp, libtorrent): a
      // late, reordered older ACK or a keepalive (which acknowledges one less) says nothing about
      // loss. A SACK that acknowledges nothing new (libutp sends empty ones) is a duplicate too
      self.dup_acks += 1;
      let first = self.send.first_unacked();
      // Not while a repair is on its way: duplicates keep coming meanwhile (packets past the
      // SACK's reach arriving). A round trip after it, they mean the repair (or its ACK) was lost
      let round_trip = self.rtt.srtt().unwrap_or(self.cfg.initial_rto);
      let repair_due = self
        .send
        .get(first)
        .is_some_and(|p| p.transmissions == 1 || now.saturating_since(p.sent_at) > round_trip);
      if self.dup_acks >= self.dup_threshold() && repair_due {
        self.dup_acks = 0;
        if self.send.mark_lost(first) {
          self.on_loss(now, first);
        }
      }
    }
    if h.ty == PacketType::State && !had_outstanding {
      let next = self.send.next_seq();
      if h.ack_nr == next.sub(2) {
        self.ack_pending = true; // a keepalive probe (libutp's form: ack_nr - 1): answer it
      } else if h.ack_nr == next.sub(1) && probing {
        // Only peers that answer keepalives can be declared dead while idle (libutp never does)
        self.peer_answers_keepalive = true;
      }
    } else if h.ty == PacketType::State && pkt.sack.is_none() && h.ack_nr == self.send.first_unacked().sub(2)
    {
      // A keepalive while our data is outstanding (the peer has all it got and waits for the
      // rest): answer it too, or a peer that hears only our backed-off retransmissions (seconds
      // apart on a lossy path) takes us for dead
      self.ack_pending = true;
    }
    let delay = (h.timestamp_diff != 0).then_some(h.timestamp_diff);
    let srtt = self.rtt.srtt();
    let window_limited = self
      .cwnd_full_at
      .is_some_and(|t| now.saturating_since(t) <= srtt.unwrap_or(self.cfg.initial_rto).max(self.cfg.min_rto));
    self.cc.on_ack(
      now,
      &AckSample {
        bytes_acked,
        in_flight,
        one_way_delay: delay,
        mss: self.cfg.max_payload,
        srtt,
        rttvar: self.rtt.rttvar(),
        rtt_sample: newest_rtt,
        window_limited,
        reverse_delay: (h.timestamp != 0).then_some(self.reply_micro),
      },
    );
    if fin_acked {
      self.write_side = WriteSide::FinAcked;
    }
    if self.write_blocked && self.send.buffered() < self.cfg.send_buffer {
      self.write_blocked = false;
      events.push_back((self.handle, Event::Writable));
    }
  }

  /// Packets above the base size stopped getting through (the path MTU shrank after the search
  /// ended, RFC 8899's black hole): back to the base size, which every peer takes, and search again
  /// later. What was sent large goes again in pieces
  fn on_black_hole(&mut self, now: Instant) {
    if self.cfg.max_payload <= self.base_payload {
      return;
    }
    self.cfg.max_payload = self.base_payload;
    self.stats.max_payload = self.base_payload;
    self.stats.black_holes += 1;
    self.large_packet_timeouts = 0;
    self.rto_backoffs = 0;
    self.pmtu =
      (!self.payload_fixed && self.peer_has(Hello::PMTU_PROBES) && self.cfg.pmtu_ceiling > self.base_payload)
        .then(|| {
          PathMtu::new(
            self.base_payload,
            self.cfg.pmtu_ceiling,
            now + PMTU_RESEARCH_AFTER,
          )
        });
  }

  /// How many later packets acknowledged (or duplicate ACKs) mark a packet lost: three, or fewer
  /// when fewer than four packets are outstanding (RFC 5827's early retransmit), so a loss in a
  /// small window (a slowdown, the end of a transfer) is repaired without waiting for the timer
  fn dup_threshold(&self) -> u32 {
    let outstanding = self.send.packets_outstanding() as u32;
    DUP_ACKS_BEFORE_RESEND.min(outstanding.saturating_sub(1)).max(1)
  }

  /// `seq` was lost: cut the window, unless it was already cut for the flight `seq` belongs to
  /// (RFC 6582's recovery point: every loss of one window is one congestion event)
  fn on_loss(&mut self, now: Instant, seq: SeqNr) {
    if self.recovery_seq.is_some_and(|r| seq.precedes(r)) {
      return;
    }
    self.recovery_seq = Some(self.send.next_seq());
    self.stats.congestion_events += 1;
    self
      .cc
      .on_congestion_event(now, CongestionEvent::Loss, self.cfg.max_payload);
  }

  /// The first ACK after a timeout: was it for a packet sent before the timer fired? uTP echoes
  /// our timestamps indirectly: the peer stamps its packet with its own clock (`timestamp`) and the
  /// delay it measured for the last packet it got from us (`timestamp_diff`, its clock minus
  /// ours), so `timestamp - timestamp_diff` is that packet's send time on our clock (late by the
  /// peer's ACK delay, which errs toward "not spurious"). Earlier than the timeout: the original
  /// arrived, the path was only slow (a delay step, RFC 3522's Eifel detection). Then the window
  /// returns to where it was and the packets marked lost and not yet resent stay in flight
  fn detect_spurious_timeout(&mut self, now: Instant, h: &Header, fired: Instant) {
    if h.timestamp_diff == 0 || h.timestamp == 0 {
      return;
    }
    let echoed = h.timestamp.wrapping_sub(h.timestamp_diff);
    let before_timeout = (fired.wire_timestamp().wrapping_sub(echoed) as i32) > 0;
    if before_timeout {
      // Wrapping 32-bit microseconds, as on the wire: never an underflow
      let since_echoed = now.wire_timestamp().wrapping_sub(echoed);
      self
        .rtt
        .restart_from(Duration::from_micros(u64::from(since_echoed)));
      self.cc.undo();
      self.send.restore_lost();
      self.recovery_seq = None;
      self.stats.spurious_timeouts += 1;
    }
  }

  /// Selective ACKs; returns bytes newly acknowledged
  fn process_sack(
    &mut self,
    now: Instant,
    ack_nr: SeqNr,
    sack: SelectiveAck<'_>,
    newest_rtt: &mut Option<Duration>,
  ) -> usize {
    let mut bytes = 0;
    let mut highest = None;
    for seq in sack.acked(ack_nr) {
      if let Some(p) = self.send.sack(seq) {
        bytes += p.len;
        if p.transmissions == 1 {
          *newest_rtt = Some(now.saturating_since(p.sent_at));
        }
      }
      if self.send.get(seq).is_some() {
        highest = Some(seq);
      }
    }
    let threshold = self.dup_threshold();
    // A packet with at least DUP_ACKS_BEFORE_RESEND later packets acknowledged is lost (libutp),
    // but only if it went out before one of them: a retransmission still on its way is not lost
    // again just because the next SACK doesn't show it yet
    if let Some(highest) = highest {
      let mut lost = Vec::new();
      let mut acked_after = 0u32;
      let mut newest_acked_send = Instant::ZERO;
      let mut seq = highest;
      while !seq.precedes(self.send.first_unacked()) {
        match self.send.get(seq) {
          Some(p) if p.sacked => {
            acked_after += 1;
            newest_acked_send = newest_acked_send.max(p.sent_at);
          }
          Some(p)
            if acked_after >= threshold
              && p.in_flight()
              && (p.transmissions == 1 || p.sent_at < newest_acked_send) =>
          {
            lost.push(seq)
          }
          _ => {}
        }
        if seq == self.send.first_unacked() {
          break;
        }
        seq = seq.sub(1);
      }
      // Oldest first: the window is cut once per flight, for its first loss
      for seq in lost.into_iter().rev() {
        if self.send.mark_lost(seq) {
          self.on_loss(now, seq);
        }
      }
    }
    bytes
  }

  /// Keep one piece of a fragmented packet; the whole payload once every piece is here. A packet
  /// we already have needs no pieces (its duplicate is acknowledged as one)
  fn reassemble(&mut self, seq: SeqNr, piece: Fragment, payload: &[u8]) -> Option<Vec<u8>> {
    if !seq.follows(self.ack_nr) {
      return Some(Vec::new());
    }
    let i = match self.reassembly.iter().position(|(s, _)| *s == seq) {
      Some(i) => i,
      None => {
        if self.reassembly.len() >= MAX_REASSEMBLY {
          self.reassembly.remove(0);
        }
        self.reassembly.push((seq, vec![None; piece.count as usize]));
        self.reassembly.len() - 1
      }
    };
    let pieces = &mut self.reassembly[i].1;
    if pieces.len() != piece.count as usize {
      // Another split of the same packet (resent after the size changed again): start over
      *pieces = vec![None; piece.count as usize];
    }
    pieces[piece.index as usize] = Some(payload.to_vec());
    if pieces.iter().any(Option::is_none) {
      return None;
    }
    let (_, pieces) = self.reassembly.swap_remove(i);
    Some(pieces.into_iter().flatten().flatten().collect())
  }

  fn process_data(&mut self, pkt: &Packet<'_>, events: &mut Events) {
    let h = &pkt.header;
    self.ack_pending = true;
    if let Some(eof) = self.eof {
      if h.seq_nr.follows(eof) {
        return; // nothing exists past the peer's FIN
      }
    }
    if h.ty == PacketType::Fin && self.eof.is_none() {
      self.eof = Some(h.seq_nr);
    }
    let payload = if h.ty == PacketType::Fin {
      &[][..]
    } else {
      pkt.payload
    };
    let ends_write = pkt.ours.end_of_write && self.peer_has(Hello::WRITE_BOUNDARIES);
    let ready_before = self.recv.ready_bytes();
    match self.recv.insert(self.ack_nr, h.seq_nr, payload, ends_write) {
      Arrival::InOrder(n) => {
        self.ack_nr = self.ack_nr.add(n);
        if self.eof.is_some_and(|eof| !eof.follows(self.ack_nr)) {
          self.eof_reached = true;
        }
        // This packet and the buffered ones it released
        self.stats.bytes_received += (self.recv.ready_bytes() - ready_before) as u64;
        if !self.readable_reported
          && (self.recv.ready_bytes() > 0 || (self.eof_reached && !self.eof_reported))
        {
          self.readable_reported = true;
          events.push_back((self.handle, Event::Readable));
        }
      }
      Arrival::Duplicate => self.stats.duplicates += 1,
      Arrival::Buffered | Arrival::Dropped => {}
    }
    self.advertised_window = self.recv.window();
  }

  fn check_finished(&mut self, now: Instant, events: &mut Events) {
    if self.write_side == WriteSide::FinAcked && self.eof_reached && self.state == State::Connected {
      self.close(now, CloseReason::Finished, events);
    }
  }

  fn close(&mut self, now: Instant, reason: CloseReason, events: &mut Events) {
    if self.is_closed() {
      return;
    }
    // Long enough for the peer to give up retransmitting a FIN whose ACK we sent and it lost:
    // it declares us dead after the same idle timeout
    let linger = self.cfg.idle_timeout.max(MIN_LINGER);
    let graceful = reason == CloseReason::Finished;
    self.state = State::Lingering {
      until: now + if graceful { linger } else { Duration::ZERO },
      graceful,
    };
    self.rto_deadline = None;
    self.persist_deadline = None;
    if reason != CloseReason::Finished {
      self.ack_pending = false;
      self.fin_seq_state_due = false;
    }
    events.push_back((self.handle, Event::Closed(reason)));
  }

  // ---------------------------------------------------------------------------------------------
  // Input from the application

  /// Queue bytes; returns bytes buffered afterwards (the caller waits for `Writable` when this
  /// reaches the send buffer size). Never drops data.
  pub(crate) fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
    if self.is_closed() {
      return Err(WriteError::Closed);
    }
    if self.write_side != WriteSide::Open {
      return Err(WriteError::AfterShutdown);
    }
    self.send.write(data);
    let buffered = self.send.buffered();
    if buffered >= self.cfg.send_buffer {
      self.write_blocked = true;
    }
    Ok(buffered)
  }

  /// As [`write`](Self::write), for one write made of `parts` that `transform` rewrites in the
  /// send buffer (see `SendBuffer::write_transformed`)
  pub(crate) fn write_transformed<E: From<WriteError>>(
    &mut self,
    parts: &[&[u8]],
    transform: impl FnOnce(&mut [u8]) -> Result<(), E>,
  ) -> Result<usize, E> {
    self.write(&[])?;
    self.send.write_transformed(parts, transform)?;
    let buffered = self.send.buffered();
    if buffered >= self.cfg.send_buffer {
      self.write_blocked = true;
    }
    Ok(buffered)
  }

  /// End our side of the stream: FIN follows the buffered data
  pub(crate) fn shutdown(&mut self) {
    if self.write_side == WriteSide::Open && !self.is_closed() {
      self.write_side = WriteSide::FinQueued;
    }
  }

  /// Tear the connection down now and tell the peer with RESET
  pub(crate) fn abort(&mut self, now: Instant, events: &mut Events) {
    if self.is_closed() {
      return;
    }
    self.reset_pending = true;
    self.close(now, CloseReason::Aborted, events);
  }

  /// Move up to `max` in-order bytes to `out`, stopping after the end of a peer's write
  pub(crate) fn read(&mut self, out: &mut Vec<u8>, max: usize) -> Read {
    let (bytes, ends_write) = self.recv.read(out, max);
    let window = self.recv.window();
    // Reopen a window the peer may be stalled on
    if window >= self.advertised_window + self.cfg.max_payload
      && self.advertised_window < self.cfg.recv_buffer / 2
    {
      self.ack_pending = true;
      self.advertised_window = window;
    }
    let eof = self.recv.ready_bytes() == 0 && self.eof_reached;
    if eof {
      self.eof_reported = true;
    }
    if self.recv.ready_bytes() == 0 {
      self.readable_reported = false;
    }
    Read {
      bytes,
      eof,
      ends_write,
    }
  }

  /// Bytes ready to read
  pub(crate) fn readable(&self) -> usize {
    self.recv.ready_bytes()
  }

  pub(crate) fn stats(&self) -> ConnectionStats {
    ConnectionStats {
      rtt_us: self.rtt.srtt().map_or(0, |d| d.as_micros() as u64),
      rttvar_us: self.rtt.rttvar().as_micros() as u64,
      rto_us: self.current_rto().as_micros() as u64,
      cwnd: self.cc.window(),
      in_flight: self.send.in_flight_bytes(),
      peer_window: self.peer_window,
      recv_window: self.recv.window(),
      queuing_delay_us: self.cc.queuing_delay().as_micros() as u64,
      // What every controller of this connection is made from
      congestion: self.cfg.congestion,
      ..self.stats
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Timers

  /// The earliest time [`Connection::handle_timeout`] has work to do
  pub(crate) fn next_deadline(&self) -> Option<Instant> {
    if let State::Lingering { until, .. } | State::SynReceived { until } = self.state {
      return Some(until);
    }
    let mut next = self.rto_deadline;
    let mut consider = |t: Option<Instant>| {
      if let Some(t) = t {
        next = Some(next.map_or(t, |n: Instant| n.min(t)));
      }
    };
    consider(self.persist_deadline);
    consider(self.pacing_deadline);
    if self.state == State::Connected {
      consider(self.pmtu.as_ref().and_then(PathMtu::next_deadline));
    }
    consider(self.dead_peer_deadline());
    consider(self.silence_deadline());
    consider(self.release_deadline);
    if self.wants_keepalive() && !self.keepalive_due {
      consider(Some(self.last_send + self.cfg.keepalive));
    }
    next
  }

  /// Nothing unacknowledged and nothing waiting to go: only keepalives keep the path open
  fn is_idle(&self) -> bool {
    self.state == State::Connected && self.send.is_empty() && self.send.unsent_len() == 0
  }

  /// Idle and keepalives enabled (a zero interval turns them off)
  fn wants_keepalive(&self) -> bool {
    self.is_idle() && !self.cfg.keepalive.is_zero()
  }

  fn dead_peer_deadline(&self) -> Option<Instant> {
    // How long a peer that owes us a packet may take to resend it (nothing otherwise)
    let mut owed_resends = Duration::ZERO;
    let since = if !self.send.is_empty() && self.state == State::Connected {
      // Waiting on ACKs: only progress shows the peer still takes our data. Its other packets
      // (keepalives of a peer that is idle because nothing of ours gets through, after a path
      // MTU drop for one) do not, unless it says its window is closed: a paused reader
      if self.peer_window < self.cfg.max_payload {
        self.last_recv.max(self.waiting_since)
      } else {
        self.waiting_since
      }
    } else if !self.send.is_empty() || self.persist_deadline.is_some() {
      self.last_recv.max(self.waiting_since)
    } else if let (Some(probe), true) = (self.keepalive_sent, self.peer_answers_keepalive) {
      // Unanswered only since it went out
      self.last_recv.max(probe)
    } else if self.state == State::Connected && self.recv.has_out_of_order() && self.silence_limit.is_some() {
      // A hole in the peer's data: it owes us that packet again, whether or not it answers
      // keepalives, so its silence is not idleness. libtorrent abandons a connection when a
      // packet's third transmission goes unanswered, and sends nothing after (not even a RESET
      // to what follows): waiting the 150 s an idle stranger gets would leave the reader stuck
      // that long. Not before the peer could have resent it as often as we would ours. With no
      // silence limit (`setTimeout(0)`) the rules below still hold, the FIN_WAIT_2 one among them
      owed_resends = self.peer_resend_time();
      self.last_recv
    } else if self.write_side == WriteSide::FinAcked && !self.eof_reached {
      // Only the peer's FIN is missing (TCP's FIN_WAIT_2), from a peer that never answered a
      // keepalive (libutp never does). It may simply be thinking, so wait as long as TCP's
      // tcp_fin_timeout; but a peer gone without its FIN must not hold us forever
      return Some(self.last_recv + FIN_WAIT_2_TIMEOUT.max(self.cfg.idle_timeout));
    } else if self.keepalive_sent.is_some() && self.state == State::Connected {
      // A stranger that went quiet (see STRANGER_SILENCE)
      let limit = self.silence_limit?;
      return Some(self.last_recv + STRANGER_SILENCE.max(limit.saturating_mul(2)));
    } else {
      return None;
    };
    // Retransmissions unanswered: wait for enough of them, however long the round trip. Counted
    // on the oldest packet, which every timeout resends first: a peer that keeps sending duplicate
    // ACKs gets it fast-retransmitted again and again, and the timer, re-armed each time, never
    // expires
    let retransmitting = self.state == State::Connected && !self.send.is_empty();
    let resent = self
      .send
      .get(self.send.first_unacked())
      .map_or(0, |p| p.transmissions - 1);
    if retransmitting && resent < DEAD_AFTER_RETRANSMISSIONS && self.peer_window >= self.cfg.max_payload {
      return None; // the retransmission timer wakes us to look again
    }
    // A connection attempt fails after the idle timeout whatever the application set; an open
    // connection gives the application its notice first and as long again to act on it
    // (at least `limit` after the notice, however late the notice came)
    match (self.state, self.silence_limit, self.silence_reported) {
      (State::SynSent, ..) => Some(since + self.cfg.idle_timeout),
      // Never sooner than the idle timeout: a short limit is for the notice (as setTimeout in
      // net), not a licence to kill a slow live peer before it had a retransmission or two
      (_, Some(limit), noticed) => {
        let wait = limit
          .saturating_mul(2)
          .max(self.cfg.idle_timeout)
          .max(owed_resends);
        match noticed {
          Some(noticed) => Some((since + wait).max(noticed + limit)),
          // A peer that keeps talking but acknowledges nothing gets no notice (it is not silent)
          // and still cannot hold a sending connection forever
          None if retransmitting => Some(since + wait),
          None => None,
        }
      }
      _ => None,
    }
  }

  /// How long a peer takes to resend a packet `DEAD_AFTER_RETRANSMISSIONS` times on this path:
  /// its timeouts, not ours, so each at least `PEER_MIN_RTO`, doubling
  fn peer_resend_time(&self) -> Duration {
    let first = self.rtt.backed_off_rto(0).max(PEER_MIN_RTO);
    (0..DEAD_AFTER_RETRANSMISSIONS)
      .map(|n| first.saturating_mul(1 << n))
      .fold(Duration::ZERO, Duration::saturating_add)
  }

  /// When the peer's silence is reported ([`Event::Timeout`])
  fn silence_deadline(&self) -> Option<Instant> {
    match (self.state, self.silence_limit) {
      (State::Connected, Some(limit)) if self.silence_reported.is_none() => Some(self.last_recv + limit),
      _ => None,
    }
  }

  /// Packets from now on carry at most `payload` bytes (utp-punch's `setMtu`): the application's
  /// word, so the path MTU search ends. Packets already sent keep their size
  pub(crate) fn set_max_payload(&mut self, payload: usize) {
    let payload = payload.max(1);
    self.base_payload = payload;
    self.cfg.max_payload = payload;
    self.stats.max_payload = payload;
    self.payload_fixed = true;
    self.pmtu = None;
  }

  /// The application let go of the connection (a TCP close): FIN after what it wrote, and a
  /// bounded wait for the exchange to finish, whatever silence limit it had set; past that, RESET.
  /// A peer that never sends its FIN (or a dead one) cannot hold the connection
  pub(crate) fn release(&mut self, now: Instant) {
    self.shutdown();
    self.silence_limit = Some(self.cfg.idle_timeout);
    self.release_deadline = Some(now + FIN_WAIT_2_TIMEOUT.max(self.cfg.idle_timeout));
  }

  /// How long the peer may be silent before [`Event::Timeout`] (utp-punch's `setTimeout`); `None`
  /// never: the application watches the connection itself
  pub(crate) fn set_silence_limit(&mut self, limit: Option<Duration>) {
    self.silence_limit = limit;
  }

  /// Run whatever timers have expired
  pub(crate) fn handle_timeout(&mut self, now: Instant, events: &mut Events) {
    if self.is_closed() {
      return;
    }
    if let State::SynReceived { until } = self.state {
      if now >= until {
        self.forget(now);
      }
      return;
    }
    if self.release_deadline.is_some_and(|t| now >= t) {
      self.abort(now, events);
      return;
    }
    if self.dead_peer_deadline().is_some_and(|t| now >= t) {
      // Both streams complete and only our FIN unconfirmed: the peer has everything; it most
      // likely closed after its ACK of our FIN was lost (TCP's LAST_ACK timing out is silent too)
      let only_fin_unconfirmed =
        self.eof_reached && self.write_side == WriteSide::FinSent && self.send.buffered() == 0;
      let reason = if only_fin_unconfirmed {
        CloseReason::Finished
      } else {
        CloseReason::TimedOut
      };
      self.close(now, reason, events);
      return;
    }
    if self.silence_deadline().is_some_and(|t| now >= t) {
      self.silence_reported = Some(now);
      events.push_back((self.handle, Event::Timeout));
    }
    if self.rto_deadline.is_some_and(|t| now >= t) {
      self.stats.timeouts += 1;
      // Retransmit everything unacknowledged, starting from a one-packet window (libutp). Only
      // the first expiry of a series cuts the window: the ones after find it at its floor, and
      // halving ssthresh each time would leave a path that was down for a second crawling for
      // many more. A lost SYN says nothing about the path's capacity
      if self.rto_backoffs == 0 && self.state == State::Connected {
        self.rto_fired_at = Some(now);
        self.recovery_seq = Some(self.send.next_seq());
        self.stats.congestion_events += 1;
        self
          .cc
          .on_congestion_event(now, CongestionEvent::Timeout, self.cfg.max_payload);
      }
      self.rto_backoffs += 1;
      self.send.mark_all_lost();
      self.fragments_due = None;
      let first_len = self.send.get(self.send.first_unacked()).map_or(0, |p| p.len);
      if self.state == State::Connected && first_len > self.base_payload {
        self.large_packet_timeouts += 1;
        if self.large_packet_timeouts >= BLACK_HOLE_TIMEOUTS {
          self.on_black_hole(now);
        }
      }
      self.rto_deadline = Some(now + self.current_rto());
    }
    if self.pacing_deadline.is_some_and(|t| now >= t) {
      self.pacing_deadline = None;
    }
    if self.persist_deadline.is_some_and(|t| now >= t) {
      self.persist_due = true;
      self.persist_deadline = None;
    }
    if let Some(p) = self.pmtu.as_mut() {
      p.on_timeout(now);
      if p.done() {
        self.pmtu = None;
      }
    }
    if self.wants_keepalive() && now >= self.last_send + self.cfg.keepalive {
      self.keepalive_due = true;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Output

  fn header(&self, ty: PacketType, now: Instant, seq_nr: SeqNr) -> Header {
    Header {
      ty,
      conn_id: if ty == PacketType::Syn {
        self.recv_id
      } else {
        self.send_id
      },
      timestamp: now.wire_timestamp(),
      timestamp_diff: self.reply_micro,
      wnd_size: self.recv.window() as u32,
      seq_nr,
      ack_nr: self.ack_nr,
    }
  }

  fn may_send(&mut self, now: Instant, len: usize, new_data: bool) -> bool {
    let in_flight = self.send.in_flight_bytes();
    // The congestion window counts what is in the network; the peer's window counts everything it
    // may have to buffer, selectively acknowledged packets included (they sit in its reorder buffer)
    let unacked = if new_data {
      self.send.unacked_bytes()
    } else {
      in_flight
    };
    let fits_peer = unacked + len <= self.peer_window;
    let fits_cwnd = in_flight + len <= self.cc.window();
    let allowed =
      (fits_peer && fits_cwnd) || (in_flight == 0 && (len <= self.peer_window || self.persist_due));
    if fits_peer && (!fits_cwnd || in_flight + len + self.cfg.max_payload > self.cc.window()) {
      self.cwnd_full_at = Some(now);
    }
    if !allowed {
      return false;
    }
    let (cwnd, srtt, mss, ss) = (
      self.cc.window(),
      self.rtt.srtt(),
      self.cfg.max_payload,
      self.cc.in_slow_start(),
    );
    match self.pacer.check(now, len, cwnd, srtt, mss, ss) {
      Ok(()) => {
        self.pacing_deadline = None;
        true
      }
      Err(at) => {
        // The pacer spreads the window over the round trip: held back by it is held back by
        // the window
        self.cwnd_full_at = Some(now);
        self.pacing_deadline = Some(at);
        false
      }
    }
  }

  /// Write the next datagram for this connection into `out`; false when there is none
  /// The peer acknowledged a path MTU probe: packets may grow to that payload
  pub(crate) fn on_pmtu_ack(&mut self, payload: usize, now: Instant) {
    let Some(p) = self.pmtu.as_mut() else { return };
    let grown = p.on_ack(payload, now);
    if p.done() {
      self.pmtu = None;
    }
    if let Some(grown) = grown {
      self.cfg.max_payload = grown;
      self.stats.max_payload = grown;
    }
  }

  /// Append this connection's next datagram to `out`; false when there is none
  pub(crate) fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
    if self.state == State::Connected {
      let rto = self.current_rto();
      if let Some(size) = self.pmtu.as_mut().and_then(|p| p.poll(now, rto)) {
        // Not a uTP packet: no sequence number, no effect on timers or counters
        pmtu::encode_probe(self.send_id, size, out);
        return true;
      }
    }
    if self.reset_pending {
      self.reset_pending = false;
      let h = self.header(PacketType::Reset, now, self.send.next_seq());
      Packet {
        header: h,
        sack: None,
        ours: Ours::NONE,
        payload: &[],
      }
      .encode(out);
      return self.sent(now, 0);
    }
    match self.state {
      State::Lingering { .. } => {
        if self.ack_pending {
          return self.send_state(now, out);
        }
        if self.fin_seq_state_due {
          return self.send_fin_seq_state(now, out);
        }
        false
      }
      State::SynSent => {
        let resend = self.send.first_lost();
        if self.syn_unsent || resend.is_some() {
          self.syn_unsent = false;
          let seq = self.send.first_unacked();
          if resend.is_some() {
            self.send.retransmit(seq, now);
          }
          let h = self.header(PacketType::Syn, now, seq);
          Packet {
            header: h,
            sack: None,
            ours: Ours {
              hello: Some(Hello::OURS),
              ..Ours::NONE
            },
            payload: &[],
          }
          .encode(out);
          self.arm_rto(now);
          return self.sent(now, 0);
        }
        false
      }
      State::Connected => self.poll_connected(now, out),
      // Nothing but the SYN-ACK to an address that may be forged: what the application wrote
      // waits in the send buffer until the handshake is confirmed
      State::SynReceived { .. } => self.syn_ack_due && self.poll_connected(now, out),
    }
  }

  /// Encode a packet of the send buffer: its payload is copied from there straight into `out`.
  /// With `fragment`, only that piece of it (see [`Fragment`])
  /// Returns the payload's length
  fn encode_sent(&self, header: Header, seq: SeqNr, fragment: Option<Fragment>, out: &mut Vec<u8>) -> usize {
    let p = self.send.get(seq);
    let (mut a, mut b) = p.map_or((&[][..], &[][..]), |p| self.send.payload(p));
    let end_of_write = p.is_some_and(|p| p.ends_write) && self.peer_has(Hello::WRITE_BOUNDARIES);
    if let Some(f) = fragment {
      (a, b) = piece_of(a, b, f.index as usize, self.fragment_size());
    }
    out.reserve(crate::packet::HEADER_LEN + Ours::MAX_OVERHEAD + a.len() + b.len());
    Packet {
      header,
      sack: None,
      ours: Ours {
        end_of_write,
        fragment,
        ..Ours::NONE
      },
      payload: &[],
    }
    .encode(out);
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    a.len() + b.len()
  }

  /// Payload of one piece of a fragmented packet: the current packet size, less what the
  /// fragment extension adds to the header
  fn fragment_size(&self) -> usize {
    self.cfg.max_payload.saturating_sub(4).max(1)
  }

  /// The next piece of a packet being resent in pieces
  fn send_next_fragment(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
    let Some((seq, index, count)) = self.fragments_due.take() else {
      return false;
    };
    let Some(ty) = self.send.get(seq).filter(|p| p.in_flight()).map(|p| p.ty) else {
      return false; // acknowledged (or lost again) meanwhile
    };
    if index + 1 < count {
      self.fragments_due = Some((seq, index + 1, count));
    }
    let h = self.header(ty, now, seq);
    let payload = self.encode_sent(h, seq, Some(Fragment { index, count }), out);
    self.sent(now, payload)
  }

  fn poll_connected(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
    if self.syn_ack_due {
      // Always the initial sequence number, even after data went out, so that the initiator
      // expects the right first data packet
      self.syn_ack_due = false;
      if let Some(seq) = self.syn_ack_seq {
        let h = self.header(PacketType::State, now, seq);
        Packet {
          header: h,
          sack: None,
          // Answered in kind: a peer whose SYN had no hello never sees ours
          ours: Ours {
            hello: self.peer_hello.map(|_| Hello::OURS),
            ..Ours::NONE
          },
          payload: &[],
        }
        .encode(out);
        return self.sent(now, 0);
      }
    }
    if self.fragments_due.is_some() && self.send_next_fragment(now, out) {
      return true;
    }
    if let Some(seq) = self.send.first_lost() {
      let len = self.send.get(seq).map_or(0, |p| p.len);
      // The oldest packet, lost, goes at once whatever the window (RFC 6675's fast retransmit):
      // after the cut, what is in flight may stay above the window for long (a SACK reaches only
      // 256 packets past the cumulative ACK), and everything behind it waits on this one
      let head_of_line = seq == self.send.first_unacked() && self.rto_backoffs == 0;
      if (head_of_line && len <= self.peer_window) || self.may_send(now, len, false) {
        self.persist_due = false;
        self.stats.retransmits += 1;
        let h = self.header(PacketType::Data, now, seq);
        let Some(ty) = self.send.retransmit(seq, now).map(|p| p.ty) else {
          return false;
        };
        // Larger than the path takes now (it was sent before a black hole was found): in pieces
        let pieces = len.div_ceil(self.fragment_size());
        let fragment =
          (len > self.cfg.max_payload && self.peer_has(Hello::FRAGMENTS) && pieces <= u8::MAX as usize)
            .then_some(Fragment {
              index: 0,
              count: pieces as u8,
            });
        if let Some(f) = fragment {
          self.fragments_due = Some((seq, 1, f.count));
        }
        // The first piece only, when in pieces
        let payload = self.encode_sent(Header { ty, ..h }, seq, fragment, out);
        self.after_data_sent(now);
        // The repair's ACK needs a full round trip: a timer left running from the original
        // send would fire first and resend the whole window
        self.rto_deadline = Some(now + self.current_rto());
        return self.sent(now, payload);
      }
      self.maybe_arm_persist(now);
    } else if self.send.unsent_len() > 0 && self.send.packets_outstanding() < self.packet_limit() {
      let split_writes = !self.cfg.coalesce_writes;
      let len = self.send.next_len(self.cfg.max_payload, split_writes);
      if self.may_send(now, len, true) {
        self.persist_due = false;
        let seq = self.send.push(PacketType::Data, len, split_writes, now);
        let h = self.header(PacketType::Data, now, seq);
        self.encode_sent(h, seq, None, out);
        self.after_data_sent(now);
        return self.sent(now, len);
      }
      self.maybe_arm_persist(now);
    } else if self.write_side == WriteSide::FinQueued
      && self.send.unsent_len() == 0
      && self.send.packets_outstanding() < self.packet_limit()
    {
      self.write_side = WriteSide::FinSent;
      let seq = self.send.push(PacketType::Fin, 0, false, now);
      let h = self.header(PacketType::Fin, now, seq);
      Packet {
        header: h,
        sack: None,
        ours: Ours::NONE,
        payload: &[],
      }
      .encode(out);
      self.after_data_sent(now);
      return self.sent(now, 0);
    }
    if self.ack_pending {
      return self.send_state(now, out);
    }
    if self.fin_seq_state_due {
      return self.send_fin_seq_state(now, out);
    }
    if self.keepalive_due {
      // libutp's keepalive: a STATE acknowledging one less than we have; our peers answer it
      self.keepalive_due = false;
      // The first unanswered probe: the peer has been failing to answer since then
      self.keepalive_sent.get_or_insert(now);
      let mut h = self.header(PacketType::State, now, self.send.next_seq());
      h.ack_nr = self.ack_nr.sub(1);
      Packet {
        header: h,
        sack: None,
        ours: Ours::NONE,
        payload: &[],
      }
      .encode(out);
      return self.sent(now, 0);
    }
    false
  }

  fn send_state(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
    self.ack_pending = false;
    // After our FIN the two references disagree on a STATE's sequence number: libutp advances past
    // the FIN and drops anything else as old; libtorrent does not, and drops anything past our
    // FIN, our ACK of its own FIN included. A stranger gets the ACK both ways
    if self.peer_hello.is_none() && matches!(self.write_side, WriteSide::FinSent | WriteSide::FinAcked) {
      self.fin_seq_state_due = true;
    }
    self.encode_state(now, self.send.next_seq(), out)
  }

  /// The STATE libtorrent takes after our FIN: the FIN's own sequence number (see `send_state`)
  fn send_fin_seq_state(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
    self.fin_seq_state_due = false;
    self.encode_state(now, self.send.next_seq().sub(1), out)
  }

  fn encode_state(&mut self, now: Instant, seq: SeqNr, out: &mut Vec<u8>) -> bool {
    let h = self.header(PacketType::State, now, seq);
    let mut mask = std::mem::take(&mut self.sack_scratch);
    self.recv.sack_bitmask(&mut mask, MAX_SACK_BYTES);
    let sack = if mask.is_empty() {
      None
    } else {
      SelectiveAck::new(&mask).ok()
    };
    Packet {
      header: h,
      sack,
      ours: Ours::NONE,
      payload: &[],
    }
    .encode(out);
    self.sack_scratch = mask;
    self.advertised_window = self.recv.window();
    self.sent(now, 0)
  }

  fn after_data_sent(&mut self, now: Instant) {
    // A data packet carries our cumulative ACK; only out-of-order data still needs a SACK
    if !self.recv.has_out_of_order() {
      self.ack_pending = false;
    }
    self.advertised_window = self.recv.window();
    self.arm_rto(now);
  }

  /// The backed-off RTO, doubling up to `max_rto` (libtorrent's 60 s). Not capped by the idle
  /// timeout: on a path whose round trip is near or above the cap, every packet would time out
  /// before its ACK could return, and Karn's rule would never let the estimate learn better. The
  /// dead-peer limit counts retransmissions instead ([`DEAD_AFTER_RETRANSMISSIONS`])
  fn current_rto(&self) -> Duration {
    // SYNs back off once only: the handshake is the one way in (the responder sends nothing else
    // before it is confirmed) and the attempt ends after the idle timeout, which doubling would
    // leave room for four tries only
    let backoffs = if self.state == State::SynSent {
      self.rto_backoffs.min(1)
    } else {
      self.rto_backoffs
    };
    let rto = self.rtt.backed_off_rto(backoffs);
    if self.peer_window < self.cfg.max_payload {
      // Probing a closed window: the peer answers each probe, and it must be asked often
      // enough that its answers keep it from looking dead
      return rto.min((self.cfg.idle_timeout / 5).max(self.cfg.min_rto));
    }
    rto
  }

  fn arm_rto(&mut self, now: Instant) {
    if self.rto_deadline.is_none() {
      self.rto_deadline = Some(now + self.current_rto());
      self.waiting_since = now;
    }
  }

  fn maybe_arm_persist(&mut self, now: Instant) {
    if self.send.in_flight_bytes() == 0 && self.persist_deadline.is_none() && !self.persist_due {
      self.persist_deadline = Some(now + self.current_rto());
      if self.send.is_empty() {
        self.waiting_since = now;
      }
    }
  }

  fn sent(&mut self, now: Instant, payload: usize) -> bool {
    self.last_send = now;
    self.stats.packets_sent += 1;
    self.stats.bytes_sent += payload as u64;
    true
  }
}

/// Piece `index` (of `piece` bytes each, the last one shorter) of a payload held in two slices, `a`
/// then `b` (the send queue wraps around): again as (at most) two slices, so nothing is copied
fn piece_of<'a>(a: &'a [u8], b: &'a [u8], index: usize, piece: usize) -> (&'a [u8], &'a [u8]) {
  let total = a.len() + b.len();
  let start = index.saturating_mul(piece).min(total);
  let end = start.saturating_add(piece).min(total);
  let (a_start, a_end) = (start.min(a.len()), end.min(a.len()));
  let (b_start, b_end) = (start.saturating_sub(a.len()), end.saturating_sub(a.len()));
  (&a[a_start..a_end], &b[b_start..b_end])
}

#[cfg(test)]
mod tests {
  use super::piece_of;

  /// However the payload is split between the two slices, the pieces in order are the payload,
  /// each at most `piece` long, and a piece past the end is empty
  #[test]
  fn pieces_of_a_wrapped_payload_put_back_together_are_the_payload() {
    let payload: Vec<u8> = (0..40).collect();
    for len in 0..=payload.len() {
      for split in 0..=len {
        let (a, b) = payload[..len].split_at(split);
        for piece in 1..12 {
          let count = len.div_ceil(piece);
          let mut joined = Vec::new();
          for index in 0..count {
            let (x, y) = piece_of(a, b, index, piece);
            assert!(x.len() + y.len() <= piece && x.len() + y.len() > 0);
            joined.extend_from_slice(x);
            joined.extend_from_slice(y);
          }
          assert_eq!(joined, &payload[..len], "len {len}, split {split}, piece {piece}");
          let (x, y) = piece_of(a, b, count, piece);
          assert!(x.is_empty() && y.is_empty());
        }
      }
    }
  }
}
