//! The batch JS drains in one call: flat `[kind, handle, arg]` triples, payload bytes, peers
//!
//! Kinds and their arguments are defined in docs/native-binding.md.

use std::net::SocketAddr;

use utp_proto::CloseReason;

pub const CONNECTED: u32 = 1;
pub const INCOMING: u32 = 2;
pub const DATA: u32 = 3;
pub const END: u32 = 4;
pub const WRITABLE: u32 = 5;
pub const CLOSED: u32 = 6;
pub const MESSAGE: u32 = 7;
pub const NODE_CLOSED: u32 = 8;
pub const SOCKET_ERROR: u32 = 9;
pub const TIMEOUT: u32 = 10;

/// Non-uTP datagrams one batch holds at most while JavaScript has not drained it: a flood of
/// foreign datagrams (while JavaScript is busy, the driver thread keeps receiving) is dropped past
/// this, like UDP loss, instead of growing memory without bound
pub const MAX_MESSAGES: usize = 4096;
/// Their payload bytes, at most
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;

#[derive(Debug, Default)]
pub struct Batch {
  pub events: Vec<u32>,
  /// DATA and MESSAGE payloads back to back, in event order
  pub data: Vec<u8>,
  pub peers: Vec<SocketAddr>,
  /// The last DATA event ends one of the peer's writes: the next one must not extend it
  data_closed: bool,
  /// MESSAGE events in the batch, and their bytes (see [`MAX_MESSAGES`])
  messages: usize,
  message_bytes: usize,
}

impl Batch {
  pub fn is_empty(&self) -> bool {
    self.events.is_empty()
  }

  pub fn push(&mut self, kind: u32, handle: u32, arg: u32) {
    self.events.extend_from_slice(&[kind, handle, arg]);
  }

  /// `n` bytes just appended to `data` for `handle`; extends the previous DATA event when it is
  /// for the same handle, since its bytes are contiguous (one subarray in JS instead of many),
  /// unless that event ended one of the peer's writes (each write is delivered as one chunk).
  /// `ends_write`: these bytes end a write
  pub fn data(&mut self, handle: u32, n: u32, ends_write: bool) {
    let extend = !self.data_closed;
    self.data_closed = ends_write;
    if let [.., DATA, h, len] = self.events.as_mut_slice() {
      if *h == handle && extend {
        if let Some(sum) = len.checked_add(n) {
          *len = sum;
          return;
        }
      }
    }
    self.push(DATA, handle, n);
  }

  pub fn incoming(&mut self, handle: u32, peer: SocketAddr) {
    let idx = self.peer(peer);
    self.push(INCOMING, handle, idx);
  }

  /// Add a non-uTP datagram; false (and nothing added) when the batch holds its share already
  pub fn message(&mut self, from: SocketAddr, payload: &[u8]) -> bool {
    if self.messages >= MAX_MESSAGES || self.message_bytes + payload.len() > MAX_MESSAGE_BYTES {
      return false;
    }
    self.messages += 1;
    self.message_bytes += payload.len();
    let idx = self.peer(from);
    self.data.extend_from_slice(payload);
    self.push(MESSAGE, idx, payload.len() as u32);
    true
  }

  /// Empty it in place, keeping its capacity for the next batch (it names no peers)
  pub fn clear(&mut self) {
    self.events.clear();
    self.data.clear();
    self.messages = 0;
    self.message_bytes = 0;
  }

  pub fn closed(&mut self, handle: u32, reason: CloseReason) {
    let code = match reason {
      CloseReason::Finished => 0,
      CloseReason::Reset => 1,
      CloseReason::Refused => 2,
      CloseReason::TimedOut => 3,
      CloseReason::Aborted => 4,
    };
    self.push(CLOSED, handle, code);
  }

  fn peer(&mut self, addr: SocketAddr) -> u32 {
    self.peers.push(addr);
    (self.peers.len() - 1) as u32
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn adjacent_data_of_one_handle_merges() {
    let mut b = Batch::default();
    b.data(1, 10, false);
    b.data(1, 5, false);
    b.data(2, 3, false);
    b.push(END, 2, 0);
    b.data(2, 4, false);
    assert_eq!(b.events, [DATA, 1, 15, DATA, 2, 3, END, 2, 0, DATA, 2, 4]);
  }

  #[test]
  fn data_that_ends_a_write_is_not_extended() {
    let mut b = Batch::default();
    b.data(1, 10, false);
    b.data(1, 5, true);
    b.data(1, 3, true);
    b.data(1, 2, false);
    b.data(1, 1, false);
    assert_eq!(b.events, [DATA, 1, 15, DATA, 1, 3, DATA, 1, 3]);
  }

  #[test]
  fn message_indexes_peers() {
    let mut b = Batch::default();
    let a: SocketAddr = "1.2.3.4:5".parse().unwrap();
    b.message(a, b"hi");
    b.incoming(7, a);
    assert_eq!(b.events, [MESSAGE, 0, 2, INCOMING, 7, 1]);
    assert_eq!(b.data, b"hi");
    assert_eq!(b.peers, [a, a]);
  }

  #[test]
  fn messages_are_bounded_in_count_and_bytes() {
    let mut b = Batch::default();
    let a: SocketAddr = "1.2.3.4:5".parse().unwrap();
    for _ in 0..MAX_MESSAGES {
      assert!(b.message(a, b"x"));
    }
    assert!(!b.message(a, b"x"), "past the count");
    assert_eq!(b.events.len(), 3 * MAX_MESSAGES);
    b.clear();
    let big = vec![0u8; MAX_MESSAGE_BYTES / 2];
    assert!(b.message(a, &big) && b.message(a, &big));
    assert!(!b.message(a, b"y"), "past the bytes");
    assert_eq!(b.data.len(), MAX_MESSAGE_BYTES);
  }
}
