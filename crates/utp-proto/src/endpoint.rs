//! The endpoint: one UDP socket's worth of connections, demultiplexed by (remote address, id)
//!
//! The same endpoint accepts connections (while listening) and opens them, at once, on one port.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use crate::conn::{Connection, ConnectionStats, Event, Events, Read, WriteError};
use crate::packet::{self, Header, Packet, PacketType};
use crate::pmtu;
use crate::rng::Rng;
use crate::seq::SeqNr;
use crate::time::Instant;
use crate::timers::TimerQueue;
use crate::{Config, ConnectionHandle, Transmit};

/// A shared base delay is replaced by the next connection's own after this long unrefreshed
const PATH_BASE_LIFETIME: core::time::Duration = core::time::Duration::from_secs(60);

/// Path MTU probe acks waiting to go out, at most
const MAX_QUEUED_PMTU_ACKS: usize = 1024;

/// The base delay the connections to one peer share, when it was set, and by which connection
#[derive(Debug, Clone, Copy)]
struct PathBase {
  base: u32,
  at: Instant,
  owner: u32,
}

/// What [`Endpoint::handle_datagram`] made of a datagram
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramKind {
  /// A uTP packet, handled (delivered, answered or deliberately ignored)
  Utp,
  /// Not uTP (STUN, a hole-punch probe, anything else): the caller decides what to do with it
  Foreign,
}

/// Why a connection could not be opened
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
  /// `max_connections` are open already
  #[error("too many connections")]
  TooManyConnections,
  /// No free connection id toward this address
  #[error("no free connection id for this peer")]
  NoConnectionId,
}

/// Why a connection could not be moved to another peer address
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
  /// No such connection (or it has closed)
  #[error("no such connection")]
  UnknownConnection,
  /// Another connection already talks to that address with the same id
  #[error("another connection uses this address and id")]
  AddressInUse,
}

/// Endpoint-wide counters
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
  /// Connections we opened that are not yet closed
  pub client_connections: usize,
  /// Connections peers opened that are not yet closed
  pub server_connections: usize,
  /// uTP packets that matched no connection
  pub unmatched_packets: u64,
  /// RESETs sent in answer to unmatched packets, and to the unconfirmed handshakes a stop of
  /// listening forgets
  pub resets_sent: u64,
  /// SYNs refused (not listening, or full)
  pub refused: u64,
  /// Datagrams with a uTP header whose extension chain runs past the end: dropped
  pub malformed_packets: u64,
  /// Connections peers opened whose handshake is not confirmed yet (not in `server_connections`)
  pub unconfirmed_connections: usize,
  /// SYNs dropped unanswered: too many unconfirmed connections, in all or from their address
  pub syns_dropped: u64,
  /// Unconfirmed connections forgotten: no confirmation within the handshake timeout, a RESET, no
  /// room left once confirmed, or a stop of listening
  pub handshakes_expired: u64,
}

#[derive(Debug)]
struct Entry {
  conn: Connection,
  outgoing: bool,
  /// In the transmit round-robin
  queued: bool,
  /// The application has seen `Closed`; the entry may go once lingering ends
  closed_seen: bool,
  counted_open: bool,
  /// A peer's connection whose handshake is not confirmed: the application has not heard of it
  unconfirmed: bool,
}

/// Tokens for answering strangers with RESET, so we never amplify a flood
#[derive(Debug)]
struct ResetBudget {
  tokens: u32,
  per_second: u32,
  refilled: Instant,
}

impl ResetBudget {
  fn take(&mut self, now: Instant) -> bool {
    if now.saturating_since(self.refilled).as_secs() >= 1 {
      self.tokens = self.per_second;
      self.refilled = now;
    }
    if self.tokens == 0 {
      return false;
    }
    self.tokens -= 1;
    true
  }
}

/// A loopback address, IPv4-mapped ones included (a dual-stack socket sees those)
fn is_loopback(ip: IpAddr) -> bool {
  match ip {
    IpAddr::V4(v4) => v4.is_loopback(),
    IpAddr::V6(v6) => v6
      .to_ipv4_mapped()
      .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
  }
}

/// All uTP state behind one UDP socket
#[derive(Debug)]
pub struct Endpoint {
  cfg: Config,
  rng: Rng,
  conns: HashMap<u32, Entry>,
  by_key: HashMap<(SocketAddr, u16), u32>,
  /// How many connections talk to each IP address, whatever the port (see `handle_datagram`)
  peer_ips: HashMap<IpAddr, u32>,
  /// Unconfirmed connections per source IP address (see `Config::max_unconfirmed_per_ip`)
  unconfirmed_by_ip: HashMap<IpAddr, u32>,
  next_handle: u32,
  timers: TimerQueue,
  events: Events,
  ready: VecDeque<u32>,
  resets: VecDeque<(SocketAddr, Header)>,
  /// RESETs for the unconfirmed connections a stop of listening forgot (see `set_listening`):
  /// stamped, and counted against the reset budget, when they go out. Forged SYNs fill the
  /// unconfirmed table too, and the budget keeps what a stop sends to their sources small
  refusals: VecDeque<(SocketAddr, Header)>,
  /// Path MTU probe acks to send: where, the id the peer receives on, the payload size
  pmtu_acks: VecDeque<(SocketAddr, u16, usize)>,
  reset_budget: ResetBudget,
  listening: bool,
  stats: EndpointStats,
  expired_scratch: Vec<u32>,
  /// Per peer address: the base delay its connections share (see `share_base_delay`)
  path_bases: HashMap<SocketAddr, PathBase>,
}

impl Endpoint {
  /// An endpoint with `cfg` whose random choices all derive from `seed`
  pub fn new(cfg: Config, seed: u64) -> Self {
    Self {
      reset_budget: ResetBudget {
        tokens: cfg.resets_per_second,
        per_second: cfg.resets_per_second,
        refilled: Instant::ZERO,
      },
      cfg,
      rng: Rng::new(seed),
      conns: HashMap::new(),
      by_key: HashMap::new(),
      peer_ips: HashMap::new(),
      unconfirmed_by_ip: HashMap::new(),
      next_handle: 1,
      timers: TimerQueue::default(),
      events: VecDeque::new(),
      ready: VecDeque::new(),
      resets: VecDeque::new(),
      refusals: VecDeque::new(),
      pmtu_acks: VecDeque::new(),
      listening: false,
      stats: EndpointStats::default(),
      expired_scratch: Vec::new(),
      path_bases: HashMap::new(),
    }
  }

  /// The configuration in force
  pub fn config(&self) -> &Config {
    &self.cfg
  }

  /// Accept incoming connections (`true`) or refuse them with RESET (`false`, the default).
  /// Stopping forgets the connections whose handshake is not confirmed: the application never
  /// heard of them, but their initiators have our SYN-ACK and count themselves connected, so each
  /// is refused with a RESET (as TCP resets what waits in a closed listener's queue). Without it
  /// an initiator waiting to read, or closing, would wait out its whole timeout, the node that
  /// stopped being gone by then
  pub fn set_listening(&mut self, listening: bool) {
    self.listening = listening;
    if !listening {
      let pending: Vec<u32> = self
        .conns
        .iter()
        .filter(|(_, e)| e.unconfirmed)
        .map(|(&id, _)| id)
        .collect();
      for id in pending {
        if let Some(e) = self.conns.get(&id) {
          self.refusals.push_back((e.conn.remote(), e.conn.reset_header()));
        }
        self.forget(id);
      }
    }
  }

  /// Whether incoming connections are accepted
  pub fn is_listening(&self) -> bool {
    self.listening
  }

  /// Counters for the whole endpoint
  pub fn stats(&self) -> EndpointStats {
    self.stats
  }

  /// Connections not yet fully forgotten (closed ones linger briefly)
  pub fn connection_count(&self) -> usize {
    self.conns.len()
  }

  /// Open a connection to `remote`; its SYN goes out on the next `poll_transmit`
  pub fn connect(&mut self, now: Instant, remote: SocketAddr) -> Result<ConnectionHandle, ConnectError> {
    if self.open_count() >= self.cfg.max_connections {
      return Err(ConnectError::TooManyConnections);
    }
    // The peer keys this connection by id + 1 and each earlier one from us by its id + 1, and
    // reads our SYN's id as a key too: keep id - 1, id and id + 1 clear of every key toward it
    let mut recv_id = None;
    for _ in 0..64 {
      let id = self.rng.next_u16();
      let taken = |k: u16| self.by_key.contains_key(&(remote, k));
      if !taken(id.wrapping_sub(1)) && !taken(id) && !taken(id.wrapping_add(1)) {
        recv_id = Some(id);
        break;
      }
    }
    let recv_id = recv_id.ok_or(ConnectError::NoConnectionId)?;
    let handle = self.alloc_handle();
    let seq = SeqNr(self.rng.next_u16());
    let conn = Connection::outgoing(handle, self.cfg.for_peer(remote), remote, recv_id, seq, now);
    self.insert(handle, conn, true, false);
    Ok(handle)
  }

  fn alloc_handle(&mut self) -> ConnectionHandle {
    loop {
      let h = self.next_handle;
      self.next_handle = self.next_handle.wrapping_add(1).max(1);
      if !self.conns.contains_key(&h) {
        return ConnectionHandle(h);
      }
    }
  }

  fn open_count(&self) -> usize {
    self.stats.client_connections + self.stats.server_connections
  }

  fn insert(&mut self, handle: ConnectionHandle, conn: Connection, outgoing: bool, unconfirmed: bool) {
    self.by_key.insert((conn.remote(), conn.recv_id()), handle.0);
    *self.peer_ips.entry(conn.remote().ip()).or_default() += 1;
    if unconfirmed {
      self.stats.unconfirmed_connections += 1;
      *self.unconfirmed_by_ip.entry(conn.remote().ip()).or_default() += 1;
    } else if outgoing {
      self.stats.client_connections += 1;
    } else {
      self.stats.server_connections += 1;
    }
    self.conns.insert(
      handle.0,
      Entry {
        conn,
        outgoing,
        queued: false,
        closed_seen: false,
        counted_open: !unconfirmed,
        unconfirmed,
      },
    );
    self.touch(handle.0);
  }

  /// Feed one received datagram
  pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> DatagramKind {
    if pmtu::is_pmtu(data) {
      self.handle_pmtu(now, from, data);
      return DatagramKind::Utp;
    }
    if !packet::looks_like_utp(data) {
      return DatagramKind::Foreign;
    }
    let Ok(pkt) = packet::decode(data) else {
      // It has a uTP header; only its extension chain is broken. Dropped: a damaged uTP packet is
      // not a message for the application
      self.stats.malformed_packets += 1;
      return DatagramKind::Utp;
    };
    let h = pkt.header;
    // A SYN's id names the connection it wants to open, not one we have: it is looked up as id + 1
    if h.ty != PacketType::Syn {
      if let Some(&id) = self.by_key.get(&(from, h.conn_id)) {
        self.deliver(id, now, &pkt);
        return DatagramKind::Utp;
      }
    }
    match h.ty {
      PacketType::Syn => self.handle_syn(now, from, &pkt),
      PacketType::Reset => {
        // libutp answers unknown packets with RESET carrying the id it received: our send_id
        for key in [h.conn_id.wrapping_sub(1), h.conn_id.wrapping_add(1)] {
          if let Some(&id) = self.by_key.get(&(from, key)) {
            if self.conns.get(&id).is_some_and(|e| e.conn.send_id() == h.conn_id) {
              self.deliver(id, now, &pkt);
              break;
            }
          }
        }
      }
      _ => {
        self.stats.unmatched_packets += 1;
        // From an IP address one of our connections talks to, it may be that connection's peer
        // after its NAT gave it another port: a RESET would kill the connection before anyone
        // could re-aim it (`migrate`), so such packets are dropped unanswered. The choice depends
        // on the source address only, never on the id: whether an id is live must not show, or a
        // scan would find it for a blind RESET (a packet on a live id that its connection finds
        // out of window is dropped unanswered too)
        if !self.peer_ips.contains_key(&from.ip()) {
          self.queue_reset(now, from, &h);
        }
      }
    }
    DatagramKind::Utp
  }

  /// A path MTU probe (answered for connections we have with its sender) or the ack of ours
  fn handle_pmtu(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
    match pmtu::decode(data) {
      Some(pmtu::Message::Probe { conn_id, payload }) => {
        let Some(e) = self
          .by_key
          .get(&(from, conn_id))
          .and_then(|id| self.conns.get(id))
        else {
          return;
        };
        // Bounded: a flood of probes gets some answers, never a growing queue
        if self.pmtu_acks.len() < MAX_QUEUED_PMTU_ACKS {
          self.pmtu_acks.push_back((from, e.conn.send_id(), payload));
        }
      }
      Some(pmtu::Message::Ack { conn_id, payload }) => {
        if let Some(&id) = self.by_key.get(&(from, conn_id)) {
          if let Some(e) = self.conns.get_mut(&id) {
            e.conn.on_pmtu_ack(payload, now);
          }
          self.touch(id);
        }
      }
      None => {}
    }
  }

  fn handle_syn(&mut self, now: Instant, from: SocketAddr, pkt: &Packet<'_>) {
    let h = pkt.header;
    let key = (from, h.conn_id.wrapping_add(1));
    if let Some(&id) = self.by_key.get(&key) {
      // A repeated SYN for a connection we accepted: that connection re-sends its answer
      if self
        .conns
        .get(&id)
        .is_some_and(|e| !e.outgoing && e.conn.send_id() == h.conn_id)
      {
        self.deliver(id, now, pkt);
      }
      return;
    }
    if !self.listening || self.open_count() >= self.cfg.max_connections {
      self.stats.refused += 1;
      self.queue_reset(now, from, &h);
      return;
    }
    // The source address of a SYN is unproven: a bounded number of them may wait for the
    // handshake's confirmation, and past that SYNs go unanswered (a RESET would be a reflection)
    // The per-address share is fairness between remote hosts; local processes all share the
    // loopback address, which nobody outside this host can forge
    let from_ip = self.unconfirmed_by_ip.get(&from.ip()).copied().unwrap_or(0) as usize;
    let over_share = from_ip >= self.cfg.max_unconfirmed_per_ip && !is_loopback(from.ip());
    if self.stats.unconfirmed_connections >= self.cfg.max_unconfirmed || over_share {
      self.stats.syns_dropped += 1;
      return;
    }
    let handle = self.alloc_handle();
    let seq = SeqNr(self.rng.next_u16());
    let conn = Connection::incoming(handle, self.cfg.for_peer(from), from, pkt, seq, now);
    // Announced (`Event::Incoming`) once the peer confirms, as TCP's accept queue does
    self.insert(handle, conn, false, true);
  }

  /// An unconfirmed connection's handshake was just confirmed: announce it before whatever the
  /// confirming packet produced (events from `mark` on), or forget it when there is no room
  fn confirm(&mut self, id: u32, mark: usize) {
    let full = self.open_count() >= self.cfg.max_connections;
    let Some(e) = self.conns.get_mut(&id) else { return };
    let ip = e.conn.remote().ip();
    e.unconfirmed = false;
    self.stats.unconfirmed_connections -= 1;
    Self::decrement(&mut self.unconfirmed_by_ip, ip);
    if full {
      // As a full TCP accept queue: the connection goes, the peer finds out from its next packet
      self.events.truncate(mark);
      self.stats.refused += 1;
      self.forget(id);
      return;
    }
    e.counted_open = true;
    self.stats.server_connections += 1;
    self.events.insert(mark, (ConnectionHandle(id), Event::Incoming));
  }

  fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K) {
    if let Some(n) = map.get_mut(&key) {
      *n -= 1;
      if *n == 0 {
        map.remove(&key);
      }
    }
  }

  /// Drop a connection from every table at once
  fn forget(&mut self, id: u32) {
    let Some(e) = self.conns.remove(&id) else { return };
    let key = (e.conn.remote(), e.conn.recv_id());
    if self.by_key.get(&key) == Some(&id) {
      self.by_key.remove(&key);
    }
    Self::decrement(&mut self.peer_ips, key.0.ip());
    if e.unconfirmed {
      self.stats.unconfirmed_connections -= 1;
      self.stats.handshakes_expired += 1;
      Self::decrement(&mut self.unconfirmed_by_ip, key.0.ip());
    } else if e.counted_open {
      if e.outgoing {
        self.stats.client_connections -= 1;
      } else {
        self.stats.server_connections -= 1;
      }
    }
    self.timers.cancel(id);
  }

  fn queue_reset(&mut self, now: Instant, to: SocketAddr, h: &Header) {
    if h.ty == PacketType::Reset || !self.reset_budget.take(now) {
      return;
    }
    self.stats.resets_sent += 1;
    let reply = Header {
      ty: PacketType::Reset,
      conn_id: h.conn_id,
      timestamp: now.wire_timestamp(),
      timestamp_diff: 0,
      wnd_size: 0,
      seq_nr: SeqNr(self.rng.next_u16()),
      ack_nr: h.seq_nr,
    };
    self.resets.push_back((to, reply));
  }

  fn deliver(&mut self, id: u32, now: Instant, pkt: &Packet<'_>) {
    let Some(e) = self.conns.get_mut(&id) else { return };
    let mark = self.events.len();
    e.conn.handle_packet(now, pkt, &mut self.events);
    if e.unconfirmed && !e.conn.is_unconfirmed() && !e.conn.is_closed() {
      self.confirm(id, mark);
    }
    let Some(e) = self.conns.get_mut(&id) else { return };
    let (peer, conns) = (e.conn.remote(), self.conns.len());
    let e = self.conns.get_mut(&id).expect("delivered to it");
    Self::share_base_delay(&mut self.path_bases, conns, now, peer, id, &mut e.conn);
    self.touch(id);
  }

  /// LEDBAT's base delay, shared by the connections to one peer address (one pair of clocks,
  /// one path): the lowest any of them measured in the last minute. Without it, a flow that
  /// starts while another keeps the bottleneck queue at the target takes that queue for the
  /// path's delay, piles its own target on top and pushes the older flows out.
  ///
  /// The connection that measured the shared value keeps it current: its base also moves *up*
  /// when it follows a drifting clock (the reverse direction's fall) or its lowest minute ages
  /// out, and a shared value kept at the old minimum would be handed back to it on every packet,
  /// undoing the drift correction (a receiver clock 300 ppm fast then held the real queue at
  /// 58 ms instead of the 100 ms target)
  fn share_base_delay(
    bases: &mut HashMap<SocketAddr, PathBase>,
    connections: usize,
    now: Instant,
    peer: SocketAddr,
    id: u32,
    conn: &mut Connection,
  ) {
    let Some(own) = conn.base_delay() else { return };
    let fresh = |at: Instant| now.saturating_since(at) < PATH_BASE_LIFETIME;
    let ours = PathBase {
      base: own,
      at: now,
      owner: id,
    };
    match bases.get_mut(&peer) {
      Some(shared) if fresh(shared.at) && shared.owner != id => {
        if (own.wrapping_sub(shared.base) as i32) < 0 {
          *shared = ours;
        } else if own != shared.base {
          conn.share_base_delay(now, shared.base);
        }
      }
      // Ours, or stale
      Some(shared) => *shared = ours,
      None => {
        if bases.len() > 2 * connections + 16 {
          bases.retain(|_, shared| fresh(shared.at));
        }
        bases.insert(peer, ours);
      }
    }
  }

  /// Recompute a connection's timer and queue it for transmission
  fn touch(&mut self, id: u32) {
    let Some(e) = self.conns.get_mut(&id) else { return };
    if e.unconfirmed && e.conn.is_closed() {
      // Expired or reset before anyone heard of it: no event, no lingering
      self.forget(id);
      return;
    }
    if e.counted_open && e.conn.is_closed() {
      e.counted_open = false;
      if e.outgoing {
        self.stats.client_connections -= 1;
      } else {
        self.stats.server_connections -= 1;
      }
    }
    if !e.queued {
      e.queued = true;
      self.ready.push_back(id);
    }
    match e.conn.next_deadline() {
      Some(at) if !e.conn.is_closed() || e.closed_seen => self.timers.schedule(id, at),
      _ => self.timers.cancel(id),
    }
  }

  /// Run expired timers; call when `now` reaches [`Endpoint::poll_timeout`]
  pub fn handle_timeout(&mut self, now: Instant) {
    // Take the expired set first: a connection rescheduled at or before `now` waits for the next call
    let mut expired = std::mem::take(&mut self.expired_scratch);
    while let Some(id) = self.timers.pop_expired(now) {
      expired.push(id);
    }
    for id in expired.drain(..) {
      let Some(e) = self.conns.get_mut(&id) else {
        continue;
      };
      if e.closed_seen && e.conn.is_drained(now) {
        self.forget(id);
        continue;
      }
      e.conn.handle_timeout(now, &mut self.events);
      self.touch(id);
    }
    self.expired_scratch = expired;
  }

  /// When [`Endpoint::handle_timeout`] next has work; changes after any input or poll
  pub fn poll_timeout(&mut self) -> Option<Instant> {
    self.timers.next_deadline()
  }

  /// Write the next datagram to send into `buf` (replacing its contents)
  pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
    buf.clear();
    self.poll_transmit_append(now, buf)
  }

  /// Append the next datagram to send to `buf`, after what it holds; `Transmit::size` is the
  /// datagram's length. Lets a caller gather a run of datagrams for one segmented send without
  /// copying them again.
  pub fn poll_transmit_append(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
    let start = buf.len();
    let refusal = self.refusals.pop_front().and_then(|(to, mut header)| {
      if !self.reset_budget.take(now) {
        // Out of budget now: the rest would only be later still
        self.refusals.clear();
        return None;
      }
      self.stats.resets_sent += 1;
      header.timestamp = now.wire_timestamp();
      Some((to, header))
    });
    if let Some((to, header)) = refusal.or_else(|| self.resets.pop_front()) {
      Packet {
        header,
        sack: None,
        ours: packet::Ours::NONE,
        payload: &[],
      }
      .encode(buf);
      return Some(Transmit {
        destination: to,
        size: buf.len() - start,
        dont_fragment: false,
      });
    }
    if let Some((to, conn_id, payload)) = self.pmtu_acks.pop_front() {
      pmtu::encode_ack(conn_id, payload, buf);
      return Some(Transmit {
        destination: to,
        size: buf.len() - start,
        dont_fragment: false,
      });
    }
    while let Some(&id) = self.ready.front() {
      let Some(e) = self.conns.get_mut(&id) else {
        self.ready.pop_front();
        continue;
      };
      if e.conn.poll_transmit(now, buf) {
        let destination = e.conn.remote();
        // Round-robin: a connection with more to send goes to the back of the line
        self.ready.rotate_left(1);
        self.reschedule(id);
        return Some(Transmit {
          destination,
          size: buf.len() - start,
          dont_fragment: pmtu::is_pmtu(&buf[start..]),
        });
      }
      // Nothing appended when a connection has nothing to send
      buf.truncate(start);
      e.queued = false;
      self.ready.pop_front();
      self.reschedule(id);
    }
    None
  }

  fn reschedule(&mut self, id: u32) {
    let Some(e) = self.conns.get(&id) else { return };
    match e.conn.next_deadline() {
      Some(at) if !e.conn.is_closed() || e.closed_seen => self.timers.schedule(id, at),
      _ => {}
    }
  }

  /// The next event for the application
  pub fn poll_event(&mut self) -> Option<(ConnectionHandle, Event)> {
    let (h, ev) = self.events.pop_front()?;
    if let Event::Closed(_) = ev {
      if let Some(e) = self.conns.get_mut(&h.0) {
        e.closed_seen = true;
      }
      self.touch(h.0);
    }
    Some((h, ev))
  }

  fn conn(&mut self, h: ConnectionHandle) -> Result<&mut Connection, WriteError> {
    self
      .conns
      .get_mut(&h.0)
      .map(|e| &mut e.conn)
      .ok_or(WriteError::Closed)
  }

  /// The send buffer of this connection, in bytes (its `Config::send_buffer`, which depends on the
  /// peer: see `Config::for_peer`)
  pub fn send_buffer(&self, h: ConnectionHandle) -> Option<usize> {
    self.conns.get(&h.0).map(|e| e.conn.send_buffer_limit())
  }

  /// Queue bytes on a connection; returns the bytes now buffered. When that reaches its
  /// [`Endpoint::send_buffer`], wait for [`Event::Writable`] before writing more (nothing is
  /// dropped if you don't, the buffer just grows).
  pub fn write(&mut self, h: ConnectionHandle, data: &[u8]) -> Result<usize, WriteError> {
    let n = self.conn(h)?.write(data)?;
    self.touch(h.0);
    Ok(n)
  }

  /// Queue one write made of `parts` back to back, which `transform` then rewrites where it lies
  /// in the send buffer (a record layer seals it there, saving a copy); returns the bytes now
  /// buffered, as [`Endpoint::write`]. When `transform` fails, nothing of the write stays queued
  pub fn write_transformed<E: From<WriteError>>(
    &mut self,
    h: ConnectionHandle,
    parts: &[&[u8]],
    transform: impl FnOnce(&mut [u8]) -> Result<(), E>,
  ) -> Result<usize, E> {
    let n = self.conn(h)?.write_transformed(parts, transform)?;
    self.touch(h.0);
    Ok(n)
  }

  /// Finish our side: a FIN follows the data already written
  pub fn shutdown(&mut self, h: ConnectionHandle) {
    if let Ok(c) = self.conn(h) {
      c.shutdown();
      self.touch(h.0);
    }
  }

  /// Close a connection at once, sending RESET to the peer
  pub fn abort(&mut self, now: Instant, h: ConnectionHandle) {
    if let Some(e) = self.conns.get_mut(&h.0) {
      e.conn.abort(now, &mut self.events);
      self.touch(h.0);
    }
  }

  /// Move up to `max` received bytes to the end of `out`, stopping after the last byte of a
  /// peer's write (so a short write can be delivered as it was written). Says how many bytes,
  /// whether the peer's stream has ended (all its data read) and whether the read stopped at the
  /// end of a write. Reading reopens the receive window.
  pub fn read(&mut self, h: ConnectionHandle, out: &mut Vec<u8>, max: usize) -> Read {
    let Some(e) = self.conns.get_mut(&h.0) else {
      return Read::default();
    };
    let r = e.conn.read(out, max);
    self.touch(h.0);
    r
  }

  /// Bytes waiting to be read on a connection
  pub fn readable(&self, h: ConnectionHandle) -> usize {
    self.conns.get(&h.0).map_or(0, |e| e.conn.readable())
  }

  /// Re-aim a connection at a new peer address: the peer's NAT rebound to another public port (or
  /// address), which something trusted (a rendezvous server) told us. Packets from the new address
  /// reach the connection from now on, and from the old one no longer. The connection treats it as a
  /// new path: it acknowledges at once (which opens our own NAT toward the new address), restarts
  /// its dead-peer clock and retransmits what is in flight. Returns the old address.
  pub fn migrate(
    &mut self,
    now: Instant,
    h: ConnectionHandle,
    to: SocketAddr,
  ) -> Result<SocketAddr, MigrateError> {
    let e = self
      .conns
      .get_mut(&h.0)
      .filter(|e| !e.conn.is_closed())
      .ok_or(MigrateError::UnknownConnection)?;
    let (from, id) = (e.conn.remote(), e.conn.recv_id());
    if from == to {
      return Ok(from);
    }
    if self.by_key.contains_key(&(to, id)) {
      return Err(MigrateError::AddressInUse);
    }
    e.conn.migrate(now, to);
    self.by_key.remove(&(from, id));
    self.by_key.insert((to, id), h.0);
    Self::decrement(&mut self.peer_ips, from.ip());
    *self.peer_ips.entry(to.ip()).or_default() += 1;
    self.touch(h.0);
    Ok(from)
  }

  /// How long this connection's peer may be silent before [`Event::Timeout`] (and, while we wait
  /// on it, twice that before [`CloseReason::TimedOut`](crate::CloseReason)); `None` turns both off
  /// for this connection once it is open. Starts at [`Config::idle_timeout`]
  pub fn set_timeout(&mut self, h: ConnectionHandle, limit: Option<core::time::Duration>) {
    if let Some(e) = self.conns.get_mut(&h.0) {
      e.conn.set_silence_limit(limit);
      self.touch(h.0);
    }
  }

  /// The application let go of this connection (its socket was destroyed): FIN after what was
  /// written, as TCP's close(); if the FIN exchange has not finished within a minute (or the idle
  /// timeout, if longer), RESET. The caller drops what still arrives
  pub fn release(&mut self, now: Instant, h: ConnectionHandle) {
    if let Some(e) = self.conns.get_mut(&h.0) {
      e.conn.release(now);
      self.touch(h.0);
    }
  }

  /// Change the congestion controller of one connection (see [`Config::congestion`]); the window
  /// it has reached carries over
  pub fn set_congestion(&mut self, h: ConnectionHandle, mode: crate::Congestion) {
    if let Some(e) = self.conns.get_mut(&h.0) {
      e.conn.set_congestion(mode);
      self.touch(h.0);
    }
  }

  /// The network reported `to` unreachable (an ICMP port or host unreachable for a datagram we
  /// sent there, as the socket's error queue tells it). Connection attempts to that address fail
  /// at once with [`CloseReason::Refused`](crate::CloseReason); open connections ignore it (as TCP
  /// treats it as a soft error: a forged ICMP must not kill a live connection). Returns how many
  /// attempts failed
  pub fn handle_unreachable(&mut self, now: Instant, to: SocketAddr) -> usize {
    let mut failed = 0;
    let ids: Vec<u32> = self
      .conns
      .iter()
      .filter(|(_, e)| e.conn.remote() == to && e.conn.is_connecting())
      .map(|(&id, _)| id)
      .collect();
    for id in ids {
      if let Some(e) = self.conns.get_mut(&id) {
        e.conn.refuse(now, &mut self.events);
        failed += 1;
      }
      self.touch(id);
    }
    failed
  }

  /// Whether the connection exists and has not closed
  pub fn is_open(&self, h: ConnectionHandle) -> bool {
    self.conns.get(&h.0).is_some_and(|e| !e.conn.is_closed())
  }

  /// Payload bytes per packet for this connection from now on (utp-punch's `setMtu`); ends its
  /// path MTU search
  pub fn set_max_payload(&mut self, h: ConnectionHandle, payload: usize) {
    if let Some(e) = self.conns.get_mut(&h.0) {
      e.conn.set_max_payload(payload);
      self.touch(h.0);
    }
  }

  /// The sequence number this connection's next new packet gets (for tests and diagnostics)
  pub fn next_seq_nr(&self, h: ConnectionHandle) -> Option<u16> {
    self.conns.get(&h.0).map(|e| e.conn.next_seq_nr())
  }

  /// The peer's address
  pub fn remote_addr(&self, h: ConnectionHandle) -> Option<SocketAddr> {
    self.conns.get(&h.0).map(|e| e.conn.remote())
  }

  /// The id this connection receives on (what the peer puts in its packets)
  pub fn connection_id(&self, h: ConnectionHandle) -> Option<u16> {
    self.conns.get(&h.0).map(|e| e.conn.recv_id())
  }

  /// Counters for one connection
  pub fn connection_stats(&self, h: ConnectionHandle) -> Option<ConnectionStats> {
    self.conns.get(&h.0).map(|e| e.conn.stats())
  }

  /// The base delay shared by the connections to `peer`, and when it was set (for tests)
  #[cfg(test)]
  pub(crate) fn path_base(&self, peer: SocketAddr) -> Option<(u32, Instant)> {
    self.path_bases.get(&peer).map(|shared| (shared.base, shared.at))
  }

  /// Handles of every connection not yet closed
  pub fn open_connections(&self) -> Vec<ConnectionHandle> {
    let mut v: Vec<_> = self
      .conns
      .iter()
      .filter(|(_, e)| !e.conn.is_closed() && !e.unconfirmed)
      .map(|(&id, _)| ConnectionHandle(id))
      .collect();
    v.sort();
    v
  }
}
