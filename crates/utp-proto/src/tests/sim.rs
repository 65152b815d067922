//! A seeded simulated network for whole-endpoint tests
//!
//! Endpoints exchange datagrams over links with latency, jitter, loss, duplication, reordering
//! and an optional bottleneck (a rate and a drop-tail queue). Time is virtual and jumps to the
//! next arrival or deadline, so a minute of protocol time costs milliseconds. The same seed
//! replays the same run exactly; failing tests print it.
//!
//! Each node reads its own clock (`Sim::set_clock`): an offset and a drift against simulation
//! time, as real hosts have. Everything the simulator records (`now`, arrivals, queue samples,
//! `App::closed_at`) is in simulation time; only the endpoints see their local time.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use crate::{CloseReason, Config, ConnectionHandle, DatagramKind, Endpoint, Event, Instant, Rng};

/// Impairments of one direction of a link
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
  pub latency: Duration,
  pub jitter: Duration,
  pub loss_pct: f64,
  pub dup_pct: f64,
  /// Chance that a packet is held back by an extra `latency`, arriving behind later ones
  pub reorder_pct: f64,
  /// Bottleneck rate in bytes per second (None = unlimited)
  pub rate: Option<u64>,
  /// Drop-tail limit of the bottleneck queue, as queueing time
  pub max_queue: Duration,
  /// Datagrams larger than this are dropped (a path MTU, minus IP and UDP headers)
  pub max_datagram: usize,
}

impl Default for Link {
  fn default() -> Self {
    Self {
      latency: Duration::from_millis(10),
      jitter: Duration::ZERO,
      loss_pct: 0.0,
      dup_pct: 0.0,
      reorder_pct: 0.0,
      rate: None,
      max_queue: Duration::from_secs(1),
      max_datagram: usize::MAX,
    }
  }
}

/// Parts of a clock rate per unit: a rate of `RATE_ONE` runs exactly as fast as simulation time
const RATE_ONE: u128 = 1_000_000_000_000;

/// A node's own clock: `local = offset + sim_time × (1 + drift_ppm / 10⁶)`, in microseconds
///
/// The identity clock (no offset, no drift) maps every time to itself without arithmetic, so
/// runs that set no clock are exactly those of a simulator with one shared clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Clock {
  offset: u64,
  /// Ticks per simulated microsecond, in units of 1/`RATE_ONE`
  rate: u128,
}

impl Clock {
  pub const IDENTITY: Self = Self {
    offset: 0,
    rate: RATE_ONE,
  };

  pub fn new(offset: Duration, drift_ppm: f64) -> Self {
    assert!(
      drift_ppm.is_finite() && drift_ppm > -1e6,
      "a clock must run forwards (drift {drift_ppm} ppm)"
    );
    Self {
      offset: u64::try_from(offset.as_micros()).expect("offset fits in an Instant"),
      rate: ((1e6 + drift_ppm) * 1e6).round() as u128,
    }
  }

  /// What this clock reads at simulation time `sim`
  pub fn local(self, sim: Instant) -> Instant {
    if self == Self::IDENTITY {
      return sim;
    }
    let ticks = sim.as_micros() as u128 * self.rate / RATE_ONE;
    Instant::from_micros(self.offset.saturating_add(ticks.min(u64::MAX as u128) as u64))
  }

  /// The earliest simulation time at which this clock reads `local` or later
  ///
  /// Rounding up matters: a deadline converted down would wake the node a microsecond before
  /// its timer is due, find nothing to do, and ask for the same instant again forever.
  pub fn sim(self, local: Instant) -> Instant {
    if self == Self::IDENTITY {
      return local;
    }
    let ticks = local.as_micros().saturating_sub(self.offset) as u128;
    let sim = (ticks * RATE_ONE).div_ceil(self.rate);
    Instant::from_micros(sim.min(u64::MAX as u128) as u64)
  }
}

/// What the simulated application does with one connection
#[derive(Debug, Default)]
pub(crate) struct App {
  pub to_send: Vec<u8>,
  pub sent: usize,
  /// Call shutdown once everything is written
  pub finish: bool,
  pub shutdown_done: bool,
  pub received: Vec<u8>,
  pub eof: bool,
  pub connected: bool,
  pub closed: Option<CloseReason>,
  /// Simulation time of the close
  pub closed_at: Option<Instant>,
  /// Stop reading (read backpressure)
  pub paused: bool,
  pub blocked: bool,
  pub writable_events: u32,
  /// Event::Timeout notices (peer silent, connection still open)
  pub timeout_notices: u32,
}

pub(crate) struct SimNode {
  pub addr: SocketAddr,
  pub ep: Endpoint,
  /// The node's own clock; every call into `ep` gets its time
  pub clock: Clock,
  /// Ordered, so that a seed replays exactly with several connections per node
  pub apps: BTreeMap<ConnectionHandle, App>,
  pub accepted: Vec<ConnectionHandle>,
  pub foreign: Vec<Vec<u8>>,
  /// Sent datagrams, for tests that inspect the wire
  pub sent_log: Vec<Vec<u8>>,
  pub log_sends: bool,
  /// Retransmissions of connections that are gone, added up when they close
  pub retransmits: u64,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
  at: Instant,
  order: u64,
  to: usize,
  from: SocketAddr,
  data: Vec<u8>,
}

pub(crate) struct Sim {
  /// Simulation time (what a node with the identity clock reads)
  pub now: Instant,
  pub seed: u64,
  rng: Rng,
  pub nodes: Vec<SimNode>,
  /// links[(from, to)]
  pub links: HashMap<(usize, usize), Link>,
  link_busy_until: HashMap<(usize, usize), Instant>,
  queue: BinaryHeap<Reverse<InFlight>>,
  order: u64,
  /// Queueing delays seen at bottlenecks: (time, link, delay)
  pub queue_samples: Vec<(Instant, (usize, usize), Duration)>,
  pub dropped: u64,
  pub delivered: u64,
  /// Drop the next DATA packet node `.0` sends with sequence number `.1` (once each)
  pub drop_data: Vec<(usize, u16)>,
  scratch: Vec<u8>,
}

impl Sim {
  /// `n` endpoints with `cfg`, fully connected by default links
  pub fn new(seed: u64, n: usize, cfg: Config) -> Self {
    let mut rng = Rng::new(seed);
    let nodes = (0..n)
      .map(|i| SimNode {
        addr: format!("10.0.0.{}:{}", i + 1, 4000 + i).parse().unwrap(),
        ep: Endpoint::new(cfg, rng.next_u64()),
        clock: Clock::IDENTITY,
        apps: BTreeMap::new(),
        accepted: Vec::new(),
        foreign: Vec::new(),
        sent_log: Vec::new(),
        log_sends: false,
        retransmits: 0,
      })
      .collect();
    let mut links = HashMap::new();
    for a in 0..n {
      for b in 0..n {
        if a != b {
          links.insert((a, b), Link::default());
        }
      }
    }
    Self {
      now: Instant::from_micros(1_000_000),
      seed,
      rng,
      nodes,
      links,
      link_busy_until: HashMap::new(),
      queue: BinaryHeap::new(),
      order: 0,
      queue_samples: Vec::new(),
      dropped: 0,
      delivered: 0,
      drop_data: Vec::new(),
      scratch: Vec::new(),
    }
  }

  /// Apply `link` to both directions between `a` and `b`
  pub fn set_link(&mut self, a: usize, b: usize, link: Link) {
    self.links.insert((a, b), link);
    self.links.insert((b, a), link);
  }

  /// Give node `i` its own clock: `offset` plus simulation time running `drift_ppm` parts per
  /// million fast (negative: slow). Set it before the node's first connection; a clock that
  /// jumps under a live connection is a different test
  pub fn set_clock(&mut self, i: usize, offset: Duration, drift_ppm: f64) {
    self.nodes[i].clock = Clock::new(offset, drift_ppm);
  }

  /// What node `i`'s clock reads now: the `now` for direct calls into its endpoint
  pub fn local_now(&self, i: usize) -> Instant {
    self.nodes[i].clock.local(self.now)
  }

  pub fn addr(&self, i: usize) -> SocketAddr {
    self.nodes[i].addr
  }

  /// Open a connection from `a` to `b` carrying `data` (then FIN if `finish`)
  pub fn connect(&mut self, a: usize, b: usize, data: Vec<u8>, finish: bool) -> ConnectionHandle {
    let to = self.addr(b);
    let now = self.local_now(a);
    let h = self.nodes[a].ep.connect(now, to).expect("connect");
    self.nodes[a].apps.insert(
      h,
      App {
        to_send: data,
        finish,
        ..App::default()
      },
    );
    h
  }

  fn node_index(&self, addr: SocketAddr) -> Option<usize> {
    self.nodes.iter().position(|n| n.addr == addr)
  }

  /// Inject a datagram as if `from` had sent it to node `to`, arriving now
  pub fn inject(&mut self, to: usize, from: SocketAddr, data: Vec<u8>) {
    self.order += 1;
    self.queue.push(Reverse(InFlight {
      at: self.now,
      order: self.order,
      to,
      from,
      data,
    }));
  }

  /// Let the applications act, collect their output, and schedule it on the links
  fn pump(&mut self) {
    for i in 0..self.nodes.len() {
      self.run_app(i);
      let mut burst = 0u32;
      loop {
        burst += 1;
        if burst > 200_000 {
          let last = crate::packet::decode(&self.scratch).map(|p| p.header);
          panic!(
            "seed {}: node {i} transmits without end; last {last:?}",
            self.seed
          );
        }
        let mut buf = std::mem::take(&mut self.scratch);
        let now = self.local_now(i);
        let Some(t) = self.nodes[i].ep.poll_transmit(now, &mut buf) else {
          self.scratch = buf;
          break;
        };
        let data = buf[..t.size].to_vec();
        self.scratch = buf;
        if self.nodes[i].log_sends {
          self.nodes[i].sent_log.push(data.clone());
        }
        let from = self.nodes[i].addr;
        match self.node_index(t.destination) {
          Some(to) => self.send_on_link(i, to, from, data),
          None => self.dropped += 1,
        }
      }
    }
  }

  fn send_on_link(&mut self, a: usize, b: usize, from: SocketAddr, data: Vec<u8>) {
    let link = self.links[&(a, b)];
    if !self.drop_data.is_empty() {
      let seq = crate::packet::decode(&data)
        .ok()
        .filter(|p| p.header.ty == crate::packet::PacketType::Data)
        .map(|p| p.header.seq_nr.0);
      if let Some(i) = seq.and_then(|q| self.drop_data.iter().position(|&d| d == (a, q))) {
        self.drop_data.swap_remove(i);
        self.dropped += 1;
        return;
      }
    }
    if data.len() > link.max_datagram || self.rng.chance(link.loss_pct) {
      self.dropped += 1;
      return;
    }
    let copies = if self.rng.chance(link.dup_pct) { 2 } else { 1 };
    let mut depart = self.now;
    if let Some(rate) = link.rate {
      let busy = self
        .link_busy_until
        .get(&(a, b))
        .copied()
        .unwrap_or(self.now)
        .max(self.now);
      let queued = busy.saturating_since(self.now);
      if queued > link.max_queue {
        self.dropped += 1;
        return;
      }
      self.queue_samples.push((self.now, (a, b), queued));
      let tx = Duration::from_nanos(data.len() as u64 * 1_000_000_000 / rate);
      depart = busy + tx;
      self.link_busy_until.insert((a, b), depart);
    }
    for _ in 0..copies {
      let mut at = depart + link.latency;
      if !link.jitter.is_zero() {
        at = at + Duration::from_micros(self.rng.below(link.jitter.as_micros() as u64 + 1));
      }
      if self.rng.chance(link.reorder_pct) {
        at = at + link.latency.max(Duration::from_millis(1));
      }
      self.order += 1;
      self.queue.push(Reverse(InFlight {
        at,
        order: self.order,
        to: b,
        from,
        data: data.clone(),
      }));
    }
  }

  fn run_app(&mut self, i: usize) {
    let now = self.now;
    let node = &mut self.nodes[i];
    while let Some((h, ev)) = node.ep.poll_event() {
      if ev == Event::Incoming {
        node.accepted.push(h);
        node.apps.entry(h).or_default();
      }
      let app = node.apps.entry(h).or_default();
      match ev {
        Event::Connected => app.connected = true,
        Event::Writable => {
          app.blocked = false;
          app.writable_events += 1;
        }
        Event::Closed(r) => {
          node.retransmits += node.ep.connection_stats(h).map_or(0, |s| s.retransmits);
          app.closed = Some(r);
          app.closed_at = Some(now);
          // Whatever arrived before the close is still readable
          loop {
            let r = node.ep.read(h, &mut app.received, usize::MAX);
            app.eof |= r.eof;
            if r.bytes == 0 {
              break;
            }
          }
        }
        Event::Timeout => app.timeout_notices += 1,
        Event::Incoming | Event::Readable => {}
      }
    }
    let handles: Vec<_> = node.apps.keys().copied().collect();
    for h in handles {
      let app = node.apps.get_mut(&h).unwrap();
      if app.closed.is_some() {
        continue;
      }
      // Reads stop at the end of each of the peer's writes: an application reads on until empty
      while !app.paused {
        let r = node.ep.read(h, &mut app.received, usize::MAX);
        app.eof |= r.eof;
        if r.bytes == 0 {
          break;
        }
      }
      while !app.blocked && app.sent < app.to_send.len() {
        let end = (app.sent + 16 * 1024).min(app.to_send.len());
        match node.ep.write(h, &app.to_send[app.sent..end]) {
          Ok(buffered) => {
            app.sent = end;
            app.blocked = buffered >= node.ep.send_buffer(h).unwrap_or(0);
          }
          Err(_) => break,
        }
      }
      if app.finish && !app.shutdown_done && app.sent == app.to_send.len() {
        app.shutdown_done = true;
        node.ep.shutdown(h);
      }
    }
  }

  /// Advance to the next thing that happens; false when nothing ever will
  pub fn step(&mut self) -> bool {
    self.step_before(None)
  }

  /// Like `step`, but never moves time past `limit`
  fn step_before(&mut self, limit: Option<Instant>) -> bool {
    self.pump();
    let mut next = self.queue.peek().map(|Reverse(p)| p.at);
    for n in &mut self.nodes {
      if let Some(t) = n.ep.poll_timeout().map(|t| n.clock.sim(t)) {
        next = Some(next.map_or(t, |x| x.min(t)));
      }
    }
    let Some(mut next) = next else { return false };
    if let Some(limit) = limit {
      if next > limit {
        next = limit + Duration::from_micros(1);
      }
    }
    self.now = self.now.max(next);
    while self.queue.peek().is_some_and(|Reverse(p)| p.at <= self.now) {
      let Reverse(p) = self.queue.pop().unwrap();
      self.delivered += 1;
      let now = self.local_now(p.to);
      let node = &mut self.nodes[p.to];
      if node.ep.handle_datagram(now, p.from, &p.data) == DatagramKind::Foreign {
        node.foreign.push(p.data);
      }
    }
    for n in &mut self.nodes {
      n.ep.handle_timeout(n.clock.local(self.now));
    }
    true
  }

  /// Step until `done` holds or `limit` of virtual time passes; returns whether `done` held
  pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
    let deadline = self.now + limit;
    let (mut last_now, mut stuck) = (self.now, 0u32);
    loop {
      // What the last step's timers produced reaches the applications before `done` looks, so the
      // time it sees is the time things happened
      self.pump();
      if done(self) {
        return true;
      }
      if self.now == last_now {
        stuck += 1;
        let timeouts: Vec<_> = self
          .nodes
          .iter_mut()
          .map(|n| n.ep.poll_timeout().map(|t| n.clock.sim(t)))
          .collect();
        assert!(
          stuck < 100_000,
          "seed {}: time stuck at {:?}; timeouts {timeouts:?}",
          self.seed,
          self.now
        );
      } else {
        (last_now, stuck) = (self.now, 0);
      }
      if self.now > deadline || !self.step_before(Some(deadline)) {
        return done(self);
      }
    }
  }

  pub fn app(&self, node: usize, h: ConnectionHandle) -> &App {
    &self.nodes[node].apps[&h]
  }

  pub fn app_mut(&mut self, node: usize, h: ConnectionHandle) -> &mut App {
    self.nodes[node].apps.get_mut(&h).unwrap()
  }
}

/// Deterministic pseudo-random payload
pub(crate) fn payload(seed: u64, len: usize) -> Vec<u8> {
  let mut rng = Rng::new(seed);
  let mut v = Vec::with_capacity(len + 8);
  while v.len() < len {
    v.extend_from_slice(&rng.next_u64().to_le_bytes());
  }
  v.truncate(len);
  v
}
