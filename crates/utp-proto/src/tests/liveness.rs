//! When a connection gives up on its peer, and when it asks it again: retransmission timeouts, the
//! dead-peer deadlines (a silent peer, one that only repeats its ACK, a stranger, a lingering close),
//! keepalives and closed-window probes, each at its exact time. Played packet by packet like
//! `edges` (the boundaries of slacks, windows and counters), over minutes of virtual time

use std::time::Duration;

use super::edges::{ack, ms};
use super::scripted::{accept, data, Script};
use crate::conn::DEAD_AFTER_RETRANSMISSIONS;
use crate::packet::{Header, PacketType};
use crate::seq::SeqNr;
use crate::{CloseReason, Config, Event, Instant};

/// What the endpoint does over `span` of its time in 50 ms steps: when each DATA went out (in ms
/// since the call) and when the connection closed, and why
fn timeline(
  s: &mut Script,
  span: Duration,
  mut each_step: impl FnMut(&mut Script),
) -> (Vec<u64>, Option<(u64, CloseReason)>) {
  let start = s.now;
  let mut sends = Vec::new();
  while s.now.saturating_since(start) < span {
    s.advance(ms(50));
    each_step(s);
    let at = s.now.saturating_since(start).as_millis() as u64;
    for (hd, _, _) in s.recv() {
      if hd.ty == PacketType::Data {
        sends.push(at);
      }
    }
    if let Some(r) = s.events.iter().find_map(|(_, e)| match e {
      Event::Closed(r) => Some(*r),
      _ => None,
    }) {
      return (sends, Some((at, r)));
    }
  }
  (sends, None)
}
/// A silent peer: the packet goes again after 1, 2, 4, 8 s (the timeout doubles), and the peer is
/// declared dead at the fourth expiry (`DEAD_AFTER_RETRANSMISSIONS`), 15 s in, though the idle timeout
/// (5 s, twice that for a sending connection) ran out before: enough retransmissions first. A
/// window of exactly one packet is an open window and changes nothing
#[test]
fn a_silent_peer_is_dead_after_four_doubling_retransmissions() {
  for window in [1 << 20, 1000] {
    let mut s = Script::new(Config::default());
    let (h, first) = accept(&mut s);
    s.send(ack(first.sub(1), window), &[]);
    s.ep.write(h, &[1; 1000]).unwrap();
    assert_eq!(s.recv().len(), 1);
    let (sends, closed) = timeline(&mut s, Duration::from_secs(60), |_| {});
    assert_eq!(sends, [1000, 3000, 7000, 15000], "window {window}");
    assert_eq!(closed, Some((15050, CloseReason::TimedOut)), "window {window}");
  }
}
/// A series of timeouts is one congestion event: the first expiry cuts the window and counts, the
/// ones after it find the window at its floor and only count as timeouts
#[test]
fn a_series_of_timeouts_is_one_congestion_event() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 1 << 20), &[]);
  s.ep.write(h, &[1; 1000]).unwrap();
  assert_eq!(s.recv().len(), 1);
  // Expiries at 1 s and 3 s (the timeout doubles)
  let (sends, _) = timeline(&mut s, Duration::from_millis(3500), |_| {});
  assert_eq!(sends, [1000, 3000]);
  let st = s.ep.connection_stats(h).unwrap();
  assert_eq!((st.timeouts, st.congestion_events), (2, 1));
}
/// A peer that keeps talking (a duplicate ACK every half second) and acknowledges nothing cannot
/// hold a sending connection open: each duplicate gets the packet resent at once, the timer never
/// expires, and it is the resent packet that counts. Dead at twice the idle timeout, as a silent
/// one. Its window is exactly one packet, which is an open window: no reason to wait longer
#[test]
fn a_peer_that_only_repeats_its_ack_is_dead_after_twice_the_idle_timeout() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 1000), &[]);
  s.ep.write(h, &[1; 1000]).unwrap();
  assert_eq!(s.recv().len(), 1);
  let mut n = 0;
  let (sends, closed) = timeline(&mut s, Duration::from_secs(120), |s| {
    n += 1;
    if n % 10 == 0 {
      s.send(ack(first.sub(1), 1000), &[]);
    }
  });
  assert!(sends.len() > DEAD_AFTER_RETRANSMISSIONS as usize, "{sends:?}");
  assert_eq!(closed, Some((10_000, CloseReason::TimedOut)));
}
/// A closed window is probed while the peer is silent, at most 8 s apart (the timeout is capped at
/// a fifth of the idle timeout, 4 s here, and the persist timer waits as long again after it)
/// however far the timeout would have backed off
#[test]
fn a_closed_window_is_probed_at_a_capped_interval() {
  let cfg = Config {
    idle_timeout: Duration::from_secs(20),
    ..Config::default()
  };
  let mut s = Script::new(cfg);
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 0), &[]);
  s.ep.write(h, &[1; 3000]).unwrap();
  assert!(s.recv().is_empty());
  let (sends, _) = timeline(&mut s, Duration::from_secs(40), |_| {});
  assert!(sends.len() >= 5, "{sends:?}");
  assert!(sends.windows(2).all(|w| w[1] - w[0] <= 8000), "{sends:?}");
}
/// Lingering ends only once what is owed has gone out: a FIN repeated by the peer at the very end
/// of the linger time is still acknowledged, and the RESET of an abort still goes, whatever the
/// order in which the driver polls and runs timers
#[test]
fn a_lingering_connection_is_forgotten_only_after_its_last_packet() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  let fin = Header {
    ty: PacketType::Fin,
    ..data(101, first.sub(1))
  };
  s.send(fin, &[]);
  s.ep.shutdown(h);
  let out = s.recv();
  let our_fin = out
    .iter()
    .find(|(hd, _, _)| hd.ty == PacketType::Fin)
    .expect("our FIN")
    .0;
  s.send(ack(our_fin.seq_nr, 1 << 20), &[]);
  s.recv();
  assert!(s.events.contains(&(h, Event::Closed(CloseReason::Finished))));
  // The peer did not get our ACK of its FIN and sends it again, just as lingering runs out
  let until = s.ep.poll_timeout().expect("lingering");
  s.now = until;
  s.send(fin, &[]);
  s.ep.handle_timeout(until);
  let out = s.recv();
  assert!(!out.is_empty());
  assert!(
    out
      .iter()
      .all(|(hd, _, _)| (hd.ty, hd.ack_nr) == (PacketType::State, SeqNr(101))),
    "{out:?}"
  );

  let mut s = Script::new(Config::default());
  let (h, _) = accept(&mut s);
  let now = s.now;
  s.ep.abort(now, h);
  while s.ep.poll_event().is_some() {}
  s.ep.handle_timeout(now);
  let out = s.recv();
  assert_eq!(out.len(), 1);
  assert_eq!(out[0].0.ty, PacketType::Reset);
}
/// A peer that is not ours (no hello) but answers our keepalive is known to answer: once it falls
/// silent it is dead within the silence limits, not after the 150 s a stranger gets
#[test]
fn a_stranger_that_answered_a_keepalive_is_dead_soon_after_it_falls_silent() {
  let mut s = Script::new(Config::default());
  let (_, first) = accept(&mut s);
  let mut answered = false;
  let (_, closed) = timeline(&mut s, Duration::from_secs(200), |s| {
    if !answered && s.now.saturating_since(Instant::ZERO) > Duration::from_millis(11_500) {
      answered = true;
      s.send(ack(first.sub(1), 1 << 20), &[]);
    }
  });
  let (at, reason) = closed.expect("closed");
  assert_eq!(reason, CloseReason::TimedOut);
  assert!(at < 30_000, "closed after {at} ms");
}
/// The probe of a closed window goes out on time even while the peer keeps saying its window is
/// closed: each of its packets must not push the probe back
#[test]
fn a_closed_window_is_probed_on_time_while_the_peer_repeats_it() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.send(ack(first.sub(1), 0), &[]);
  s.ep.write(h, &[3; 3000]).unwrap();
  assert!(s.recv().is_empty());
  let (sends, _) = timeline(&mut s, Duration::from_millis(1500), |s| {
    s.send(ack(first.sub(1), 0), &[]);
  });
  assert_eq!(sends, [1000]);
}
/// An idle stranger (a peer that is not ours never answers keepalives) that falls silent is given
/// 150 s, as long as a live libutp or libtorrent may be quiet; not TCP's FIN_WAIT_2 minute, which
/// is for a peer that has our FIN and owes its own
#[test]
fn an_idle_silent_stranger_is_given_150_s() {
  let mut s = Script::new(Config::default());
  let (_, first) = accept(&mut s);
  s.send(ack(first.sub(1), 1 << 20), &[]);
  let (_, closed) = timeline(&mut s, Duration::from_secs(200), |_| {});
  let (at, reason) = closed.expect("closed");
  assert_eq!(reason, CloseReason::TimedOut);
  assert!((150_000..=150_100).contains(&at), "closed after {at} ms");
}
/// With keepalives off (`keepAlive: 0`) an idle connection sends nothing, so the peer's silence
/// proves nothing: the application gets its silence notice (as net's `setTimeout`) and decides;
/// the connection is not declared dead as an unanswered stranger would be
#[test]
fn an_idle_connection_without_keepalives_is_never_declared_dead() {
  let mut s = Script::new(Config {
    keepalive: Duration::ZERO,
    ..Config::default()
  });
  let (_, first) = accept(&mut s);
  s.send(ack(first.sub(1), 1 << 20), &[]);
  let (sends, closed) = timeline(&mut s, Duration::from_secs(400), |_| {});
  assert_eq!(closed, None);
  assert!(sends.is_empty(), "sent {sends:?}");
  assert_eq!(silence_notices(&s), 1);
}
/// A stranger that left a hole in its data and fell silent owes us that packet: it is dead once
/// it could have resent it four times (1, 2, 4, 8 s: no peer's timeout is shorter than 1 s) and
/// twice the silence limit after its last packet (the notice at the limit), not after the 150 s
/// an idle stranger gets. libtorrent does exactly this when a packet's third transmission is
/// lost: it drops the connection without a word, and our reader would otherwise hang for minutes
#[test]
fn a_stranger_silent_with_a_hole_in_its_data_is_dead_after_its_retransmissions_and_twice_the_limit() {
  // (the application's silence limit, when the connection closes in ms after the hole)
  for (limit, dead_at) in [(None, 15_000), (Some(10_000), 20_000)] {
    let mut s = Script::new(Config::default());
    let (h, _) = accept(&mut s);
    // A round trip of 50 ms: our own timeout would be far shorter than any peer's
    let seq = round_trips(&mut s, h, 1, ms(50));
    if let Some(limit) = limit {
      s.ep.set_timeout(h, Some(ms(limit)));
    }
    s.send(data(102, seq), &[7; 1000]);
    let (_, closed) = timeline(&mut s, Duration::from_secs(200), |_| {});
    assert_eq!(silence_notices(&s), 1);
    let (at, reason) = closed.expect("closed");
    assert_eq!(reason, CloseReason::TimedOut);
    assert!(
      (dead_at..=dead_at + 50).contains(&at),
      "limit {limit:?}: closed after {at} ms"
    );
  }
}
/// Without a silence limit (`setTimeout(0)`) a hole does not make the peer dead, but the minute a
/// peer gets for its FIN once ours is acknowledged still holds
#[test]
fn a_hole_without_a_silence_limit_still_gets_the_fin_minute() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.ep.set_timeout(h, None);
  s.ep.shutdown(h);
  assert_eq!(s.recv()[0].0.ty, PacketType::Fin);
  s.send(ack(first, 1 << 20), &[]);
  s.send(data(102, first), &[7; 1000]);
  let (_, closed) = timeline(&mut s, Duration::from_secs(200), |_| {});
  assert_eq!(silence_notices(&s), 0);
  let (at, reason) = closed.expect("closed");
  assert_eq!(reason, CloseReason::TimedOut);
  assert!((60_000..=60_050).contains(&at), "closed after {at} ms");
}
/// On a path with a round trip of seconds the peer's retransmission timeout is seconds too: a hole
/// is given as long as four doubling retransmissions of it take, as our own data is
#[test]
fn a_hole_on_a_long_path_waits_for_four_retransmissions() {
  let mut s = Script::new(Config::default());
  let (h, _) = accept(&mut s);
  let seq = round_trips(&mut s, h, 3, ms(2000));
  s.send(data(102, seq), &[7; 1000]);
  let (_, closed) = timeline(&mut s, Duration::from_secs(200), |_| {});
  let (at, reason) = closed.expect("closed");
  assert_eq!(reason, CloseReason::TimedOut);
  // srtt 2 s, rttvar 562.5 ms: a timeout of 4.25 s, doubling four times (15 of them)
  assert!((63_750..=63_800).contains(&at), "closed after {at} ms");
}
/// `Event::Timeout`s the connection emitted so far
fn silence_notices(s: &Script) -> usize {
  s.events
    .iter()
    .filter(|(_, e)| matches!(e, Event::Timeout))
    .count()
}
/// `n` round trips of `rtt`: a packet of ours each, which the scripted peer acknowledges `rtt`
/// after it went out (RTT samples); returns the sequence number of the last
fn round_trips(s: &mut Script, h: crate::ConnectionHandle, n: usize, rtt: Duration) -> SeqNr {
  let mut seq = SeqNr(0);
  for _ in 0..n {
    s.ep.write(h, &[1; 100]).unwrap();
    let out = s.recv();
    assert_eq!(out.len(), 1);
    seq = out[0].0.seq_nr;
    s.advance(rtt);
    s.send(ack(seq, 1 << 20), &[]);
    s.recv();
  }
  seq
}
/// A limit set late (the application called `setTimeout` when the hole was already 20 s old) gets
/// its notice at once and as long again to act on it, however long the silence already was
#[test]
fn a_hole_noticed_late_gets_the_limit_after_the_notice() {
  let mut s = Script::new(Config::default());
  let (h, _) = accept(&mut s);
  let seq = round_trips(&mut s, h, 1, ms(50));
  s.ep.set_timeout(h, None);
  s.send(data(102, seq), &[7; 1000]);
  let (_, closed) = timeline(&mut s, Duration::from_secs(20), |_| {});
  assert_eq!(closed, None, "no limit, no deadline");
  assert_eq!(silence_notices(&s), 0);
  s.ep.set_timeout(h, Some(ms(5000)));
  let (_, closed) = timeline(&mut s, Duration::from_secs(60), |_| {});
  assert_eq!(silence_notices(&s), 1);
  let (at, reason) = closed.expect("closed");
  assert_eq!(reason, CloseReason::TimedOut);
  assert!(
    (5_000..=5_100).contains(&at),
    "closed {at} ms after the limit was set"
  );
}
/// A peer that keeps sending while the hole stays open (its retransmissions of the hole lost on
/// the way, say) is alive: any packet of it counts, and nothing is declared dead
#[test]
fn a_peer_heard_while_the_hole_stays_open_is_alive() {
  let mut s = Script::new(Config::default());
  let (h, _) = accept(&mut s);
  let seq = round_trips(&mut s, h, 1, ms(50));
  s.send(data(102, seq), &[7; 1000]);
  let mut steps = 0;
  let (_, closed) = timeline(&mut s, Duration::from_secs(120), |s| {
    steps += 1;
    if steps % 40 == 0 {
      // Every 2 s: another packet after the hole
      s.send(data(103 + steps / 40, seq), &[8; 100]);
    }
  });
  assert_eq!(closed, None);
  assert_eq!(silence_notices(&s), 0);
}
