//! The driver task: one per bound node, on napi-rs's tokio runtime
//!
//! It owns the clock side of the sans-IO contract: it sleeps on socket readiness, the endpoint's
//! next timer and JS-thread notifications, then runs one round under the lock (receive a bounded
//! batch, expire timers, flush, collect events, wake JS once).

use std::io::{self, IoSliceMut};
use std::sync::Arc;
use std::time::Duration;

use quinn_udp::RecvMeta;
use tokio::task::JoinHandle;
use utp_proto::{DatagramKind, Instant};

use crate::state::{Flush, Inner, Leftovers, Phase, Shared, DRIVER_TX_LIMIT};
use crate::udp::{self, Registration, Socket};

/// Buffers (datagrams, or GRO runs of them) received per round before timers, transmits and
/// events get their turn. Where the platform fills one per call (no recvmmsg), that many calls
const RECV_BUDGET: usize = 64;
/// Buffers one receive call fills (recvmmsg), each holding one datagram or a GRO run of them
pub const RECV_SLOTS: usize = 8;
/// Largest UDP payload is 65507, and a GRO run is at most 64 KiB: a bigger buffer never truncates
pub const RECV_BUFFER: usize = 65536;
/// With nothing received for this long the driver hands the node back to the JS-thread loop, if it has one
const QUIET: Duration = Duration::from_millis(2);

enum Step {
  /// Work may remain (receive or transmit bound hit): go again without sleeping
  Again,
  Wait {
    deadline: Option<Instant>,
    blocked: bool,
  },
  Exit(Leftovers),
}

pub async fn run(shared: Arc<Shared>, sock: Arc<Socket>) {
  // Zeroed memory is mapped lazily: a node that only ever sees small datagrams touches little of it
  let mut rx = vec![0u8; RECV_BUFFER * RECV_SLOTS];
  let mut reg_slot: Option<Registration> = None;
  let sleep = tokio::time::sleep(Duration::ZERO);
  tokio::pin!(sleep);
  let quiet = tokio::time::sleep(Duration::ZERO);
  tokio::pin!(quiet);
  loop {
    let handed = shared.inner.lock().in_loop();
    if handed {
      // The JS thread does the I/O; unregistered, the socket wakes no tokio thread
      reg_slot = None;
      shared.notify.notified().await;
      continue;
    }
    if reg_slot.is_none() {
      match Registration::new(&sock) {
        Ok(r) => reg_slot = Some(r),
        Err(e) => {
          let leftovers = shared.inner.lock().fail(shared.now(), errno(&e));
          drop(leftovers);
          return;
        }
      }
    }
    let Some(reg) = &reg_slot else { continue };
    let now = shared.now();
    let (errored, step) = {
      let mut inner = shared.inner.lock();
      // Before the round, whose settle() reports the connection attempts this fails
      let errored = drain_errors(&mut inner, now, &sock, Some(reg));
      (errored, round(&mut inner, now, &sock, reg, &mut rx))
    };
    if errored && !matches!(step, Step::Exit(_)) {
      // The error event also set tokio's WRITE_CLOSED readiness, which it never clears (a "closed"
      // state is final to it): `writable()` would return at once from now on. A fresh registration
      // starts clean, and epoll reports the socket's present state to it.
      reg_slot = None;
      continue;
    }
    let (deadline, blocked) = match step {
      Step::Exit(leftovers) => {
        // The TSFN release and socket close happen here, outside the lock
        drop(reg_slot);
        drop(leftovers);
        return;
      }
      Step::Again => {
        tokio::task::yield_now().await;
        continue;
      }
      Step::Wait { deadline, blocked } => (deadline, blocked),
    };
    if let Some(d) = deadline {
      sleep.as_mut().reset(shared.tokio_instant(d));
    }
    quiet.as_mut().reset(tokio::time::Instant::now() + QUIET);
    let ready = tokio::select! {
      biased;
      _ = shared.notify.notified() => Ok(()),
      r = reg.readable() => r,
      r = reg.error() => r,
      r = reg.writable(), if blocked => r,
      _ = &mut sleep, if deadline.is_some() => Ok(()),
      _ = &mut quiet, if !blocked && shared.inner.lock().loop_capable => {
        let mut inner = shared.inner.lock();
        if inner.loop_capable && inner.phase == Phase::Bound && !inner.has_stalled() {
          inner.hand_to_loop();
        }
        Ok(())
      }
    };
    if let Err(e) = ready {
      let leftovers = shared.inner.lock().fail(shared.now(), errno(&e));
      drop(leftovers);
      return;
    }
  }
}

/// Runs after the driver; if it panicked, JS still hears SOCKET_ERROR and NODE_CLOSED
pub async fn supervise(shared: Arc<Shared>, driver: JoinHandle<()>) {
  // A cancelled driver means the runtime is shutting down with the environment: nobody to tell
  if driver.await.is_err_and(|e| e.is_panic()) {
    let mut inner = shared.inner.lock();
    if inner.phase != Phase::Closed {
      let leftovers = inner.fail(shared.now(), libc::EIO as u32);
      drop(inner);
      drop(leftovers);
    }
  }
}

fn round(inner: &mut Inner, now: Instant, sock: &Socket, reg: &Registration, rx: &mut [u8]) -> Step {
  let more = match receive(inner, now, sock, Some(reg), rx) {
    Ok(more) => more,
    Err(e) => return Step::Exit(inner.fail(now, errno(&e))),
  };
  inner.endpoint.handle_timeout(now);
  let flushed = inner.settle(now, DRIVER_TX_LIMIT, Some(reg));
  let close_deadline = match inner.phase {
    Phase::Closing { deadline } => {
      // Lingering connections (closed, answering stray retransmits) need not hold up close()
      let idle = inner.endpoint.open_connections().is_empty() && !inner.has_stalled();
      if idle || now >= deadline {
        return Step::Exit(inner.finish(now));
      }
      Some(deadline)
    }
    Phase::Bound => None,
    // Already wound down (a JS-side fatal path); just let go
    Phase::Unbound | Phase::Closed => return Step::Exit(inner.release()),
  };
  let deadline = match (inner.endpoint.poll_timeout(), close_deadline) {
    (Some(a), Some(b)) => Some(a.min(b)),
    (a, b) => a.or(b),
  };
  inner.armed = deadline;
  if more || flushed == Flush::Limit {
    return Step::Again;
  }
  Step::Wait {
    deadline,
    blocked: flushed == Flush::Blocked,
  }
}

/// Receive up to [`RECV_BUDGET`] buffers into the endpoint (non-uTP datagrams into the batch);
/// true when the budget ran out with maybe more waiting. Err: the socket itself failed.
///
/// With a registration (edge-triggered readiness) it reads until WouldBlock. Without (libuv's
/// level-triggered poll) a call that fills fewer buffers than it offered ends the round: the poll
/// reports anything that arrives later, and the empty call would be a wasted syscall.
pub fn receive(
  inner: &mut Inner,
  now: Instant,
  sock: &Socket,
  reg: Option<&Registration>,
  rx: &mut [u8],
) -> io::Result<bool> {
  let mut meta = [RecvMeta::default(); RECV_SLOTS];
  let mut filled_total = 0;
  while filled_total < RECV_BUDGET {
    let received = {
      let mut slots = rx.chunks_mut(RECV_BUFFER);
      let mut bufs: [IoSliceMut<'_>; RECV_SLOTS] =
        std::array::from_fn(|_| IoSliceMut::new(slots.next().unwrap_or_default()));
      sock.recv(&mut bufs, &mut meta, reg)
    };
    match received {
      Ok(n) => {
        for (slot, m) in meta.iter().take(n).enumerate() {
          let from = udp::from_wire(m.addr);
          let start = slot * RECV_BUFFER;
          let filled = &rx[start..start + m.len.min(RECV_BUFFER)];
          // A GRO run: equal-sized datagrams back to back, the last maybe shorter (an empty
          // datagram is one too: dgram users see those)
          let stride = if filled.is_empty() { 1 } else { m.stride.max(1) };
          for datagram in filled.chunks(stride).chain(filled.is_empty().then_some(filled)) {
            if inner.endpoint.handle_datagram(now, from, datagram) == DatagramKind::Foreign {
              inner.batch_message(from, datagram);
            }
          }
        }
        filled_total += n.max(1);
        if reg.is_none() && n < RECV_SLOTS && udp::RECV_FILLS_ALL {
          return Ok(false);
        }
      }
      Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
      Err(e) if transient(&e) => filled_total += 1,
      Err(e) => return Err(e),
    }
  }
  Ok(true)
}

/// Read the socket's error queue (see [`crate::icmp`]): connection attempts to an address found
/// unreachable fail (ECONNREFUSED in JavaScript), open connections and everything else ignore it.
/// True when the queue held anything.
pub fn drain_errors(inner: &mut Inner, now: Instant, sock: &Socket, reg: Option<&Registration>) -> bool {
  sock.drain_errors(reg, |to| inner.unreachable(now, to))
}

/// Errors a receive reports for an earlier send (any ICMP report, [`crate::icmp::is_report`]) or an
/// interruption: the socket is fine. Each counts against the budget, so none can hold the loop
fn transient(e: &io::Error) -> bool {
  let report = |n: i32| crate::icmp::is_report(n) || n == libc::ECONNRESET || n == libc::EINTR;
  // EINTR by its kind too, whatever the platform numbers it
  let interrupted = e.kind() == io::ErrorKind::Interrupted;
  e.raw_os_error().is_some_and(report) || interrupted
}

fn errno(e: &io::Error) -> u32 {
  e.raw_os_error().map_or(libc::EIO as u32, |n| n as u32)
}
