//! The JS thread's own I/O: libuv poll and timer handles on Node's event loop
//!
//! A datagram the driver thread receives reaches JavaScript only after two thread wake-ups (the
//! driver's, then the JS thread's through the threadsafe function), and on a virtual machine each
//! costs tens of microseconds. While a node is quiet ([`Mode::Loop`](crate::state::Mode::Loop)) the JS thread polls the
//! socket itself, as libutp and libudx do: the datagram is processed and handed to `onWake`
//! within the same event-loop callback, and whatever JavaScript writes in reply leaves with the
//! ACK in it. Busy nodes go back to the driver, which overlaps protocol work with JavaScript.
//!
//! Everything here runs on the JS thread. Node exports libuv's symbols to addons; they resolve
//! when the addon loads, as napi's do.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::Arc;

use napi::sys;
use utp_proto::Instant;

use crate::driver::{self, RECV_BUFFER, RECV_SLOTS};
use crate::state::{Flush, Phase, Shared, INLINE_TX_LIMIT};
use crate::udp::Socket;

// uv.h: enum uv_handle_type (UV_HANDLE_TYPE_MAP order) and enum uv_poll_event
const UV_POLL: c_int = 8;
const UV_TIMER: c_int = 13;
const UV_READABLE: c_int = 1;

/// Times one loop callback hands JavaScript a batch before leaving the rest to the next one
const DELIVERIES: usize = 4;

type UvLoop = sys::uv_loop_s;
type PollCb = unsafe extern "C" fn(*mut c_void, c_int, c_int);
type TimerCb = unsafe extern "C" fn(*mut c_void);
type CloseCb = unsafe extern "C" fn(*mut c_void);

extern "C" {
  fn uv_handle_size(kind: c_int) -> usize;
  fn uv_poll_init_socket(lp: *mut UvLoop, handle: *mut c_void, fd: c_int) -> c_int;
  fn uv_poll_start(handle: *mut c_void, events: c_int, cb: PollCb) -> c_int;
  fn uv_poll_stop(handle: *mut c_void) -> c_int;
  fn uv_timer_init(lp: *mut UvLoop, handle: *mut c_void) -> c_int;
  fn uv_timer_start(handle: *mut c_void, cb: TimerCb, timeout: u64, repeat: u64) -> c_int;
  fn uv_timer_stop(handle: *mut c_void) -> c_int;
  fn uv_update_time(lp: *mut UvLoop);
  fn uv_unref(handle: *mut c_void);
  fn uv_close(handle: *mut c_void, cb: CloseCb);
}

/// The loop handles of one bound node; owned by its `NativeNode`
pub struct JsLoop {
  ctx: *mut Ctx,
}

struct Ctx {
  shared: Arc<Shared>,
  /// Let go at close, not when libuv frees the handles: the port must be free once JS hears
  /// NODE_CLOSED
  sock: RefCell<Option<Arc<Socket>>>,
  env: sys::napi_env,
  uv: *mut UvLoop,
  on_wake: sys::napi_ref,
  async_context: sys::napi_async_context,
  cleanup: Cell<sys::napi_async_cleanup_hook_handle>,
  poll: *mut c_void,
  timer: *mut c_void,
  polling: Cell<bool>,
  timer_at: Cell<Option<Instant>>,
  /// uv_close called on both handles
  closing: Cell<bool>,
  open_handles: Cell<u8>,
  /// The owning `JsLoop` is gone; whoever of it and the last close callback comes second frees this
  owner_gone: Cell<bool>,
  rx: RefCell<Vec<u8>>,
}

/// A handle's first field is `void* data` (UV_HANDLE_FIELDS)
unsafe fn handle_ctx(handle: *mut c_void) -> *mut Ctx {
  *(handle as *mut *mut Ctx)
}

fn alloc_handle(kind: c_int, ctx: *mut Ctx) -> *mut c_void {
  let size = unsafe { uv_handle_size(kind) };
  // u64 words keep the handle suitably aligned
  let words = vec![0u64; size.div_ceil(8)].into_boxed_slice();
  let handle = Box::into_raw(words) as *mut c_void;
  unsafe { *(handle as *mut *mut Ctx) = ctx };
  handle
}

unsafe fn free_handle(kind: c_int, handle: *mut c_void) {
  let words = uv_handle_size(kind).div_ceil(8);
  drop(Box::from_raw(ptr::slice_from_raw_parts_mut(
    handle as *mut u64,
    words,
  )));
}

impl JsLoop {
  /// Create the handles (stopped) for a bound socket; None where the loop is unavailable, and
  /// the node then stays with the driver
  ///
  /// # Safety
  /// `env` is the calling JS thread's, `on_wake` a reference to the node's wake function
  pub unsafe fn new(
    env: sys::napi_env,
    on_wake: sys::napi_ref,
    shared: Arc<Shared>,
    sock: Arc<Socket>,
  ) -> Option<Self> {
    let mut uv = ptr::null_mut();
    if sys::napi_get_uv_event_loop(env, &mut uv) != sys::Status::napi_ok || uv.is_null() {
      return None;
    }
    let mut name = ptr::null_mut();
    let label = "utp-punch-rs";
    sys::napi_create_string_utf8(env, label.as_ptr().cast(), label.len() as isize, &mut name);
    let mut resource = ptr::null_mut();
    sys::napi_create_object(env, &mut resource);
    let mut async_context = ptr::null_mut();
    if sys::napi_async_init(env, resource, name, &mut async_context) != sys::Status::napi_ok {
      return None;
    }
    let fd = sock.raw_fd();
    let ctx = Box::into_raw(Box::new(Ctx {
      shared,
      sock: RefCell::new(Some(sock)),
      env,
      uv,
      on_wake,
      async_context,
      cleanup: Cell::new(ptr::null_mut()),
      poll: ptr::null_mut(),
      timer: ptr::null_mut(),
      polling: Cell::new(false),
      timer_at: Cell::new(None),
      closing: Cell::new(false),
      open_handles: Cell::new(0),
      owner_gone: Cell::new(false),
      rx: RefCell::new(Vec::new()),
    }));
    let poll = alloc_handle(UV_POLL, ctx);
    if uv_poll_init_socket(uv, poll, fd) != 0 {
      free_handle(UV_POLL, poll);
      sys::napi_async_destroy(env, async_context);
      drop(Box::from_raw(ctx));
      return None;
    }
    let timer = alloc_handle(UV_TIMER, ctx);
    uv_timer_init(uv, timer);
    // The threadsafe function's ref, not these handles, keeps the event loop alive
    uv_unref(poll);
    uv_unref(timer);
    (*ctx).poll = poll;
    (*ctx).timer = timer;
    (*ctx).open_handles.set(2);
    // Worker threads end with their event loop closed: the handles must be closed by then
    let mut cleanup = ptr::null_mut();
    if sys::napi_add_async_cleanup_hook(env, Some(on_env_teardown), ctx.cast(), &mut cleanup)
      == sys::Status::napi_ok
    {
      (*ctx).cleanup.set(cleanup);
    }
    Some(Self { ctx })
  }

  /// Bring the handles in line with the node's mode; called after every JS-thread call. False
  /// once the node is closed: then [`JsLoop::close`] is due.
  pub fn sync(&self) -> bool {
    // SAFETY: the context lives until both this owner and the handles are gone
    unsafe { (*self.ctx).sync() }
  }

  /// Stop for good; the handles are freed by libuv's close callbacks
  pub fn close(self) {
    unsafe {
      let ctx = &*self.ctx;
      ctx.owner_gone.set(true);
      ctx.close();
      if ctx.open_handles.get() == 0 {
        // Already closed by the environment's teardown
        drop(Box::from_raw(self.ctx));
      }
    }
  }
}

impl Ctx {
  fn sync(&self) -> bool {
    if self.closing.get() {
      return true;
    }
    if self.shared.deferred.load(std::sync::atomic::Ordering::Relaxed) {
      // Inside a loop turn, which syncs when JavaScript returns
      return true;
    }
    let mut inner = self.shared.inner.lock();
    let run = inner.in_loop();
    let deadline = if run { inner.endpoint.poll_timeout() } else { None };
    let closed = inner.phase == Phase::Closed;
    drop(inner);
    if run {
      if !self.polling.get() && unsafe { uv_poll_start(self.poll, UV_READABLE, on_readable) } == 0 {
        self.polling.set(true);
      }
      self.arm(deadline);
    } else {
      self.stop();
    }
    !closed
  }

  fn stop(&self) {
    if self.polling.replace(false) {
      unsafe { uv_poll_stop(self.poll) };
    }
    if self.timer_at.replace(None).is_some() {
      unsafe { uv_timer_stop(self.timer) };
    }
  }

  fn arm(&self, deadline: Option<Instant>) {
    if deadline == self.timer_at.get() {
      return;
    }
    self.timer_at.set(deadline);
    let Some(at) = deadline else {
      unsafe { uv_timer_stop(self.timer) };
      return;
    };
    let now = self.shared.now();
    // libuv counts milliseconds from the time it cached at the start of this loop turn: refresh
    // it, and round up so the timer never fires before the protocol's deadline
    let ms = at.saturating_since(now).as_micros().div_ceil(1000) as u64;
    unsafe {
      uv_update_time(self.uv);
      uv_timer_start(self.timer, on_timer, ms, 0);
    }
  }

  fn close(&self) {
    if self.closing.replace(true) {
      return;
    }
    self.stop();
    unsafe {
      uv_close(self.poll, on_closed);
      uv_close(self.timer, on_closed);
    }
    // After uv_close: libuv no longer watches the descriptor
    self.sock.borrow_mut().take();
  }

  /// Read the socket's error queue; true when it held anything (the poll may go on then)
  fn drain_errors(&self) -> bool {
    let Some(sock) = self.sock.borrow().clone() else {
      return false;
    };
    let now = self.shared.now();
    driver::drain_errors(&mut self.shared.inner.lock(), now, &sock, None)
  }

  /// One loop turn for this node: receive (when readable), run timers, let JavaScript see what
  /// happened and reply, then send what is left (bare ACKs only if JavaScript had nothing to say)
  fn turn(&self, readable: bool) {
    let shared = &*self.shared;
    let Some(sock) = self.sock.borrow().clone() else {
      return;
    };
    let now = shared.now();
    let mut inner = shared.inner.lock();
    if !inner.in_loop() {
      drop(inner);
      self.stop();
      return;
    }
    inner.delivering = true;
    let mut busy = false;
    if readable {
      let mut rx = self.rx.borrow_mut();
      if rx.is_empty() {
        rx.resize(RECV_BUFFER * RECV_SLOTS, 0);
      }
      // A full budget means a backlog: the driver thread takes over. A failing socket too: the
      // driver reports the error when its own receive meets it.
      busy = driver::receive(&mut inner, now, &sock, None, &mut rx).unwrap_or(true);
    }
    inner.endpoint.handle_timeout(now);
    inner.collect_events();
    let mut flushed = Flush::Done;
    let mut calls = 0;
    // JavaScript's calls during delivery leave their work to us (`deferred`), and that work may
    // make new events (a resumed reader's data, say): deliver until nothing is left
    while inner.has_events() && calls < DELIVERIES {
      calls += 1;
      drop(inner);
      self.call_on_wake();
      inner = shared.inner.lock();
      if inner.in_loop() {
        flushed = inner.settle(shared.now(), INLINE_TX_LIMIT, None);
      }
    }
    if inner.in_loop() {
      if calls == 0 {
        flushed = inner.settle(shared.now(), INLINE_TX_LIMIT, None);
      }
      if busy || flushed != Flush::Done {
        inner.hand_to_driver(&shared.notify);
      }
    }
    // Under the same lock as the last look at the batch: a driver that JavaScript handed the node
    // to meanwhile saw `delivering` and left its events to us. What is still here goes the usual
    // way; if the driver already let go of the wake function (NODE_CLOSED), we deliver it.
    inner.delivering = false;
    inner.wake();
    let stranded = inner.has_events() && inner.wake.is_none();
    drop(inner);
    if stranded {
      self.call_on_wake();
    }
    // A close during delivery leaves the handles to the owner, which sees it on its next call
    self.sync();
  }

  /// Call `onWake` the way Node calls any callback from its event loop (microtasks and
  /// `process.nextTick` run after it); a throw becomes an uncaught exception
  fn call_on_wake(&self) {
    let env = self.env;
    self
      .shared
      .deferred
      .store(true, std::sync::atomic::Ordering::Relaxed);
    unsafe {
      let mut scope = ptr::null_mut();
      sys::napi_open_handle_scope(env, &mut scope);
      let mut func = ptr::null_mut();
      let mut recv = ptr::null_mut();
      sys::napi_get_reference_value(env, self.on_wake, &mut func);
      sys::napi_get_global(env, &mut recv);
      if !func.is_null() {
        let mut result = ptr::null_mut();
        let status =
          sys::napi_make_callback(env, self.async_context, recv, func, 0, ptr::null(), &mut result);
        if status == sys::Status::napi_pending_exception {
          let mut error = ptr::null_mut();
          sys::napi_get_and_clear_last_exception(env, &mut error);
          sys::napi_fatal_exception(env, error);
        }
      }
      sys::napi_close_handle_scope(env, scope);
    }
    self
      .shared
      .deferred
      .store(false, std::sync::atomic::Ordering::Relaxed);
  }
}

unsafe extern "C" fn on_readable(handle: *mut c_void, status: c_int, _events: c_int) {
  let ctx = &*handle_ctx(handle);
  if ctx.closing.get() {
    return;
  }
  if status < 0 {
    // libuv reports POLLERR as an error, and has stopped the poll
    ctx.polling.set(false);
    if ctx.drain_errors() {
      // ICMP errors for datagrams we sent, now read (see `icmp`): go on, and deliver the connection
      // attempts they failed; `turn` polls again
      ctx.turn(true);
      return;
    }
    // Something else: the driver's own receive will meet the error and report it
    ctx.shared.inner.lock().hand_to_driver(&ctx.shared.notify);
    ctx.sync();
    return;
  }
  ctx.turn(true);
}

unsafe extern "C" fn on_timer(handle: *mut c_void) {
  let ctx = &*handle_ctx(handle);
  if ctx.closing.get() {
    return;
  }
  ctx.timer_at.set(None);
  ctx.turn(false);
}

unsafe extern "C" fn on_closed(handle: *mut c_void) {
  let ctx_ptr = handle_ctx(handle);
  let ctx = &*ctx_ptr;
  let kind = if handle == ctx.poll { UV_POLL } else { UV_TIMER };
  free_handle(kind, handle);
  ctx.open_handles.set(ctx.open_handles.get() - 1);
  if ctx.open_handles.get() > 0 {
    return;
  }
  sys::napi_async_destroy(ctx.env, ctx.async_context);
  sys::napi_delete_reference(ctx.env, ctx.on_wake);
  let cleanup = ctx.cleanup.replace(ptr::null_mut());
  if !cleanup.is_null() {
    sys::napi_remove_async_cleanup_hook(cleanup);
  }
  if ctx.owner_gone.get() {
    drop(Box::from_raw(ctx_ptr));
  }
}

unsafe extern "C" fn on_env_teardown(_hook: sys::napi_async_cleanup_hook_handle, data: *mut c_void) {
  // on_closed removes the hook once both handles are closed
  (*(data as *mut Ctx)).close();
}
