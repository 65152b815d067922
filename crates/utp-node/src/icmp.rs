//! ICMP errors for datagrams we sent, read from the socket's error queue
//!
//! A connection attempt to a port where nothing listens gets no uTP answer, only an ICMP port
//! unreachable from the peer's host, and an unconnected UDP socket hears of that only where the
//! kernel queues such errors for it: Linux (and Android) do once `IP_RECVERR` / `IPV6_RECVERR` is
//! set. The socket then polls as in error (POLLERR) until the queue is read with
//! `recvmsg(MSG_ERRQUEUE)`. Each entry carries a `sock_extended_err` (origin, ICMP type and code), and
//! its address (`msg_name`) is where the datagram that caused it was going: the destination we
//! match connection attempts against. (`SO_EE_OFFENDER`, the router or host that sent the ICMP,
//! plays no part.)
//!
//! Elsewhere nothing is enabled and a connection attempt to a silent port fails by its timeout as
//! before: macOS and the BSDs report ICMP errors to connected sockets only, and Windows reports a
//! port unreachable as WSAECONNRESET on a later receive without saying for which destination.

use std::io;
use std::net::SocketAddr;

/// Whether this platform reports ICMP errors to the socket (see the module docs)
pub const ENABLED: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// What one error-queue entry says
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
  /// Nobody can be reached at this address: an ICMP destination unreachable (port, host, network,
  /// administratively prohibited) for a datagram we sent there
  Unreachable(SocketAddr),
  /// Anything else: time exceeded (a hole-punch probe's short TTL), fragmentation needed or packet
  /// too big (path MTU news), a local error
  Other,
}

/// ICMP type 3 (destination unreachable), all codes but 4 (fragmentation needed); ICMPv6 type 1
/// (destination unreachable), all codes
fn is_unreachable(origin: u8, kind: u8, code: u8) -> bool {
  // linux/errqueue.h: SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6
  const ORIGIN_ICMP: u8 = 2;
  const ORIGIN_ICMP6: u8 = 3;
  match origin {
    ORIGIN_ICMP => kind == 3 && code != 4,
    ORIGIN_ICMP6 => kind == 1,
    _ => false,
  }
}

/// Ask the kernel to queue ICMP errors for this socket (best effort: without it, connection
/// attempts to a silent port wait for their timeout)
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn enable(sock: &impl std::os::fd::AsRawFd, v6_socket: bool) -> io::Result<()> {
  let set = |level: libc::c_int, name: libc::c_int| {
    let on: libc::c_int = 1;
    // SAFETY: an int option of the size passed, alive for the call
    let r = unsafe {
      libc::setsockopt(
        sock.as_raw_fd(),
        level,
        name,
        (&on as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
      )
    };
    if r == 0 {
      Ok(())
    } else {
      Err(io::Error::last_os_error())
    }
  };
  // A dual-stack socket hears of its IPv4 traffic's errors through the IPv4 option
  set(libc::IPPROTO_IP, libc::IP_RECVERR)?;
  if v6_socket {
    set(libc::IPPROTO_IPV6, libc::IPV6_RECVERR)?;
  }
  Ok(())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn enable<T>(_sock: &T, _v6_socket: bool) -> io::Result<()> {
  Ok(())
}

/// The next entry of the error queue; WouldBlock when it is empty
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn recv(sock: &impl std::os::fd::AsRawFd) -> io::Result<Report> {
  use std::mem;
  // SAFETY (zeroed): plain C structs, for which all zeroes is a valid value
  let mut name: libc::sockaddr_storage = unsafe { mem::zeroed() };
  // The datagram that caused the error comes back as the payload: not needed, so truncated
  let mut payload = [0u8; 8];
  let mut iov = libc::iovec {
    iov_base: payload.as_mut_ptr().cast(),
    iov_len: payload.len(),
  };
  // One sock_extended_err and the offender's address fit many times over; u64 words align it
  let mut control = [0u64; 32];
  let mut msg: libc::msghdr = unsafe { mem::zeroed() };
  msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
  msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
  msg.msg_iov = &mut iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.as_mut_ptr().cast();
  msg.msg_controllen = mem::size_of_val(&control) as _;
  loop {
    // SAFETY: every pointer in `msg` refers to a live local of the size given
    let r = unsafe {
      libc::recvmsg(
        sock.as_raw_fd(),
        &mut msg,
        libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
      )
    };
    if r >= 0 {
      break;
    }
    let e = io::Error::last_os_error();
    if e.kind() != io::ErrorKind::Interrupted {
      return Err(e);
    }
  }
  let to = sockaddr(&name, msg.msg_namelen);
  // SAFETY: `msg` was filled by recvmsg; the CMSG macros stay within msg_controllen
  let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
  while !cmsg.is_null() {
    let c = unsafe { &*cmsg };
    let queued_error = (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_RECVERR)
      || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
    let size = unsafe { libc::CMSG_LEN(mem::size_of::<libc::sock_extended_err>() as u32) } as usize;
    if queued_error && c.cmsg_len as usize >= size {
      let ee: libc::sock_extended_err = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
      return Ok(match to {
        Some(to) if is_unreachable(ee.ee_origin, ee.ee_type, ee.ee_code) => Report::Unreachable(to),
        _ => Report::Other,
      });
    }
    cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
  }
  Ok(Report::Other)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn recv<T>(_sock: &T) -> io::Result<Report> {
  Err(io::ErrorKind::WouldBlock.into())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn sockaddr(name: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
  use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
  let len = len as usize;
  match name.ss_family as libc::c_int {
    libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
      // SAFETY: the family says the storage holds a sockaddr_in
      let a = unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
      let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
      Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
    }
    libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
      // SAFETY: the family says the storage holds a sockaddr_in6
      let a = unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
      let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
      Some(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id).into())
    }
    _ => None,
  }
}

/// An error a send met because an ICMP error was still pending on the socket: the kernel hands it
/// to whichever call comes next (and forgets it), and the datagram did not leave
pub fn is_pending(e: &io::Error) -> bool {
  ENABLED && e.raw_os_error().is_some_and(is_report)
}

/// The errnos an ICMP report leaves on the socket for its next call (Linux's `icmp_err_convert` and
/// `icmpv6_err_convert`): news of a datagram sent earlier, not of the socket. Not only unreachable
/// ports and hosts: a firewall's "administratively prohibited" over IPv6 is EACCES, an IPv6 router's
/// "packet too big" EMSGSIZE, a parameter problem EPROTO
pub fn is_report(errno: i32) -> bool {
  matches!(
    errno,
    libc::ECONNREFUSED
      | libc::EHOSTUNREACH
      | libc::ENETUNREACH
      | libc::EHOSTDOWN
      | libc::ENONET
      | libc::ENOPROTOOPT
      | libc::EOPNOTSUPP
      | libc::EMSGSIZE
      | libc::EACCES
      | libc::EPROTO
  )
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn only_destination_unreachable_counts() {
    assert!(is_unreachable(2, 3, 3), "port unreachable");
    assert!(is_unreachable(2, 3, 1), "host unreachable");
    assert!(is_unreachable(2, 3, 0), "net unreachable");
    assert!(!is_unreachable(2, 3, 4), "fragmentation needed");
    assert!(!is_unreachable(2, 11, 0), "time exceeded");
    assert!(is_unreachable(3, 1, 4), "ICMPv6 port unreachable");
    assert!(!is_unreachable(3, 2, 0), "ICMPv6 packet too big");
    assert!(!is_unreachable(3, 3, 0), "ICMPv6 time exceeded");
    assert!(!is_unreachable(1, 3, 3), "a local error");
  }

  /// Every errno Linux turns an ICMP or ICMPv6 error into is news of an earlier datagram; the errors
  /// of a socket that itself failed are not
  #[test]
  fn reports_are_the_kernels_icmp_errnos() {
    let reports = [
      (libc::ENETUNREACH, "net unreachable, no route"),
      (libc::EHOSTUNREACH, "host unreachable, filtered, time exceeded"),
      (libc::ENOPROTOOPT, "protocol unreachable"),
      (libc::ECONNREFUSED, "port unreachable"),
      (libc::EMSGSIZE, "fragmentation needed, packet too big"),
      (libc::EOPNOTSUPP, "source route failed"),
      (libc::EHOSTDOWN, "host unknown"),
      (libc::ENONET, "host isolated"),
      (libc::EACCES, "administratively prohibited (ICMPv6)"),
      (libc::EPROTO, "parameter problem"),
    ];
    for (errno, what) in reports {
      assert!(is_report(errno), "{what}");
    }
    for errno in [
      libc::EBADF,
      libc::ENOTSOCK,
      libc::EFAULT,
      libc::EINVAL,
      libc::ENOMEM,
      libc::EAGAIN,
    ] {
      assert!(!is_report(errno), "errno {errno}");
    }
  }

  /// A datagram to a loopback port nobody uses comes back as a port unreachable for that address
  #[cfg(any(target_os = "linux", target_os = "android"))]
  #[test]
  fn loopback_port_unreachable() {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = closed.local_addr().unwrap();
    drop(closed);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    assert!(matches!(recv(&sock), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
    enable(&sock, false).unwrap();
    sock.send_to(b"anyone?", to).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let report = loop {
      match recv(&sock) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
          std::thread::sleep(std::time::Duration::from_millis(1))
        }
        r => break r.unwrap(),
      }
    };
    assert_eq!(report, Report::Unreachable(to));
    assert!(matches!(recv(&sock), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
  }
}
