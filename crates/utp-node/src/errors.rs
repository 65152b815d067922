//! Error codes as JS sees them: `err.code` is the errno name or one of our `ERR_UTP_*` strings

use std::borrow::Cow;
use std::io;

use napi::Status;

/// The `code` of a thrown JS error (napi-rs passes an error's status string to `napi_create_error`)
#[derive(Debug, Clone)]
pub struct Code(Cow<'static, str>);

impl AsRef<str> for Code {
  fn as_ref(&self) -> &str {
    &self.0
  }
}

impl From<Status> for Code {
  fn from(s: Status) -> Self {
    Code(Cow::Owned(s.as_ref().to_owned()))
  }
}

/// Errors carrying our codes instead of napi statuses (`#[napi]` signatures must spell out
/// `napi::Result<T, Code>`: the macro only recognises a type named `Result`)
pub type JsResult<T> = napi::Result<T, Code>;

pub const ALREADY_BOUND: &str = "ERR_UTP_ALREADY_BOUND";
pub const NOT_BOUND: &str = "ERR_UTP_NOT_BOUND";
pub const CLOSED: &str = "ERR_UTP_CLOSED";
pub const TOO_MANY_CONNECTIONS: &str = "ERR_UTP_TOO_MANY_CONNECTIONS";
pub const WRITE_AFTER_END: &str = "ERR_STREAM_WRITE_AFTER_END";
pub const EINVAL: &str = "EINVAL";

pub fn error(code: &'static str, msg: impl ToString) -> napi::Error<Code> {
  napi::Error::new(Code(Cow::Borrowed(code)), msg)
}

pub fn invalid(msg: impl ToString) -> napi::Error<Code> {
  error(EINVAL, msg)
}

/// An OS error as Node reports it: `"<syscall> <ERRNO> <detail>"` with `code` = the errno name
pub fn from_io(e: &io::Error, syscall: &str, detail: &str) -> napi::Error<Code> {
  let name = e.raw_os_error().map_or("UNKNOWN", errno_name);
  napi::Error::new(Code(Cow::Borrowed(name)), format!("{syscall} {name} {detail}"))
}

/// A napi-rs error (failed value conversion and the like) re-coded for `JsResult`
pub fn from_napi(e: napi::Error) -> napi::Error<Code> {
  napi::Error::new(Code::from(e.status), e.reason.clone())
}

/// libuv's names for the errnos a UDP socket can produce; `UNKNOWN` like libuv for the rest
pub fn errno_name(errno: i32) -> &'static str {
  match errno {
    libc::EADDRINUSE => "EADDRINUSE",
    libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
    libc::EACCES => "EACCES",
    libc::EPERM => "EPERM",
    libc::EINVAL => "EINVAL",
    libc::EAFNOSUPPORT => "EAFNOSUPPORT",
    libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
    libc::EMFILE => "EMFILE",
    libc::ENFILE => "ENFILE",
    libc::ENOBUFS => "ENOBUFS",
    libc::ENOMEM => "ENOMEM",
    libc::EMSGSIZE => "EMSGSIZE",
    libc::ENETDOWN => "ENETDOWN",
    libc::ENETUNREACH => "ENETUNREACH",
    libc::EHOSTUNREACH => "EHOSTUNREACH",
    libc::ECONNREFUSED => "ECONNREFUSED",
    libc::ECONNRESET => "ECONNRESET",
    libc::EBADF => "EBADF",
    libc::EIO => "EIO",
    libc::EAGAIN => "EAGAIN",
    libc::ENOTSOCK => "ENOTSOCK",
    _ => "UNKNOWN",
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  /// The errnos a UDP socket's calls can fail with: each must reach JavaScript under its own name, as
  /// Node's dgram reports it, so a program can tell `EADDRINUSE` from `EMFILE`
  #[cfg(all(target_os = "linux", target_env = "gnu"))]
  const UDP_ERRNOS: &[i32] = &[
    libc::EADDRINUSE,
    libc::EADDRNOTAVAIL,
    libc::EACCES,
    libc::EPERM,
    libc::EINVAL,
    libc::EAFNOSUPPORT,
    libc::EPROTONOSUPPORT,
    libc::EMFILE,
    libc::ENFILE,
    libc::ENOBUFS,
    libc::ENOMEM,
    libc::EMSGSIZE,
    libc::ENETDOWN,
    libc::ENETUNREACH,
    libc::EHOSTUNREACH,
    libc::ECONNREFUSED,
    libc::ECONNRESET,
    libc::EBADF,
    libc::EIO,
    libc::EAGAIN,
    libc::ENOTSOCK,
  ];

  /// The names come from the C library, not from a second copy of our table. (The error constructors are
  /// left to the JavaScript tests: a `napi::Error` cannot be built outside a loaded addon, for want of the
  /// N-API symbols its drop refers to.)
  #[cfg(all(target_os = "linux", target_env = "gnu"))]
  #[test]
  fn errno_names_are_the_c_librarys() {
    extern "C" {
      // glibc 2.32 and later
      fn strerrorname_np(errnum: libc::c_int) -> *const libc::c_char;
    }
    for &errno in UDP_ERRNOS {
      // SAFETY: strerrorname_np returns a static string, or null for a number it does not know
      let name = unsafe { strerrorname_np(errno) };
      assert!(!name.is_null(), "the C library has no name for errno {errno}");
      // SAFETY: not null, so a static NUL-terminated string
      let theirs = unsafe { std::ffi::CStr::from_ptr(name) };
      assert_eq!(errno_name(errno), theirs.to_str().unwrap(), "errno {errno}");
    }
  }

  #[test]
  fn errnos_outside_the_table_are_unknown() {
    for errno in [libc::ENOENT, libc::ENOTDIR, libc::ETIMEDOUT, 0, 100_000] {
      assert_eq!(errno_name(errno), "UNKNOWN", "errno {errno}");
    }
  }
}
