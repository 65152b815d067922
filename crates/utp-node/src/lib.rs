//! The napi-rs addon: `NativeNode` runs a utp-proto [`Endpoint`] over a real UDP socket
//!
//! This file is the JS surface only; its contract with the TypeScript layer is
//! docs/native-binding.md. The rest splits as: `state` (what the JS thread and the driver share
//! and the steps both run), `driver` (the tokio task), `js_loop` (the same work on the JS thread's
//! event loop, for quiet nodes), `udp` (socket setup, dual-stack address mapping), `icmp` (the
//! socket's error queue: ICMP unreachable fails connection attempts), `batch` (the event batch JS
//! drains), `errors` (`err.code` values).
//!
//! No packet ever crosses into JS on its own: I/O accumulates a batch, calls `onWake` once and JS
//! pulls everything with one `drainInto()` (or `drain()`).
#![deny(clippy::all)]

mod batch;
// Async napi methods reference N-API symbols only Node provides, which a test executable cannot link:
// test/dht.test.ts covers this module through the addon
#[cfg(not(test))]
mod dht;
mod driver;
mod errors;
mod icmp;
#[cfg(unix)]
mod js_loop;
mod secure;
mod sockopt;
mod state;
mod udp;

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::net::SocketAddr;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{
  within_runtime_if_available, Buffer, BufferSlice, Function, JsValue, Uint32Array,
};
use napi::threadsafe_function::UnknownReturnValue;
use napi::{sys, Env};
use napi_derive::napi;
use utp_proto::{Config, Congestion, ConnectError, ConnectionHandle, Endpoint, Loopback, WriteError};

use crate::errors::{error, from_io, from_napi, invalid, Code, JsResult};
use crate::state::{Inner, Phase, Shared, WakeFn};
use crate::udp::Socket;

/// Largest UDP payload (65507) minus the largest uTP header we send (24 bytes with our extensions)
const MAX_MTU: f64 = 65483.0;
/// Packets of buffering that count toward loopback peers, whatever bufferSize says
const LOOPBACK_PACKETS: usize = 64;
/// The largest payload path MTU probing tries: a 1,500-byte IPv4 packet minus IP (20), UDP (8) and the
/// largest uTP header we send to a peer that answers probes (24: 20 plus an empty SACK and the
/// end-of-write marker)
const PMTU_CEILING: usize = 1448;

#[napi(object)]
pub struct NativeOptions {
  /// Max payload bytes per packet (Config.max_payload)
  pub mtu: f64,
  /// Packets; recv buffer and send buffer = bufferSize * mtu bytes, at least 2 packets
  pub buffer_size: f64,
  /// Max payload toward loopback peers (their buffers: min(bufferSize, 64) * loopbackMtu, at least 2 packets); 0 or absent: mtu
  pub loopback_mtu: Option<f64>,
  /// Probe paths for payloads above mtu up to 1,448 bytes (DPLPMTUD); absent: false
  pub probe_mtu: Option<bool>,
  /// Always do I/O on the driver thread, never on the JS thread's loop; absent: false
  pub io_thread: Option<bool>,
  /// Let one packet carry bytes of several writes (Config.coalesce_writes); absent: false
  pub coalesce_writes: Option<bool>,
  /// ms, Config.idle_timeout (and how long close() waits before RESETting)
  pub timeout: f64,
  /// ms, Config.min_rto
  pub resend: f64,
  /// ms, Config.keepalive
  pub keep_alive: f64,
  pub max_connections: Option<f64>,
  /// Congestion controller of every connection until setCongestion: 'ledbat' or 'cubic'; absent: ledbat
  #[napi(ts_type = "'ledbat' | 'cubic'")]
  pub congestion: Option<String>,
}

#[napi(object)]
pub struct AddressInfo {
  pub address: String,
  #[napi(ts_type = "'IPv4' | 'IPv6'")]
  pub family: String,
  pub port: u32,
}

#[napi(object)]
pub struct NativeBatch {
  /// Flat triples: [kind, handle, arg, ...]
  pub events: Uint32Array,
  /// Payload bytes of DATA and MESSAGE events, in event order, back to back
  pub data: Buffer,
  /// Remote addresses referenced by INCOMING and MESSAGE events
  pub peers: Vec<AddressInfo>,
}

#[napi(object, js_name = "ConnectionStats")]
pub struct JsConnectionStats {
  /// Microseconds
  pub rtt: f64,
  pub rtt_var: f64,
  pub rto: f64,
  /// Bytes
  pub cwnd: f64,
  pub in_flight: f64,
  pub peer_window: f64,
  pub recv_window: f64,
  /// Microseconds
  pub queuing_delay: f64,
  /// Payload bytes per packet
  pub mtu: f64,
  pub bytes_sent: f64,
  pub bytes_received: f64,
  pub packets_sent: f64,
  pub packets_received: f64,
  pub retransmits: f64,
  pub timeouts: f64,
  pub duplicates: f64,
  /// Window cuts for loss (once per flight) or a timeout
  pub congestion_events: f64,
  /// Retransmission timeouts found spurious afterwards and undone
  pub spurious_timeouts: f64,
  /// Times large packets stopped getting through and the packet size fell back
  pub black_holes: f64,
  /// The congestion controller the connection runs
  #[napi(ts_type = "'ledbat' | 'cubic'")]
  pub congestion: String,
}

#[napi(object)]
pub struct NodeStats {
  pub server_connections: u32,
  pub client_connections: u32,
  pub max_connections: u32,
  /// uTP packets that matched no connection
  pub unmatched_packets: f64,
  /// RESETs sent in answer to unmatched packets
  pub resets_sent: f64,
  /// SYNs refused (not listening, or full)
  pub refused: f64,
  /// ICMP destination-unreachable reports for datagrams the node sent (Linux)
  pub unreachable: f64,
  /// Non-uTP datagrams dropped while JavaScript had not taken the earlier ones (a bounded queue)
  pub raw_datagrams_dropped: f64,
  /// Incoming connections whose handshake the peer has not confirmed yet (not in serverConnections)
  pub pending_handshakes: u32,
  /// SYNs dropped unanswered: too many pending handshakes, in all or from their address
  pub syns_dropped: f64,
}

/// One UDP socket's worth of uTP connections (internal; index.ts wraps it)
#[napi]
pub struct NativeNode {
  shared: Arc<Shared>,
  io_thread: bool,
  env: sys::napi_env,
  /// `onWake`, for the JS-thread loop to call directly; handed to it at bind
  wake_ref: Cell<sys::napi_ref>,
  #[cfg(unix)]
  js_loop: RefCell<Option<js_loop::JsLoop>>,
}

#[napi]
impl NativeNode {
  #[napi(
    constructor,
    catch_unwind,
    ts_args_type = "options: NativeOptions, onWake: () => void"
  )]
  pub fn new(
    env: &Env,
    options: NativeOptions,
    on_wake: Function<(), UnknownReturnValue>,
  ) -> napi::Result<Self, Code> {
    let (cfg, close_timeout) = config(&options)?;
    let wake: WakeFn = on_wake
      .build_threadsafe_function::<()>()
      .callee_handled::<false>()
      .weak::<true>()
      .build()
      .map_err(from_napi)?;
    let mut wake_ref = ptr::null_mut();
    // SAFETY: a reference to a live function value, on its own thread
    unsafe { sys::napi_create_reference(env.raw(), on_wake.raw(), 1, &mut wake_ref) };
    let inner = Inner::new(Endpoint::new(cfg, seed()), wake, close_timeout);
    Ok(Self {
      shared: Arc::new(Shared::new(inner)),
      io_thread: options.io_thread == Some(true),
      env: env.raw(),
      wake_ref: Cell::new(wake_ref),
      #[cfg(unix)]
      js_loop: RefCell::new(None),
    })
  }

  /// Run a JS-thread operation on the shared state, then bring the loop handles in line
  fn with<T>(&self, f: impl FnOnce(&mut Inner, utp_proto::Instant) -> T) -> T {
    let out = self.shared.with(f);
    self.sync_loop();
    out
  }

  /// Let go of `onWake` unless the loop took it (the loop deletes its own when it closes)
  fn drop_wake_ref(&self) {
    let wake_ref = self.wake_ref.replace(ptr::null_mut());
    if !wake_ref.is_null() {
      // SAFETY: only called on the JS thread of `env`
      unsafe { sys::napi_delete_reference(self.env, wake_ref) };
    }
  }

  fn sync_loop(&self) {
    #[cfg(unix)]
    {
      let mut slot = self.js_loop.borrow_mut();
      if slot.as_ref().is_some_and(|l| !l.sync()) {
        if let Some(l) = slot.take() {
          l.close();
        }
      }
    }
  }

  /// Bind the UDP socket synchronously and start the driver
  #[napi(catch_unwind)]
  pub fn bind(&self, env: &Env, port: u32, host: String) -> napi::Result<AddressInfo, Code> {
    match self.shared.inner.lock().phase {
      Phase::Unbound => {}
      Phase::Bound => return Err(error(errors::ALREADY_BOUND, "the node is already bound")),
      _ => return Err(error(errors::CLOSED, "the node is closed")),
    }
    let port = u16::try_from(port).map_err(|_| invalid(format!("invalid port: {port}")))?;
    let ip = udp::parse_ip(&host).ok_or_else(|| invalid(format!("not an IP address: {host}")))?;
    let (std, dual) = udp::bind(ip, port).map_err(|e| from_io(&e, "bind", &format!("{host}:{port}")))?;
    let rt = runtime()?;
    let sock = Socket::new(std, dual).map_err(|e| from_io(&e, "bind", &format!("{host}:{port}")))?;
    let sock = Arc::new(sock);
    let local = sock.local;
    {
      let mut inner = self.shared.inner.lock();
      inner.socket = Some(sock.clone());
      inner.phase = Phase::Bound;
      if inner.want_ref {
        if let Some(wake) = inner.wake.as_mut() {
          // Best effort: a failed ref only means the loop may exit early, never a broken node
          #[allow(deprecated)]
          let _ = wake.refer(env);
        }
      }
    }
    #[cfg(unix)]
    if !self.io_thread {
      let wake_ref = self.wake_ref.replace(ptr::null_mut());
      // SAFETY: bind runs on the JS thread of `env`
      let js = unsafe { js_loop::JsLoop::new(env.raw(), wake_ref, self.shared.clone(), sock.clone()) };
      if let Some(js) = js {
        let mut inner = self.shared.inner.lock();
        inner.loop_capable = true;
        inner.mode = state::Mode::Loop;
        drop(inner);
        *self.js_loop.borrow_mut() = Some(js);
      } else {
        self.wake_ref.set(wake_ref);
      }
    }
    // Without the loop nothing calls onWake directly; a strong reference kept would hold the node
    // (and everything its callback closes over) past close
    self.drop_wake_ref();
    let driver = rt.spawn(driver::run(self.shared.clone(), sock));
    self.sync_loop();
    rt.spawn(driver::supervise(self.shared.clone(), driver));
    Ok(address_info(local))
  }

  #[napi(catch_unwind)]
  pub fn address(&self) -> Option<AddressInfo> {
    self
      .shared
      .inner
      .lock()
      .socket
      .as_ref()
      .map(|s| address_info(s.local))
  }

  /// Accept incoming connections (INCOMING events) or refuse them with RESET; stopping also resets
  /// the handshakes answered but never announced
  #[napi(catch_unwind)]
  pub fn listen(&self, on: bool) {
    // Through `with`, so that those RESETs go out now, not on the next wake
    self.with(|inner, _| {
      if matches!(inner.phase, Phase::Unbound | Phase::Bound) {
        inner.endpoint.set_listening(on);
      }
    });
  }

  /// Open a connection; returns its handle (> 0)
  #[napi(catch_unwind)]
  pub fn connect(&self, port: u32, host: String) -> napi::Result<u32, Code> {
    self.with(|inner, now| {
      let sock = match inner.phase {
        Phase::Unbound => return Err(error(errors::NOT_BOUND, "the node is not bound")),
        Phase::Bound => inner
          .socket
          .clone()
          .ok_or_else(|| error(errors::CLOSED, "the node is closed"))?,
        _ => return Err(error(errors::CLOSED, "the node is closed")),
      };
      let to = peer(&sock, port, &host)?;
      match inner.endpoint.connect(now, to) {
        Ok(h) => Ok(h.0),
        Err(e @ (ConnectError::TooManyConnections | ConnectError::NoConnectionId)) => {
          Err(error(errors::TOO_MANY_CONNECTIONS, e))
        }
      }
    })
  }

  /// Copy all chunks into the send buffer; false means wait for WRITABLE
  #[napi(catch_unwind)]
  pub fn write(&self, handle: u32, chunks: Vec<BufferSlice>) -> napi::Result<bool, Code> {
    self.with(|inner, _| {
      if inner.phase != Phase::Bound {
        return Err(error(errors::CLOSED, "the node is closed"));
      }
      let h = ConnectionHandle(handle);
      let mut buffered = inner.endpoint.write(h, &[]).map_err(write_error)?;
      for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        buffered = inner.endpoint.write(h, chunk).map_err(write_error)?;
      }
      let limit = inner.endpoint.send_buffer(h).unwrap_or(0);
      Ok(buffered < limit)
    })
  }

  /// Seal all chunks with a secure stream's record layer straight into the send buffer (records
  /// of at most 64 KiB, as one write: see `NativeRecordLayer::write_sealed`); false means wait
  /// for WRITABLE
  #[napi(catch_unwind)]
  pub fn write_sealed(
    &self,
    handle: u32,
    layer: &mut secure::NativeRecordLayer,
    chunks: Vec<BufferSlice>,
  ) -> napi::Result<bool, Code> {
    self.with(|inner, _| {
      if inner.phase != Phase::Bound {
        return Err(error(errors::CLOSED, "the node is closed"));
      }
      let h = ConnectionHandle(handle);
      let buffered = layer.write_sealed(&mut inner.endpoint, h, &chunks)?;
      let limit = inner.endpoint.send_buffer(h).unwrap_or(0);
      Ok(buffered < limit)
    })
  }

  /// Send FIN after the buffered data (half-close)
  #[napi(catch_unwind)]
  pub fn end(&self, handle: u32) {
    self.with(|inner, _| inner.endpoint.shutdown(ConnectionHandle(handle)))
  }

  /// The application let go of the connection (its stream was destroyed): FIN after what was
  /// written, incoming data discarded, only CLOSED reported. A TCP socket's close(), where
  /// `destroy` is its RST
  #[napi(catch_unwind)]
  pub fn release(&self, handle: u32) {
    self.with(|inner, now| inner.release_connection(handle, now))
  }

  /// Payload bytes per packet of this connection from now on (1..=65483)
  #[napi(catch_unwind)]
  pub fn set_mtu(&self, handle: u32, mtu: f64) -> napi::Result<(), Code> {
    if !(mtu.is_finite() && (1.0..=MAX_MTU).contains(&mtu)) {
      return Err(invalid(format!(
        "mtu must be a number in 1..{MAX_MTU}, got {mtu}"
      )));
    }
    self.with(|inner, _| {
      inner
        .endpoint
        .set_max_payload(ConnectionHandle(handle), mtu as usize)
    });
    Ok(())
  }

  /// How long the peer may be silent before TIMEOUT (ms; 0: never, and no ETIMEDOUT either)
  #[napi(catch_unwind)]
  pub fn set_timeout(&self, handle: u32, ms: f64) -> napi::Result<(), Code> {
    let limit = match ms {
      0.0 => None,
      _ => match Duration::try_from_secs_f64(ms / 1000.0) {
        Ok(d) if ms.is_finite() && ms > 0.0 => Some(d),
        _ => {
          return Err(invalid(format!(
            "timeout must be a non-negative number of ms, got {ms}"
          )))
        }
      },
    };
    self.with(|inner, _| inner.endpoint.set_timeout(ConnectionHandle(handle), limit));
    Ok(())
  }

  /// The congestion controller of this connection from now on: 'ledbat' or 'cubic' (the window it
  /// reached carries over)
  #[napi(catch_unwind, ts_args_type = "handle: number, mode: 'ledbat' | 'cubic'")]
  pub fn set_congestion(&self, handle: u32, mode: String) -> napi::Result<(), Code> {
    let mode = parse_congestion("congestion", &mode)?;
    self.with(|inner, _| inner.endpoint.set_congestion(ConnectionHandle(handle), mode));
    Ok(())
  }

  /// RESET to the peer; CLOSED(aborted) follows
  #[napi(catch_unwind)]
  pub fn destroy(&self, handle: u32) {
    self.with(|inner, now| inner.endpoint.abort(now, ConnectionHandle(handle)))
  }

  /// Re-aim a connection at the peer's new address (its NAT rebound); returns false when the
  /// connection is gone or another connection already uses that address and id
  #[napi(catch_unwind)]
  pub fn migrate(&self, handle: u32, port: u32, host: String) -> napi::Result<bool, Code> {
    self.with(|inner, now| {
      let sock = inner
        .socket
        .clone()
        .ok_or_else(|| error(errors::CLOSED, "the node is closed"))?;
      let to = peer(&sock, port, &host)?;
      Ok(inner.endpoint.migrate(now, ConnectionHandle(handle), to).is_ok())
    })
  }

  /// false stops DATA for this handle (its window closes as data piles up); true resumes
  #[napi(catch_unwind)]
  pub fn set_reading(&self, handle: u32, reading: bool) {
    self.with(|inner, _| inner.set_reading(handle, reading))
  }

  /// Send a raw (non-uTP) datagram from the same socket; ttl optional (1..255)
  #[napi(catch_unwind)]
  pub fn send_raw(
    &self,
    data: BufferSlice,
    port: u32,
    host: String,
    ttl: Option<u32>,
  ) -> napi::Result<(), Code> {
    self.with(|inner, _| {
      let sock = match inner.phase {
        Phase::Unbound => return Err(error(errors::NOT_BOUND, "the node is not bound")),
        Phase::Closed => return Err(error(errors::CLOSED, "the node is closed")),
        _ => inner
          .socket
          .clone()
          .ok_or_else(|| error(errors::CLOSED, "the node is closed"))?,
      };
      if ttl.is_some_and(|t| !(1..=255).contains(&t)) {
        return Err(invalid("ttl must be 1..255"));
      }
      if data.len() > 65507 {
        return Err(error("EMSGSIZE", "datagram larger than 65507 bytes"));
      }
      let to = peer(&sock, port, &host)?;
      inner.send_raw(&data, to, ttl);
      Ok(())
    })
  }

  /// Take what happened since the last drain by copy: event triples into `events` (u32 in native
  /// byte order), DATA and MESSAGE bytes into `data`. Returns `2 * words + more`: the u32 count
  /// written, and 1 when another batch is already waiting; 0 when nothing happened; -1 when the
  /// batch does not fit or names peers, so `drain()` must take it.
  #[napi(catch_unwind)]
  pub fn drain_into(&self, mut events: BufferSlice, mut data: BufferSlice) -> i32 {
    self.with(|inner, _| match inner.drain_into(&mut events, &mut data) {
      Some(words) => (words as i32) * 2 + inner.has_events() as i32,
      None if inner.has_events() => -1,
      None => {
        // Nothing to report is a drain too: a wake may have been queued with nothing in it (and
        // a connection held back by READ_CAP may add its next share, which drain() then takes)
        inner.drained();
        if inner.has_events() {
          -1
        } else {
          0
        }
      }
    })
  }

  /// Take everything that happened since the last drain (null if nothing)
  #[napi(catch_unwind)]
  pub fn drain(&self) -> Option<NativeBatch> {
    let b = self.with(|inner, _| inner.drain());
    if b.is_empty() {
      return None;
    }
    Some(NativeBatch {
      events: Uint32Array::new(b.events),
      data: Buffer::from(b.data),
      peers: b.peers.into_iter().map(address_info).collect(),
    })
  }

  /// Graceful close; NODE_CLOSED reports completion. Idempotent. `within_ms` bounds how long open connections may
  /// take to finish before they are reset (default: the node's timeout). lib/node.ts first waits for its sockets'
  /// pending writes, then passes what is left of the same timeout, so close() never takes twice the timeout.
  #[napi(catch_unwind)]
  pub fn close(&self, env: &Env, within_ms: Option<u32>) {
    let released = self.with(|inner, now| match inner.phase {
      Phase::Unbound => {
        self.drop_wake_ref();
        // Keep the loop alive until NODE_CLOSED is delivered; the release then lets it go
        if inner.want_ref {
          if let Some(wake) = inner.wake.as_mut() {
            #[allow(deprecated)]
            let _ = wake.refer(env);
          }
        }
        inner.close_unbound()
      }
      Phase::Bound => {
        let within = within_ms.map_or(inner.close_timeout, |ms| Duration::from_millis(u64::from(ms)));
        let deadline = now + within;
        inner.begin_close(deadline);
        None
      }
      _ => None,
    });
    drop(released);
    self.shared.notify.notify_one();
  }

  #[napi(catch_unwind)]
  pub fn connection_stats(&self, handle: u32) -> Option<JsConnectionStats> {
    let s = self
      .shared
      .inner
      .lock()
      .endpoint
      .connection_stats(ConnectionHandle(handle))?;
    Some(JsConnectionStats {
      rtt: s.rtt_us as f64,
      rtt_var: s.rttvar_us as f64,
      rto: s.rto_us as f64,
      cwnd: s.cwnd as f64,
      in_flight: s.in_flight as f64,
      peer_window: s.peer_window as f64,
      recv_window: s.recv_window as f64,
      queuing_delay: s.queuing_delay_us as f64,
      mtu: s.max_payload as f64,
      bytes_sent: s.bytes_sent as f64,
      bytes_received: s.bytes_received as f64,
      packets_sent: s.packets_sent as f64,
      packets_received: s.packets_received as f64,
      retransmits: s.retransmits as f64,
      timeouts: s.timeouts as f64,
      duplicates: s.duplicates as f64,
      congestion_events: s.congestion_events as f64,
      spurious_timeouts: s.spurious_timeouts as f64,
      black_holes: s.black_holes as f64,
      congestion: congestion_name(s.congestion).to_owned(),
    })
  }

  #[napi(catch_unwind)]
  pub fn stats(&self) -> NodeStats {
    let inner = self.shared.inner.lock();
    let s = inner.endpoint.stats();
    NodeStats {
      server_connections: s.server_connections as u32,
      client_connections: s.client_connections as u32,
      max_connections: inner.endpoint.config().max_connections.min(u32::MAX as usize) as u32,
      unmatched_packets: s.unmatched_packets as f64,
      resets_sent: s.resets_sent as f64,
      refused: s.refused as f64,
      unreachable: inner.unreachable_reports as f64,
      raw_datagrams_dropped: inner.dropped_messages as f64,
      pending_handshakes: s.unconfirmed_connections as u32,
      syns_dropped: s.syns_dropped as f64,
    }
  }

  /// Keep the event loop alive while bound (the default)
  #[napi(js_name = "ref", catch_unwind)]
  pub fn ref_(&self, env: &Env) -> napi::Result<(), Code> {
    let mut inner = self.shared.inner.lock();
    inner.want_ref = true;
    if inner.driver_running() {
      if let Some(wake) = inner.wake.as_mut() {
        #[allow(deprecated)]
        wake.refer(env).map_err(from_napi)?;
      }
    }
    Ok(())
  }

  /// Let the event loop exit even while bound
  #[napi(catch_unwind)]
  pub fn unref(&self, env: &Env) -> napi::Result<(), Code> {
    let mut inner = self.shared.inner.lock();
    inner.want_ref = false;
    if let Some(wake) = inner.wake.as_mut() {
      #[allow(deprecated)]
      wake.unref(env).map_err(from_napi)?;
    }
    Ok(())
  }
}

impl Drop for NativeNode {
  /// Collected while bound (only possible when unref'd): wind down at once instead of leaking
  /// the socket and the driver
  fn drop(&mut self) {
    #[cfg(unix)]
    if let Some(l) = self.js_loop.get_mut().take() {
      l.close();
    }
    // Finalizers run on the JS thread
    self.drop_wake_ref();
    let now = self.shared.now();
    let mut inner = self.shared.inner.lock();
    if inner.phase == Phase::Bound {
      inner.begin_close(now);
    }
    if let Phase::Closing { .. } = inner.phase {
      inner.phase = Phase::Closing { deadline: now };
      drop(inner);
      self.shared.notify.notify_one();
    }
  }
}

fn config(o: &NativeOptions) -> JsResult<(Config, Duration)> {
  let count = |name: &str, v: f64, max: f64| -> JsResult<usize> {
    if v.is_finite() && v >= 1.0 && v <= max {
      Ok(v as usize)
    } else {
      Err(invalid(format!(
        "options.{name} must be a number in 1..{max}, got {v}"
      )))
    }
  };
  let ms = |name: &str, v: f64| -> JsResult<Duration> {
    match Duration::try_from_secs_f64(v / 1000.0) {
      Ok(d) if v.is_finite() && v > 0.0 => Ok(d),
      _ => Err(invalid(format!(
        "options.{name} must be a positive number of ms, got {v}"
      ))),
    }
  };
  let mtu = count("mtu", o.mtu, MAX_MTU)?;
  let packets = count("bufferSize", o.buffer_size, (1u64 << 24) as f64)?;
  let buffer = mtu.saturating_mul(packets).max(2 * mtu);
  let idle_timeout = ms("timeout", o.timeout)?;
  let defaults = Config::default();
  let max_connections = match o.max_connections {
    Some(n) => count("maxConnections", n, u32::MAX as f64)?,
    None => defaults.max_connections,
  };
  let loopback = match o.loopback_mtu {
    Some(v) if v != 0.0 => {
      let payload = count("loopbackMtu", v, MAX_MTU)?;
      // Round trips take microseconds there: a larger window only piles up memory
      Some(Loopback {
        max_payload: payload,
        buffer: payload
          .saturating_mul(packets.min(LOOPBACK_PACKETS))
          .max(2 * payload),
      })
    }
    _ => None,
  };
  let cfg = Config {
    max_payload: mtu,
    recv_buffer: buffer,
    send_buffer: buffer,
    loopback,
    pmtu_ceiling: if o.probe_mtu == Some(true) {
      PMTU_CEILING
    } else {
      0
    },
    idle_timeout,
    min_rto: ms("resend", o.resend)?,
    // 0 turns keepalives off
    keepalive: if o.keep_alive == 0.0 {
      Duration::ZERO
    } else {
      ms("keepAlive", o.keep_alive)?
    },
    max_connections,
    coalesce_writes: o.coalesce_writes == Some(true),
    congestion: match &o.congestion {
      Some(name) => parse_congestion("options.congestion", name)?,
      None => defaults.congestion,
    },
    ..defaults
  };
  Ok((cfg, idle_timeout))
}

fn parse_congestion(name: &str, value: &str) -> JsResult<Congestion> {
  match value {
    "ledbat" => Ok(Congestion::Ledbat),
    "cubic" => Ok(Congestion::Cubic),
    _ => Err(invalid(format!(
      "{name} must be 'ledbat' or 'cubic', got '{value}'"
    ))),
  }
}

fn congestion_name(mode: Congestion) -> &'static str {
  match mode {
    Congestion::Ledbat => "ledbat",
    Congestion::Cubic => "cubic",
  }
}

/// A handle to napi-rs's tokio runtime, to spawn the driver on
fn runtime() -> JsResult<tokio::runtime::Handle> {
  // within_runtime_if_available panics when the runtime is gone (environment teardown)
  let entered =
    std::panic::catch_unwind(|| within_runtime_if_available(|| tokio::runtime::Handle::try_current().ok()));
  entered
    .ok()
    .flatten()
    .ok_or_else(|| error("ERR_UTP_RUNTIME", "the tokio runtime is not available"))
}

fn peer(sock: &Socket, port: u32, host: &str) -> JsResult<SocketAddr> {
  let port = u16::try_from(port)
    .ok()
    .filter(|&p| p != 0)
    .ok_or_else(|| invalid(format!("invalid port: {port}")))?;
  let ip = sock
    .peer_ip(host)
    .ok_or_else(|| invalid(format!("not an IP address this socket can reach: {host}")))?;
  Ok(SocketAddr::new(ip, port))
}

fn write_error(e: WriteError) -> napi::Error<Code> {
  match e {
    WriteError::AfterShutdown => error(errors::WRITE_AFTER_END, "write after end"),
    WriteError::Closed => error(errors::CLOSED, "the connection is closed"),
  }
}

fn address_info(addr: SocketAddr) -> AddressInfo {
  let (address, family) = udp::describe(addr);
  AddressInfo {
    address,
    family: family.to_owned(),
    port: addr.port() as u32,
  }
}

/// Connection ids and initial sequence numbers must not be guessable by off-path attackers
fn seed() -> u64 {
  let mut b = [0u8; 8];
  if std::fs::File::open("/dev/urandom")
    .and_then(|mut f| f.read_exact(&mut b))
    .is_ok()
  {
    return u64::from_le_bytes(b);
  }
  use std::hash::BuildHasher;
  std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}
