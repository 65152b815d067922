//! State shared by the JS thread and the driver task, and the steps both of them run on it
//!
//! JS-thread calls do their endpoint work and flush transmits inline (no thread hop per write).
//! In driver mode they notify the driver only when a send would block, a flush hit its bound, or
//! the endpoint now wants a timer earlier than the one the driver sleeps on; in loop mode the same
//! conditions hand the node to the driver (see `Mode`).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue};
use napi::Status;
use parking_lot::Mutex;
use tokio::sync::Notify;
use utp_proto::{ConnectionHandle, Endpoint, Event, Instant};

use crate::batch::{self, Batch};
use crate::udp::{Registration, Socket};

/// `onWake`: weak (unref'd) until bind, called with no arguments, result ignored
pub type WakeFn = ThreadsafeFunction<(), UnknownReturnValue, (), Status, false, true>;

/// Datagrams a JS-thread call sends before leaving the rest to the driver
pub const INLINE_TX_LIMIT: usize = 64;
/// Datagrams the driver sends per round before it looks at the socket again
pub const DRIVER_TX_LIMIT: usize = 512;
/// Bytes one connection may add to one batch; the rest waits for the next drain, so a JS thread
/// that falls behind throttles the peer through the receive window instead of buffering here
const READ_CAP: usize = 1 << 20;
/// Raw datagrams queued behind a full socket buffer; more are dropped like any UDP loss
const MAX_STALLED: usize = 4096;
/// Payload bytes one segmented (GSO) send may carry: the kernel builds it as one 64 KiB UDP packet
const GSO_MAX_BYTES: usize = 65000;

pub struct Shared {
  pub inner: Mutex<Inner>,
  pub notify: Notify,
  /// Set while the JS-thread loop calls into JavaScript: calls made from there leave their
  /// transmits to the loop, which sends them when JavaScript returns (a reply then carries the
  /// ACK instead of following a bare one)
  pub deferred: AtomicBool,
  start: std::time::Instant,
}

impl Shared {
  pub fn new(inner: Inner) -> Self {
    Self {
      inner: Mutex::new(inner),
      notify: Notify::new(),
      deferred: AtomicBool::new(false),
      start: std::time::Instant::now(),
    }
  }

  pub fn now(&self) -> Instant {
    Instant::from_micros(self.start.elapsed().as_micros() as u64)
  }

  pub fn tokio_instant(&self, t: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(self.start + Duration::from_micros(t.as_micros()))
  }

  /// Run a JS-thread operation, then settle inline and hand leftovers to the driver
  pub fn with<T>(&self, f: impl FnOnce(&mut Inner, Instant) -> T) -> T {
    let now = self.now();
    let mut inner = self.inner.lock();
    let out = f(&mut inner, now);
    if self.deferred.load(Ordering::Relaxed) {
      return out;
    }
    let incomplete = inner.settle(now, INLINE_TX_LIMIT, None) != Flush::Done;
    match inner.mode {
      Mode::Driver => {
        if inner.driver_running() && (incomplete || inner.needs_earlier_timer()) {
          self.notify.notify_one();
        }
      }
      // More to send than one call should, or a full socket buffer: bulk traffic, which the
      // driver thread handles in parallel with JavaScript
      Mode::Loop if incomplete => inner.hand_to_driver(&self.notify),
      Mode::Loop => {}
    }
    out
  }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
  Unbound,
  Bound,
  /// close() called (always in driver mode): connections finish until all are gone or `deadline` passes
  Closing {
    deadline: Instant,
  },
  Closed,
}

/// Who does the node's I/O
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
  /// The driver thread: receives, runs timers, sends what JS-thread calls leave over, and wakes
  /// JavaScript with a batch. Busy nodes run here, so protocol work overlaps with JavaScript.
  Driver,
  /// The JS thread's own event loop (libuv poll and timer handles): a datagram reaches
  /// JavaScript with no thread hop. Nodes with little traffic run here, for latency.
  Loop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
  Done,
  /// The socket buffer is full; the driver waits for writability
  Blocked,
  /// Stopped at the datagram limit with maybe more to send
  Limit,
}

/// Datagrams that met a full socket buffer, kept so that nothing the protocol counts as sent is lost
struct Stalled {
  to: SocketAddr,
  data: Vec<u8>,
  ttl: Option<u32>,
  /// A segmented run (several datagrams of this size); None: one datagram
  segment: Option<usize>,
}

/// Consecutive datagrams to one peer, gathered to leave in one segmented (GSO) send: equal sizes,
/// only the last may be shorter
#[derive(Default)]
struct Run {
  to: Option<SocketAddr>,
  data: Vec<u8>,
  segment: usize,
  count: usize,
}

impl Run {
  /// Whether the datagram of `len` bytes to `to` just appended after `before` bytes may join
  fn fits(&self, to: SocketAddr, len: usize, before: usize, max_segments: usize) -> bool {
    self.count == 0
      || (self.to == Some(to)
        && len <= self.segment
        && self.count < max_segments
        && before + len <= GSO_MAX_BYTES)
  }

  /// Count the datagram of `len` bytes that now ends `data`
  fn accept(&mut self, to: SocketAddr, len: usize) {
    if self.count == 0 {
      self.to = Some(to);
      self.segment = len;
    }
    self.count += 1;
  }

  /// A shorter datagram ends a run: segments after it would be misparsed
  fn closed(&self) -> bool {
    self.count > 0 && self.data.len() != self.segment * self.count
  }
}

/// What the driver must release once it stops, outside the lock; dropping it is the point
pub struct Leftovers {
  _wake: Option<WakeFn>,
  _socket: Option<Arc<Socket>>,
}

pub struct Inner {
  pub endpoint: Endpoint,
  pub phase: Phase,
  pub socket: Option<Arc<Socket>>,
  pub wake: Option<WakeFn>,
  /// Keep the event loop alive while bound (dgram's ref/unref)
  pub want_ref: bool,
  /// What the driver sleeps until, so JS-thread calls only wake it for an earlier deadline
  pub armed: Option<Instant>,
  pub close_timeout: Duration,
  pub mode: Mode,
  /// The JS thread has its loop handles, so the driver may hand the node over to it
  pub loop_capable: bool,
  /// The JS-thread loop is in the middle of a round and will deliver the batch itself
  pub delivering: bool,
  /// ICMP destination-unreachable reports for datagrams we sent (see `icmp`)
  pub unreachable_reports: u64,
  /// Non-uTP datagrams dropped because the batch held its share (see `batch::MAX_MESSAGES`)
  pub dropped_messages: u64,
  batch: Batch,
  /// A wake is queued and JS has not drained since: at most one TSFN call in flight
  wake_pending: bool,
  paused: HashSet<u32>,
  ended: HashSet<u32>,
  /// Connections the application let go of (`release`): they finish their FIN exchange on the wire,
  /// what arrives is discarded, and JavaScript hears only their CLOSED
  released: HashSet<u32>,
  /// Where released connections' data is read to and dropped
  discard: Vec<u8>,
  /// Handles with data left behind by READ_CAP: no new Readable event comes for them
  backlog: BTreeSet<u32>,
  /// Bytes each handle added to the current batch
  taken: HashMap<u32, usize>,
  tx: Vec<u8>,
  run: Run,
  stalled: VecDeque<Stalled>,
}

impl Inner {
  pub fn new(endpoint: Endpoint, wake: WakeFn, close_timeout: Duration) -> Self {
    Self {
      endpoint,
      phase: Phase::Unbound,
      socket: None,
      wake: Some(wake),
      want_ref: true,
      armed: None,
      close_timeout,
      mode: Mode::Driver,
      loop_capable: false,
      delivering: false,
      unreachable_reports: 0,
      dropped_messages: 0,
      batch: Batch::default(),
      wake_pending: false,
      paused: HashSet::new(),
      ended: HashSet::new(),
      released: HashSet::new(),
      discard: Vec::new(),
      backlog: BTreeSet::new(),
      taken: HashMap::new(),
      tx: Vec::with_capacity(2048),
      run: Run::default(),
      stalled: VecDeque::new(),
    }
  }

  /// Datagrams wait for socket space; close() lets them out before the socket goes
  pub fn has_stalled(&self) -> bool {
    !self.stalled.is_empty()
  }

  pub fn driver_running(&self) -> bool {
    matches!(self.phase, Phase::Bound | Phase::Closing { .. })
  }

  /// The endpoint wants a timer before the one the driver sleeps on
  fn needs_earlier_timer(&mut self) -> bool {
    match (self.endpoint.poll_timeout(), self.armed) {
      (Some(t), Some(armed)) => t < armed,
      (Some(_), None) => true,
      (None, _) => false,
    }
  }

  /// Flush, turn endpoint events into batch entries, flush what reading queued, wake JS
  pub fn settle(&mut self, now: Instant, limit: usize, reg: Option<&Registration>) -> Flush {
    self.flush(now, limit, reg);
    self.collect_events();
    let flushed = self.flush(now, limit, reg);
    self.wake();
    flushed
  }

  /// Send stalled datagrams, then whatever the endpoint has, until done, blocked or `limit`
  /// datagrams. Consecutive datagrams to one peer leave together as a segmented (GSO) send.
  pub fn flush(&mut self, now: Instant, limit: usize, reg: Option<&Registration>) -> Flush {
    let Some(sock) = self.socket.clone() else {
      return Flush::Done;
    };
    while let Some(p) = self.stalled.front() {
      let sent = match p.ttl {
        Some(_) => sock.send(&p.data, p.to, p.ttl, reg).map(|_| ()),
        None => sock.send_segments(&p.data, p.to, p.segment, reg),
      };
      if is_would_block(&sent) {
        return Flush::Blocked;
      }
      self.stalled.pop_front();
    }
    let max_segments = sock.max_segments();
    let mut outcome = Flush::Limit;
    for _ in 0..limit {
      // Datagrams are written straight into the run: no copy unless the run breaks here
      let before = self.run.data.len();
      let Some(t) = self.endpoint.poll_transmit_append(now, &mut self.run.data) else {
        outcome = Flush::Done;
        break;
      };
      if t.dont_fragment {
        // A path MTU probe leaves alone, with fragmentation forbidden
        self.tx.clear();
        self.tx.extend_from_slice(&self.run.data[before..]);
        self.run.data.truncate(before);
        sock.send_probe(&self.tx, t.destination);
        continue;
      }
      if !self.run.fits(t.destination, t.size, before, max_segments) {
        // This datagram starts the next run: set it aside while the current one leaves
        self.tx.clear();
        self.tx.extend_from_slice(&self.run.data[before..]);
        self.run.data.truncate(before);
        let blocked = self.send_run(&sock, reg);
        self.run.data.extend_from_slice(&self.tx);
        self.run.accept(t.destination, t.size);
        if blocked {
          // What the endpoint handed us counts as sent: it waits behind the stalled run
          self.stall_run();
          return Flush::Blocked;
        }
      } else {
        self.run.accept(t.destination, t.size);
      }
      if (self.run.closed() || max_segments <= 1) && self.send_run(&sock, reg) {
        return Flush::Blocked;
      }
    }
    if self.run.count > 0 && self.send_run(&sock, reg) {
      return Flush::Blocked;
    }
    outcome
  }

  /// Send the gathered run; true when the socket buffer was full (the run is stalled then)
  fn send_run(&mut self, sock: &Socket, reg: Option<&Registration>) -> bool {
    let run = &self.run;
    let Some(to) = run.to else { return false };
    let segment = (run.count > 1).then_some(run.segment);
    let blocked = is_would_block(&sock.send_segments(&run.data, to, segment, reg));
    // Any other error loses these datagrams like the network could; the protocol recovers
    if blocked {
      self.stall_run();
    } else {
      self.run.data.clear();
      self.run.count = 0;
      self.run.to = None;
    }
    blocked
  }

  fn stall_run(&mut self) {
    let run = std::mem::take(&mut self.run);
    if let Some(to) = run.to {
      self.stalled.push_back(Stalled {
        to,
        segment: (run.count > 1).then_some(run.segment),
        data: run.data,
        ttl: None,
      });
    }
  }

  /// A non-uTP datagram from JS; OS errors drop it like UDP loss (hole-punch targets are often dead)
  pub fn send_raw(&mut self, data: &[u8], to: SocketAddr, ttl: Option<u32>) {
    let Some(sock) = self.socket.clone() else { return };
    if self.stalled.is_empty() && !would_block(&sock.send(data, to, ttl, None)) {
      return;
    }
    if self.stalled.len() < MAX_STALLED {
      self.stalled.push_back(Stalled {
        to,
        data: data.to_vec(),
        ttl,
        segment: None,
      });
    }
  }

  /// The network says nobody is at `to`: connection attempts to it fail, open connections carry on
  /// (a forged ICMP must not kill a live connection)
  pub fn unreachable(&mut self, now: Instant, to: SocketAddr) {
    self.unreachable_reports += 1;
    self.endpoint.handle_unreachable(now, to);
  }

  pub fn batch_message(&mut self, from: SocketAddr, payload: &[u8]) {
    if !self.batch.message(from, payload) {
      self.dropped_messages += 1;
    }
  }

  pub fn collect_events(&mut self) {
    while let Some((h, ev)) = self.endpoint.poll_event() {
      let id = h.0;
      match ev {
        Event::Connected => self.batch.push(batch::CONNECTED, id, 0),
        Event::Incoming => {
          if let Some(peer) = self.endpoint.remote_addr(h) {
            self.batch.incoming(id, peer);
          }
        }
        Event::Readable if self.released.contains(&id) => self.discard_readable(id),
        Event::Writable | Event::Timeout if self.released.contains(&id) => {}
        Event::Readable => {
          if !self.paused.contains(&id) {
            self.read_into_batch(id, false);
          }
        }
        Event::Writable => self.batch.push(batch::WRITABLE, id, 0),
        Event::Timeout => self.batch.push(batch::TIMEOUT, id, 0),
        Event::Closed(reason) => {
          // Everything the peer sent precedes CLOSED, paused or not
          if self.released.remove(&id) {
            self.discard_readable(id);
          } else {
            self.read_into_batch(id, true);
          }
          self.batch.closed(id, reason);
          self.paused.remove(&id);
          self.ended.remove(&id);
          self.backlog.remove(&id);
          self.taken.remove(&id);
        }
      }
    }
  }

  /// The application let go of `id` (its stream is destroyed): FIN after what it wrote, as a TCP
  /// socket's close() does, and from now on read what arrives and drop it
  pub fn release_connection(&mut self, id: u32, now: Instant) {
    let h = ConnectionHandle(id);
    // A connection already closed has had (or has in this batch) its CLOSED: nothing to let go of
    if !self.endpoint.is_open(h) {
      return;
    }
    self.endpoint.release(now, h);
    self.released.insert(id);
    self.paused.remove(&id);
    self.backlog.remove(&id);
    self.discard_readable(id);
  }

  fn discard_readable(&mut self, id: u32) {
    let h = ConnectionHandle(id);
    loop {
      self.discard.clear();
      if self.endpoint.read(h, &mut self.discard, usize::MAX).bytes == 0 {
        break;
      }
    }
  }

  /// Move what `id` has waiting into the batch: up to READ_CAP per batch, or everything (`all`)
  fn read_into_batch(&mut self, id: u32, all: bool) {
    let h = ConnectionHandle(id);
    let used = self.taken.get(&id).copied().unwrap_or(0);
    let room = if all {
      usize::MAX
    } else {
      READ_CAP.saturating_sub(used)
    }
    .min(u32::MAX as usize);
    // Read even with no room left: a FIN behind data that exactly filled READ_CAP has no bytes
    // to back-log, so this zero-byte read is the only place its END is seen
    // Grown once to what this read needs: growing by doubling would copy the batch again and again
    self.batch.data.reserve(self.endpoint.readable(h).min(room));
    let mut left = room;
    let mut eof = false;
    // A read stops where one of the peer's writes ends, and each write becomes its own DATA event
    loop {
      let r = self.endpoint.read(h, &mut self.batch.data, left);
      eof |= r.eof;
      if r.bytes == 0 {
        break;
      }
      self.batch.data(id, r.bytes as u32, r.ends_write);
      left -= r.bytes;
      *self.taken.entry(id).or_default() += r.bytes;
      if left == 0 {
        break;
      }
    }
    if eof && self.ended.insert(id) {
      self.batch.push(batch::END, id, 0);
    }
    if !all && self.endpoint.readable(h) > 0 {
      self.backlog.insert(id);
    } else {
      self.backlog.remove(&id);
    }
  }

  /// The driver takes the node's I/O over from the JS-thread loop
  pub fn hand_to_driver(&mut self, notify: &Notify) {
    if self.mode == Mode::Loop {
      self.mode = Mode::Driver;
      notify.notify_one();
    }
  }

  /// The driver gives the node's I/O to the JS-thread loop; the loop starts its handles on the
  /// next JS-thread call, which this wake brings about
  pub fn hand_to_loop(&mut self) {
    self.mode = Mode::Loop;
    self.armed = None;
    self.queue_wake();
  }

  /// The JS-thread loop owns the node's I/O (and it is not closing)
  pub fn in_loop(&self) -> bool {
    self.mode == Mode::Loop && self.phase == Phase::Bound
  }

  pub fn has_events(&self) -> bool {
    !self.batch.is_empty()
  }

  /// Queue `onWake` unless one is already queued, there is nothing to report, or the JS-thread
  /// loop is about to deliver the batch itself
  pub fn wake(&mut self) {
    if !self.batch.is_empty() && !self.delivering {
      self.queue_wake();
    }
  }

  /// At most one `onWake` call in flight
  fn queue_wake(&mut self) {
    if self.wake_pending {
      return;
    }
    if let Some(f) = &self.wake {
      if f.call((), ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok {
        self.wake_pending = true;
      }
    }
  }

  /// JS takes the batch; connections held back by READ_CAP get their next share right away
  pub fn drain(&mut self) -> Batch {
    let out = std::mem::take(&mut self.batch);
    self.drained();
    out
  }

  /// JS takes the batch by copy into its own arrays, when it fits and names no peers: small
  /// batches then cost no allocation on either side. Some(words of `events` written); None when
  /// the batch must go through [`Inner::drain`] (or is empty: `has_events` tells).
  pub fn drain_into(&mut self, events: &mut [u8], data: &mut [u8]) -> Option<usize> {
    let b = &mut self.batch;
    let bytes = b.events.len() * 4;
    if b.is_empty() || !b.peers.is_empty() || bytes > events.len() || b.data.len() > data.len() {
      return None;
    }
    for (dst, w) in events.chunks_exact_mut(4).zip(&b.events) {
      dst.copy_from_slice(&w.to_ne_bytes());
    }
    data[..b.data.len()].copy_from_slice(&b.data);
    let words = b.events.len();
    // Cleared in place: the capacity serves the next batch
    b.clear();
    self.drained();
    Some(words)
  }

  /// After JS took a batch (or found none): the wake is spent, held-back data gets its next share
  pub fn drained(&mut self) {
    self.wake_pending = false;
    self.taken.clear();
    for id in std::mem::take(&mut self.backlog) {
      if !self.paused.contains(&id) {
        self.read_into_batch(id, false);
      }
    }
  }

  pub fn set_reading(&mut self, id: u32, reading: bool) {
    if reading {
      if self.paused.remove(&id) {
        self.read_into_batch(id, false);
      }
    } else if self.endpoint.remote_addr(ConnectionHandle(id)).is_some() {
      self.paused.insert(id);
    }
  }

  /// close() on a node that never bound: nothing to wind down
  pub fn close_unbound(&mut self) -> Option<WakeFn> {
    self.phase = Phase::Closed;
    self.batch.push(batch::NODE_CLOSED, 0, 0);
    self.wake();
    // Released after the queued call; Node still delivers it
    self.wake.take()
  }

  /// close() on a bound node: the driver finishes the job
  pub fn begin_close(&mut self, deadline: Instant) {
    self.mode = Mode::Driver;
    self.endpoint.set_listening(false);
    for h in self.endpoint.open_connections() {
      self.endpoint.shutdown(h);
    }
    self.phase = Phase::Closing { deadline };
  }

  /// Abort what is left, report NODE_CLOSED and hand back what keeps the process alive
  pub fn finish(&mut self, now: Instant) -> Leftovers {
    for h in self.endpoint.open_connections() {
      self.endpoint.abort(now, h);
    }
    self.collect_events();
    self.flush(now, usize::MAX, None);
    self.batch.push(batch::NODE_CLOSED, 0, 0);
    self.phase = Phase::Closed;
    self.armed = None;
    self.stalled.clear();
    self.wake();
    self.release()
  }

  /// Give up the TSFN and the socket (to be dropped outside the lock)
  pub fn release(&mut self) -> Leftovers {
    Leftovers {
      _wake: self.wake.take(),
      _socket: self.socket.take(),
    }
  }

  /// A fatal socket error: report it, then close at once (the socket is unusable)
  pub fn fail(&mut self, now: Instant, errno: u32) -> Leftovers {
    self.batch.push(batch::SOCKET_ERROR, 0, errno);
    self.finish(now)
  }
}

fn would_block(r: &io::Result<usize>) -> bool {
  matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

fn is_would_block(r: &io::Result<()>) -> bool {
  matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}
