//! The UDP socket: setup, and the address mapping that hides dual-stack sockets from the protocol
//!
//! A socket bound to `::` talks to IPv4 peers as `::ffff:a.b.c.d`. The endpoint keys connections
//! by address, so everything above this module sees plain IPv4 for IPv4 peers, whatever the
//! socket's family; `to_wire`/`from_wire` translate at the syscall boundary.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use socket2::{Domain, Protocol, SockRef, Type};
use tokio::io::Interest;

use crate::icmp::{self, Report};

const SOCKET_BUFFER: usize = 4 << 20;

/// A bound, nonblocking UDP socket. It is registered with the tokio reactor only while the driver
/// owns its I/O (see [`Registration`]): a registration would wake a tokio thread for every datagram
/// even while the JS thread is the one receiving.
#[derive(Debug)]
pub struct Socket {
  io: std::net::UdpSocket,
  /// Bound to `::` with IPV6_V6ONLY off, so IPv4 peers are reachable through mapped addresses
  pub dual: bool,
  pub local: SocketAddr,
  /// Batched I/O where the kernel has it (GSO, GRO, recvmmsg), plain syscalls where it does not
  batched: UdpSocketState,
}

impl Socket {
  /// Wrap a bound, nonblocking std socket
  pub fn new(std: std::net::UdpSocket, dual: bool) -> io::Result<Self> {
    let local = std.local_addr()?;
    let batched = UdpSocketState::new(UdpSockRef::from(&std))?;
    // quinn-udp forbids fragmentation for the whole socket; we want it only for path MTU probes
    // (a probe that fragments proves nothing), not for a user's large raw datagram or an `mtu`
    // a little above a tunnel's, which used to arrive fragmented and must keep doing so
    dont_fragment(&std, local.is_ipv6(), false);
    // Best effort: without it a connection attempt to a port nobody uses waits for its timeout
    let _ = icmp::enable(&std, local.is_ipv6());
    Ok(Self {
      io: std,
      dual,
      local,
      batched,
    })
  }

  /// Send a path MTU probe with fragmentation forbidden for just this datagram; errors (EMSGSIZE
  /// when it exceeds the local MTU, WouldBlock) count as a lost probe
  pub fn send_probe(&self, data: &[u8], to: SocketAddr) {
    dont_fragment(&self.io, self.local.is_ipv6(), true);
    let _ = resend_once(|| SockRef::from(&self.io).send_to(data, &self.to_wire(to).into()));
    dont_fragment(&self.io, self.local.is_ipv6(), false);
  }

  /// Datagrams one send may carry as segments of equal size (1 without GSO)
  pub fn max_segments(&self) -> usize {
    self.batched.max_gso_segments()
  }

  /// Send `data` as one datagram or, with `segment`, as datagrams of that size (the last may be
  /// shorter) in one syscall. Same readiness rules as [`Socket::send`].
  pub fn send_segments(
    &self,
    data: &[u8],
    to: SocketAddr,
    segment: Option<usize>,
    reg: Option<&Registration>,
  ) -> io::Result<()> {
    let t = Transmit {
      destination: self.to_wire(to),
      ecn: None,
      contents: data,
      segment_size: segment,
      src_ip: None,
    };
    let send = || resend_once(|| self.batched.try_send(UdpSockRef::from(&self.io), &t));
    match reg {
      Some(reg) => reg.try_io(Interest::WRITABLE, send),
      None => send(),
    }
  }

  /// Receive into `bufs` (one datagram, or a GRO run of equal-sized ones, per buffer); returns how
  /// many buffers were filled, described by `meta`. Same readiness rules as [`Socket::send`].
  pub fn recv(
    &self,
    bufs: &mut [IoSliceMut<'_>],
    meta: &mut [RecvMeta],
    reg: Option<&Registration>,
  ) -> io::Result<usize> {
    let mut recv = || self.batched.recv(UdpSockRef::from(&self.io), bufs, meta);
    match reg {
      Some(reg) => reg.try_io(Interest::READABLE, recv),
      None => recv(),
    }
  }

  /// Read the error queue (see [`icmp`]), handing each unreachable destination to `f`; true when it
  /// held anything. With a registration it reads only after the reactor reported an error
  /// condition, and clears that report once the queue is empty.
  pub fn drain_errors(&self, reg: Option<&Registration>, mut f: impl FnMut(SocketAddr)) -> bool {
    if !icmp::ENABLED {
      return false;
    }
    let mut found = false;
    let mut drain = || {
      for _ in 0..ERRORS_PER_CALL {
        match icmp::recv(&self.io) {
          Ok(Report::Unreachable(to)) => {
            found = true;
            f(from_wire(to));
          }
          Ok(Report::Other) => found = true,
          Err(_) => {
            // Reading the queue resets the socket's pending error (SO_ERROR); one raised without
            // an entry would keep the poll reporting it until read
            found |= matches!(self.io.take_error(), Ok(Some(_)));
            // Whatever the error, the queue is done with: clear the readiness
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
          }
        }
      }
      // Maybe more: the report stays, and the next round reads on
      Ok(())
    };
    let _ = match reg {
      Some(reg) => reg.try_io(Interest::ERROR, drain),
      None => drain(),
    };
    found
  }

  #[cfg(unix)]
  pub fn raw_fd(&self) -> std::os::fd::RawFd {
    use std::os::fd::AsRawFd;
    self.io.as_raw_fd()
  }

  /// The address to put in `sendto`
  pub fn to_wire(&self, to: SocketAddr) -> SocketAddr {
    match to {
      SocketAddr::V4(v4) if self.dual => {
        SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
      }
      other => other,
    }
  }

  /// Parse a peer's IP literal and check this socket can reach it
  pub fn peer_ip(&self, host: &str) -> Option<IpAddr> {
    let ip = parse_ip(host)?;
    match ip {
      IpAddr::V4(_) if self.local.is_ipv6() && !self.dual => None,
      IpAddr::V6(_) if self.local.is_ipv4() => None,
      ip => Some(ip),
    }
  }

  /// One nonblocking `sendto`, with a temporary TTL / hop limit if asked (hole-punch probes).
  ///
  /// The JS thread (`reg` None) makes plain syscalls. The driver passes its registration so that
  /// WouldBlock clears tokio's readiness cache and its `writable()` wait is truthful.
  pub fn send(
    &self,
    data: &[u8],
    to: SocketAddr,
    ttl: Option<u32>,
    reg: Option<&Registration>,
  ) -> io::Result<usize> {
    let wire = self.to_wire(to);
    let plain = || resend_once(|| SockRef::from(&self.io).send_to(data, &wire.into()));
    let send = || match reg {
      Some(reg) => reg.try_io(Interest::WRITABLE, plain),
      None => plain(),
    };
    let Some(ttl) = ttl else { return send() };
    let sock = SockRef::from(&self.io);
    // Linux sends v4-mapped destinations down the IPv4 path, which reads IP_TTL even on a v6 socket
    let v4_path = to.is_ipv4();
    let v6_socket = self.local.is_ipv6();
    let old_ttl = if v4_path { sock.ttl().ok() } else { None };
    let old_hops = if v6_socket {
      sock.unicast_hops_v6().ok()
    } else {
      None
    };
    if v4_path {
      sock.set_ttl(ttl)?;
    }
    if v6_socket {
      sock.set_unicast_hops_v6(ttl)?;
    }
    let sent = send();
    if let Some(t) = old_ttl {
      let _ = sock.set_ttl(t);
    }
    if let Some(h) = old_hops {
      let _ = sock.set_unicast_hops_v6(h);
    }
    sent
  }
}

/// Error-queue entries one [`Socket::drain_errors`] reads at most
const ERRORS_PER_CALL: usize = 64;

/// Run a send again if it met an ICMP error still pending on the socket (which that call cleared);
/// the datagram did not leave the first time
fn resend_once<R>(mut send: impl FnMut() -> io::Result<R>) -> io::Result<R> {
  match send() {
    Err(e) if icmp::is_pending(&e) => send(),
    r => r,
  }
}

/// One receive call fills as many buffers as there are datagrams waiting (recvmmsg), so a short
/// one means the queue is empty. Elsewhere quinn-udp fills one per call.
pub const RECV_FILLS_ALL: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// The socket's registration with the tokio reactor, held by the driver while it owns the I/O.
/// Readiness is edge-triggered: it clears only when an operation through [`Registration::try_io`]
/// reports WouldBlock, so the driver's waits never miss a datagram.
pub struct Registration {
  #[cfg(unix)]
  fd: tokio::io::unix::AsyncFd<Fd>,
  /// Elsewhere a duplicate handle of the socket; the driver keeps it registered for good
  #[cfg(not(unix))]
  io: tokio::net::UdpSocket,
}

/// Holding the socket keeps the descriptor open for as long as it is registered
#[cfg(unix)]
struct Fd(std::sync::Arc<Socket>);

#[cfg(unix)]
impl std::os::fd::AsRawFd for Fd {
  fn as_raw_fd(&self) -> std::os::fd::RawFd {
    self.0.raw_fd()
  }
}

impl Registration {
  /// Must run inside the tokio runtime
  pub fn new(sock: &std::sync::Arc<Socket>) -> io::Result<Self> {
    #[cfg(unix)]
    {
      let interest = Interest::READABLE | Interest::WRITABLE;
      // SAFETY: `Fd` owns a reference to the socket, so the descriptor stays open and the same
      let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(Fd(sock.clone()), interest) };
      Ok(Self {
        fd: fd.map_err(|e| e.into_parts().1)?,
      })
    }
    #[cfg(not(unix))]
    {
      Ok(Self {
        io: tokio::net::UdpSocket::from_std(sock.io.try_clone()?)?,
      })
    }
  }

  pub async fn readable(&self) -> io::Result<()> {
    #[cfg(unix)]
    return self.fd.readable().await.map(|_| ());
    #[cfg(not(unix))]
    return self.io.readable().await;
  }

  /// The socket reports an error condition: its error queue holds something (see [`icmp`]).
  /// [`Socket::drain_errors`] clears it.
  pub async fn error(&self) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return self.fd.ready(Interest::ERROR).await.map(|_| ());
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    return std::future::pending().await;
  }

  pub async fn writable(&self) -> io::Result<()> {
    #[cfg(unix)]
    return self.fd.writable().await.map(|_| ());
    #[cfg(not(unix))]
    return self.io.writable().await;
  }

  fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
    #[cfg(unix)]
    return self.fd.try_io(interest, |_| f());
    #[cfg(not(unix))]
    return self.io.try_io(interest, f);
  }
}

/// Forbid or allow IP fragmentation of what the socket sends (best effort: Linux; other platforms
/// keep quinn-udp's setting, fragmentation forbidden)
#[cfg(any(target_os = "linux", target_os = "android"))]
fn dont_fragment(sock: &impl std::os::fd::AsRawFd, v6_socket: bool, forbid: bool) {
  let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| unsafe {
    libc::setsockopt(
      sock.as_raw_fd(),
      level,
      name,
      (&value as *const libc::c_int).cast(),
      std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    )
  };
  let (v4, v6) = if forbid {
    (libc::IP_PMTUDISC_PROBE, libc::IPV6_PMTUDISC_PROBE)
  } else {
    (libc::IP_PMTUDISC_DONT, libc::IPV6_PMTUDISC_DONT)
  };
  // v4-mapped destinations of a dual-stack socket take the IPv4 setting
  set(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v4);
  if v6_socket {
    set(libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, v6);
    set(libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, forbid as libc::c_int);
  }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn dont_fragment<T>(_sock: &T, _v6_socket: bool, _forbid: bool) {}

/// The address the protocol should see for a datagram's source
pub fn from_wire(from: SocketAddr) -> SocketAddr {
  match from {
    SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
      Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
      None => from,
    },
    v4 => v4,
  }
}

/// An IP literal, with `::ffff:a.b.c.d` folded to plain IPv4 (zone ids are not supported)
pub fn parse_ip(host: &str) -> Option<IpAddr> {
  let ip: IpAddr = host.parse().ok()?;
  Some(match ip {
    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
    v4 => v4,
  })
}

/// Bind like dgram: `::` is dual-stack where the OS allows, else `0.0.0.0`. Returns the socket and
/// whether it is dual-stack.
pub fn bind(host: IpAddr, port: u16) -> io::Result<(std::net::UdpSocket, bool)> {
  if host == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
    match open(SocketAddr::new(host, port), true) {
      Ok(s) => return Ok((s, true)),
      // Only "no IPv6 here" falls back; EADDRINUSE on :: must not silently become an IPv4-only bind
      Err(e) if !ipv6_unavailable(&e) => return Err(e),
      Err(_) => {
        return Ok((
          open(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port), false)?,
          false,
        ))
      }
    }
  }
  Ok((open(SocketAddr::new(host, port), false)?, false))
}

fn ipv6_unavailable(e: &io::Error) -> bool {
  matches!(
    e.raw_os_error(),
    Some(libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT | libc::EADDRNOTAVAIL | libc::EINVAL)
  )
}

fn open(addr: SocketAddr, dual: bool) -> io::Result<std::net::UdpSocket> {
  let sock = socket2::Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
  if dual {
    sock.set_only_v6(false)?;
  }
  // Bursts of a few hundred packets must not be dropped by the kernel; the OS may cap these
  let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
  let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
  sock.set_nonblocking(true)?;
  sock.bind(&addr.into())?;
  Ok(sock.into())
}

/// `(address, family)` as Node's `AddressInfo` spells them
pub fn describe(addr: SocketAddr) -> (String, &'static str) {
  match addr.ip() {
    IpAddr::V4(ip) => (ip.to_string(), "IPv4"),
    IpAddr::V6(ip) => (ip.to_string(), "IPv6"),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn mapped_addresses_fold_to_ipv4() {
    assert_eq!(
      parse_ip("::ffff:1.2.3.4"),
      Some(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)))
    );
    assert_eq!(parse_ip("::1"), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert_eq!(parse_ip("localhost"), None);
    let wire: SocketAddr = "[::ffff:10.0.0.1]:5".parse().unwrap();
    assert_eq!(from_wire(wire), "10.0.0.1:5".parse().unwrap());
  }
}
