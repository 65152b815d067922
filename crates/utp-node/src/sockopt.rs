//! `dgram.Socket`'s socket options for the UDP facade (`node.getUdpSocket()`): broadcast, multicast
//! TTL, loopback and interface, group memberships (any-source and source-specific), and the kernel
//! buffer sizes, set on the node's own UDP socket the way libuv sets them on a dgram socket.
//!
//! Every call answers in libuv's convention, 0 (or a size) on success and a negative errno on
//! failure, so that JavaScript builds exactly the errors dgram throws (`code`, `errno`, `syscall`
//! named after the method). Argument types are checked in JavaScript; addresses are parsed here, and
//! one that does not parse is `-EINVAL`, as libuv answers. No socket (not bound yet, or closed) is
//! `-EBADF`: the closed fd of an unbound dgram socket.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use napi_derive::napi;
use socket2::SockRef;

use crate::errors::{error, Code};
use crate::udp::Socket;
use crate::NativeNode;

/// A socket's answer: `Ok` holds the value to return (0, or a size), `Err` the positive errno
type Answer = Result<i64, i32>;

/// The family the options apply to: libuv picks IPv4 or IPv6 options by the socket's family; a
/// dual-stack socket (bound to `::`) carries IPv4 traffic too, so it gets both
#[derive(Clone, Copy)]
enum Family {
  V4,
  V6,
  Dual,
}

fn family(sock: &Socket) -> Family {
  match (sock.local.is_ipv6(), sock.dual) {
    (false, _) => Family::V4,
    (true, false) => Family::V6,
    (true, true) => Family::Dual,
  }
}

fn errno(e: &io::Error) -> i32 {
  e.raw_os_error().unwrap_or(libc::EIO)
}

/// libuv's `uv_ip6_addr`: an IPv6 literal with an optional `%zone`; the zone is an interface name
/// (0 when no interface has it, as `if_nametoindex` answers) or, as on Windows, a number
fn parse_v6_scoped(s: &str) -> Option<(Ipv6Addr, u32)> {
  let (addr, zone) = match s.split_once('%') {
    Some((a, z)) => (a, Some(z)),
    None => (s, None),
  };
  let ip: Ipv6Addr = addr.parse().ok()?;
  let scope = match zone {
    None => 0,
    Some(z) => z.parse::<u32>().unwrap_or_else(|_| interface_index(z)),
  };
  Some((ip, scope))
}

#[cfg(unix)]
fn interface_index(name: &str) -> u32 {
  match std::ffi::CString::new(name) {
    // SAFETY: a NUL-terminated string that outlives the call
    Ok(c) => unsafe { libc::if_nametoindex(c.as_ptr()) },
    Err(_) => 0,
  }
}

#[cfg(not(unix))]
fn interface_index(_name: &str) -> u32 {
  0
}

/// The IPv4 interface of a membership: the given address, or INADDR_ANY (the system chooses)
fn v4_interface(iface: Option<&str>) -> Result<Ipv4Addr, i32> {
  match iface {
    None => Ok(Ipv4Addr::UNSPECIFIED),
    Some(s) => s.parse().map_err(|_| libc::EINVAL),
  }
}

/// The IPv6 interface index of a membership: the zone of the given address, or 0 (any)
fn v6_interface(iface: Option<&str>) -> Result<u32, i32> {
  match iface {
    None => Ok(0),
    Some(s) => parse_v6_scoped(s).map(|(_, scope)| scope).ok_or(libc::EINVAL),
  }
}

/// MCAST_JOIN_SOURCE_GROUP / MCAST_LEAVE_SOURCE_GROUP (socket2 has only the IPv4 form)
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn ssm_v6(s: &SockRef<'_>, source: Ipv6Addr, group: Ipv6Addr, iface: u32, join: bool) -> io::Result<()> {
  use std::net::SocketAddrV6;
  use std::os::fd::AsRawFd;
  let storage = |ip: Ipv6Addr| socket2::SockAddr::from(SocketAddrV6::new(ip, 0, 0, 0)).as_storage();
  // SAFETY: a plain C struct, for which all zeroes is a valid value
  let mut req: libc::group_source_req = unsafe { std::mem::zeroed() };
  req.gsr_interface = iface;
  req.gsr_group = storage(group);
  req.gsr_source = storage(source);
  let opt = if join {
    libc::MCAST_JOIN_SOURCE_GROUP
  } else {
    libc::MCAST_LEAVE_SOURCE_GROUP
  };
  // SAFETY: `req` is a valid group_source_req of the size passed, alive for the call
  let r = unsafe {
    libc::setsockopt(
      s.as_raw_fd(),
      libc::IPPROTO_IPV6,
      opt,
      std::ptr::addr_of!(req).cast(),
      std::mem::size_of::<libc::group_source_req>() as libc::socklen_t,
    )
  };
  if r == -1 {
    Err(io::Error::last_os_error())
  } else {
    Ok(())
  }
}

/// libuv has no source-specific IPv6 membership on these platforms either
#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn ssm_v6(_s: &SockRef<'_>, _source: Ipv6Addr, _group: Ipv6Addr, _iface: u32, _join: bool) -> io::Result<()> {
  Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// `Ok(())` as 0, an io error as its errno
fn done(r: io::Result<()>) -> Answer {
  r.map(|()| 0).map_err(|e| errno(&e))
}

fn einval() -> napi::Result<i64, Code> {
  Ok(-i64::from(libc::EINVAL))
}

#[napi]
impl NativeNode {
  /// Run `f` on the bound socket (its `Arc` held for the call, so the fd stays open), and answer
  /// as libuv would: the value, or the negative errno; -EBADF when not bound (or closed)
  fn sockopt(&self, f: impl FnOnce(SockRef<'_>, Family) -> Answer) -> napi::Result<i64, Code> {
    if cfg!(not(unix)) {
      // `udp::Socket` exposes its fd on Unix only
      return Err(error(
        "ENOTSUP",
        "socket options of the UDP facade are not available on this platform",
      ));
    }
    let sock: Option<Arc<Socket>> = self.shared.inner.lock().socket.clone();
    let Some(sock) = sock else {
      return Ok(-i64::from(libc::EBADF));
    };
    let fam = family(&sock);
    let a = on_fd(&sock, |s| f(s, fam));
    Ok(match a {
      Ok(v) => v,
      Err(e) => -i64::from(e),
    })
  }

  /// SO_BROADCAST
  #[napi(catch_unwind)]
  pub fn set_broadcast(&self, on: bool) -> napi::Result<i64, Code> {
    self.sockopt(|s, _| done(s.set_broadcast(on)))
  }

  /// IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS, 0..=255 (libuv's range; else -EINVAL)
  #[napi(js_name = "setMulticastTTL", catch_unwind)]
  pub fn set_multicast_ttl(&self, ttl: i32) -> napi::Result<i64, Code> {
    let ttl = match u32::try_from(ttl) {
      Ok(t) if t <= 255 => t,
      _ => return einval(),
    };
    self.sockopt(|s, fam| match fam {
      Family::V4 => done(s.set_multicast_ttl_v4(ttl)),
      Family::V6 => done(s.set_multicast_hops_v6(ttl)),
      Family::Dual => {
        // IPv4 groups are reached through the IPv4 option: best effort, the IPv6 one reports
        let _ = s.set_multicast_ttl_v4(ttl);
        done(s.set_multicast_hops_v6(ttl))
      }
    })
  }

  /// IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP
  #[napi(catch_unwind)]
  pub fn set_multicast_loopback(&self, on: bool) -> napi::Result<i64, Code> {
    self.sockopt(|s, fam| match fam {
      Family::V4 => done(s.set_multicast_loop_v4(on)),
      Family::V6 => done(s.set_multicast_loop_v6(on)),
      Family::Dual => {
        let _ = s.set_multicast_loop_v4(on);
        done(s.set_multicast_loop_v6(on))
      }
    })
  }

  /// IP_MULTICAST_IF for an IPv4 address, IPV6_MULTICAST_IF (its zone's interface index) for an
  /// IPv6 one; libuv too decides by the address, not by the socket's family
  #[napi(catch_unwind)]
  pub fn set_multicast_interface(&self, address: String) -> napi::Result<i64, Code> {
    if let Ok(v4) = address.parse::<Ipv4Addr>() {
      return self.sockopt(|s, _| done(s.set_multicast_if_v4(&v4)));
    }
    match parse_v6_scoped(&address) {
      Some((_, scope)) => self.sockopt(|s, _| done(s.set_multicast_if_v6(scope))),
      None => einval(),
    }
  }

  /// Join (`join`) or leave a multicast group on the interface `iface` (an address; absent: the
  /// system's choice)
  #[napi(catch_unwind)]
  pub fn set_membership(&self, group: String, iface: Option<String>, join: bool) -> napi::Result<i64, Code> {
    let iface = iface.as_deref();
    if let Ok(g) = group.parse::<Ipv4Addr>() {
      let Ok(i) = v4_interface(iface) else {
        return einval();
      };
      return self.sockopt(|s, _| {
        done(if join {
          s.join_multicast_v4(&g, &i)
        } else {
          s.leave_multicast_v4(&g, &i)
        })
      });
    }
    let Ok(g) = group.parse::<Ipv6Addr>() else {
      return einval();
    };
    let Ok(i) = v6_interface(iface) else {
      return einval();
    };
    self.sockopt(|s, _| {
      done(if join {
        s.join_multicast_v6(&g, i)
      } else {
        s.leave_multicast_v6(&g, i)
      })
    })
  }

  /// Join or leave a source-specific group: datagrams sent to `group` by `source` only
  #[napi(catch_unwind)]
  pub fn set_source_membership(
    &self,
    source: String,
    group: String,
    iface: Option<String>,
    join: bool,
  ) -> napi::Result<i64, Code> {
    let iface = iface.as_deref();
    if let Ok(g) = group.parse::<Ipv4Addr>() {
      let Ok(src) = source.parse::<Ipv4Addr>() else {
        return einval();
      };
      let Ok(i) = v4_interface(iface) else {
        return einval();
      };
      return self.sockopt(|s, _| {
        done(if join {
          s.join_ssm_v4(&src, &g, &i)
        } else {
          s.leave_ssm_v4(&src, &g, &i)
        })
      });
    }
    let Ok(g) = group.parse::<Ipv6Addr>() else {
      return einval();
    };
    let Some((src, _)) = parse_v6_scoped(&source) else {
      return einval();
    };
    let Ok(i) = v6_interface(iface) else {
      return einval();
    };
    self.sockopt(|s, _| done(ssm_v6(&s, src, g, i, join)))
  }

  /// SO_RCVBUF (`recv`) or SO_SNDBUF: `size` 0 reads it (the kernel's figure: Linux reports twice
  /// what was set), any other size sets it and answers 0. Over 2^31 - 1 is -EINVAL (dgram passes
  /// an int32)
  #[napi(catch_unwind)]
  pub fn buffer_size(&self, size: u32, recv: bool) -> napi::Result<i64, Code> {
    const MAX: u32 = 0x7fff_ffff;
    if size > MAX {
      return einval();
    }
    self.sockopt(|s, _| {
      if size == 0 {
        let r = if recv {
          s.recv_buffer_size()
        } else {
          s.send_buffer_size()
        };
        return r
          .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
          .map_err(|e| errno(&e));
      }
      done(if recv {
        s.set_recv_buffer_size(size as usize)
      } else {
        s.set_send_buffer_size(size as usize)
      })
    })
  }
}

/// A `SockRef` over the socket's fd; the caller holds the `Arc<Socket>`, so the fd stays open
#[cfg(unix)]
fn on_fd(sock: &Socket, f: impl FnOnce(SockRef<'_>) -> Answer) -> Answer {
  // SAFETY: the fd belongs to `sock`, which outlives this borrow
  let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(sock.raw_fd()) };
  f(SockRef::from(&fd))
}

#[cfg(not(unix))]
fn on_fd(_sock: &Socket, _f: impl FnOnce(SockRef<'_>) -> Answer) -> Answer {
  // Never reached: `sockopt` answers ENOTSUP first
  Err(libc::ENOSYS)
}
