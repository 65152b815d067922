//! The endpoint's timer queue: one pending deadline per connection, earliest first
//!
//! Connections compute their own next deadline on demand; the queue only remembers when to ask
//! again. Entries are never removed in place: a connection whose deadline moved later keeps its
//! early entry, and when that fires the connection simply reports nothing due and is rescheduled.
//! Each connection has at most one live entry (`scheduled`), so the heap stays bounded.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::time::Instant;

/// Earliest-deadline-first queue of connection handles
#[derive(Debug, Default)]
pub struct TimerQueue {
  heap: BinaryHeap<Reverse<(Instant, u32)>>,
  scheduled: HashMap<u32, Instant>,
}

impl TimerQueue {
  /// Make sure `id` is woken at `deadline` or earlier
  pub fn schedule(&mut self, id: u32, deadline: Instant) {
    match self.scheduled.get(&id) {
      Some(&at) if at <= deadline => {}
      _ => {
        self.scheduled.insert(id, deadline);
        self.heap.push(Reverse((deadline, id)));
      }
    }
  }

  /// Forget `id` (its stale heap entries are skipped when they surface)
  pub fn cancel(&mut self, id: u32) {
    self.scheduled.remove(&id);
  }

  /// The earliest live deadline
  pub fn next_deadline(&mut self) -> Option<Instant> {
    self.discard_stale();
    self.heap.peek().map(|Reverse((at, _))| *at)
  }

  /// Take one connection whose deadline is at or before `now`
  pub fn pop_expired(&mut self, now: Instant) -> Option<u32> {
    self.discard_stale();
    match self.heap.peek() {
      Some(Reverse((at, id))) if *at <= now => {
        let id = *id;
        self.heap.pop();
        self.scheduled.remove(&id);
        Some(id)
      }
      _ => None,
    }
  }

  fn discard_stale(&mut self) {
    while let Some(Reverse((at, id))) = self.heap.peek() {
      if self.scheduled.get(id) == Some(at) {
        return;
      }
      self.heap.pop();
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn earliest_first_and_stale_entries_skipped() {
    let mut q = TimerQueue::default();
    let t = Instant::from_micros;
    q.schedule(1, t(50));
    q.schedule(2, t(20));
    q.schedule(1, t(10)); // earlier: replaces
    q.schedule(2, t(40)); // later: keeps the earlier entry
    assert_eq!(q.next_deadline(), Some(t(10)));
    assert_eq!(q.pop_expired(t(5)), None);
    assert_eq!(q.pop_expired(t(100)), Some(1));
    assert_eq!(q.next_deadline(), Some(t(20)), "2 keeps its earlier deadline");
    assert_eq!(q.pop_expired(t(19)), None);
    assert_eq!(q.pop_expired(t(20)), Some(2), "due exactly at its deadline");
    assert_eq!(q.pop_expired(t(100)), None, "stale entry for 1 at 50 skipped");
    q.schedule(3, t(7));
    q.cancel(3);
    assert_eq!(q.next_deadline(), None);
  }
}
