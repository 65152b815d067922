//! The driver task: one per bound node, on napi-rs's tokio runtime
//!
//! It owns the clock side of the sans-IO contract: it sleeps on socket readiness, the endpoint's
//! next timer and JS-thread notifications, then runs one round under the lock (receive a bounded
//! batch, expire timers, flush, collect events, wake JS once).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use utp_proto::{DatagramKind, Instant};

use crate::state::{Flush, Inner, Leftovers, Phase, Shared, DRIVER_TX_LIMIT};
use crate::udp::{self, Socket};

/// Datagrams received per round before timers, transmits and events get their turn
const RECV_BATCH: usize = 64;
/// Largest UDP payload is 65507; a bigger buffer never truncates
const RECV_BUFFER: usize = 65536;

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
  let mut rx = vec![0u8; RECV_BUFFER];
  let sleep = tokio::time::sleep(Duration::ZERO);
  tokio::pin!(sleep);
  loop {
    let now = shared.now();
    let step = round(&mut shared.inner.lock(), now, &sock, &mut rx);
    let (deadline, blocked) = match step {
      Step::Exit(leftovers) => {
        // The TSFN release and socket close happen here, outside the lock
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
    let ready = tokio::select! {
      biased;
      _ = shared.notify.notified() => Ok(()),
      r = sock.io.readable() => r,
      r = sock.io.writable(), if blocked => r,
      _ = &mut sleep, if deadline.is_some() => Ok(()),
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

fn round(inner: &mut Inner, now: Instant, sock: &Socket, rx: &mut [u8]) -> Step {
  let mut more = false;
  for i in 0..RECV_BATCH {
    match sock.io.try_recv_from(rx) {
      Ok((n, from)) => {
        let from = udp::from_wire(from);
        if inner.endpoint.handle_datagram(now, from, &rx[..n]) == DatagramKind::Foreign {
          inner.batch_message(from, &rx[..n]);
        }
        more = i + 1 == RECV_BATCH;
      }
      Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
      Err(e) if transient(&e) => {}
      Err(e) => return Step::Exit(inner.fail(now, errno(&e))),
    }
  }
  inner.endpoint.handle_timeout(now);
  let flushed = inner.settle(now, DRIVER_TX_LIMIT, false);
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

/// Errors a UDP receive reports for some earlier send (ICMP unreachable and friends); the
/// socket itself is fine
fn transient(e: &io::Error) -> bool {
  matches!(
    e.raw_os_error(),
    Some(libc::ECONNREFUSED | libc::ECONNRESET | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EINTR)
  ) || e.kind() == io::ErrorKind::Interrupted
}

fn errno(e: &io::Error) -> u32 {
  e.raw_os_error().map_or(libc::EIO as u32, |n| n as u32)
}
