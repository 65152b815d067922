//! Scripted exchanges with one endpoint: we play the peer packet by packet and check every answer

use std::net::SocketAddr;
use std::time::Duration;

use crate::packet::{self, Header, Ours, Packet, PacketType};
use crate::seq::SeqNr;
use crate::{CloseReason, Config, ConnectionHandle, Endpoint, Event, Instant};

const PEER: &str = "192.0.2.7:6881";

/// One endpoint under test and the peer we impersonate
pub(super) struct Script {
  pub(super) ep: Endpoint,
  pub(super) now: Instant,
  pub(super) peer: SocketAddr,
  pub(super) events: Vec<(ConnectionHandle, Event)>,
}

impl Script {
  pub(super) fn new(cfg: Config) -> Self {
    Self::with_peer(cfg, PEER)
  }

  pub(super) fn with_peer(cfg: Config, peer: &str) -> Self {
    let mut ep = Endpoint::new(cfg, 42);
    ep.set_listening(true);
    Self {
      ep,
      now: Instant::from_micros(10_000_000),
      peer: peer.parse().unwrap(),
      events: Vec::new(),
    }
  }

  pub(super) fn advance(&mut self, d: Duration) {
    self.now = self.now + d;
    self.ep.handle_timeout(self.now);
  }

  pub(super) fn send(&mut self, header: Header, payload: &[u8]) {
    self.send_sack(header, None, payload);
  }

  fn send_sack(&mut self, header: Header, sack: Option<&[u8]>, payload: &[u8]) {
    self.send_with(header, sack, Ours::NONE, payload);
  }

  /// Any packet, our extensions included; a SACK of any length
  pub(super) fn send_with(&mut self, header: Header, sack: Option<&[u8]>, ours: Ours, payload: &[u8]) {
    let sack = sack.map(|b| packet::SelectiveAck::new(b).unwrap());
    let mut buf = Vec::new();
    Packet {
      header,
      sack,
      ours,
      payload,
    }
    .encode(&mut buf);
    self.ep.handle_datagram(self.now, self.peer, &buf);
  }

  /// Every datagram the endpoint sends now, as bytes
  pub(super) fn recv_raw(&mut self) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = self.ep.poll_transmit(self.now, &mut buf) {
      assert_eq!(t.destination, self.peer);
      out.push(buf[..t.size].to_vec());
    }
    while let Some(e) = self.ep.poll_event() {
      self.events.push(e);
    }
    out
  }

  /// Everything the endpoint sends now, decoded (header, sack bytes, payload)
  pub(super) fn recv(&mut self) -> Vec<(Header, Vec<u8>, Vec<u8>)> {
    self
      .recv_raw()
      .iter()
      .map(|d| {
        let p = packet::decode(d).unwrap();
        (
          p.header,
          p.sack.map(|s| s.bytes().to_vec()).unwrap_or_default(),
          p.payload.to_vec(),
        )
      })
      .collect()
  }
}

pub(super) fn syn(conn_id: u16, seq: u16) -> Header {
  Header {
    ty: PacketType::Syn,
    conn_id,
    timestamp: 1000,
    timestamp_diff: 0,
    wnd_size: 1 << 20,
    seq_nr: SeqNr(seq),
    ack_nr: SeqNr(0),
  }
}

/// Accept a connection from the scripted peer: returns (handle, the responder's first seq)
pub(super) fn accept(s: &mut Script) -> (ConnectionHandle, SeqNr) {
  s.send(syn(0x7000, 100), &[]);
  let out = s.recv();
  assert_eq!(out.len(), 1);
  let (h, _, _) = &out[0];
  assert_eq!(
    (h.ty, h.conn_id, h.ack_nr),
    (PacketType::State, 0x7000, SeqNr(100))
  );
  assert!(s.events.is_empty(), "announced only once the peer confirms");
  // The initiator's confirmation: a STATE acknowledging the SYN-ACK
  let seq = h.seq_nr;
  s.send(confirm(seq), &[]);
  assert!(s.recv().is_empty());
  let handle = s.events.iter().find(|(_, e)| *e == Event::Incoming).unwrap().0;
  (handle, seq)
}

/// The scripted initiator's STATE confirming a SYN-ACK whose sequence number is `syn_ack`
pub(super) fn confirm(syn_ack: SeqNr) -> Header {
  Header {
    ty: PacketType::State,
    conn_id: 0x7001,
    seq_nr: SeqNr(101),
    ack_nr: syn_ack.sub(1),
    ..syn(0, 0)
  }
}

pub(super) fn data(seq: u16, ack: SeqNr) -> Header {
  Header {
    ty: PacketType::Data,
    conn_id: 0x7001,
    seq_nr: SeqNr(seq),
    ack_nr: ack,
    ..syn(0, 0)
  }
}

#[test]
fn three_duplicate_acks_trigger_fast_retransmit() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.ep.write(h, &[9; 5000]).unwrap();
  let sent = s.recv();
  assert_eq!(sent.len(), 5, "initial window carries all 5 packets");
  assert_eq!(sent[0].0.seq_nr, first);
  // The peer got nothing of it (its ack_nr stays one before our first data) and says so three times
  let dup = Header {
    ty: PacketType::State,
    conn_id: 0x7001,
    seq_nr: SeqNr(101),
    ack_nr: first.sub(1),
    ..syn(0, 0)
  };
  for _ in 0..2 {
    s.send(dup, &[]);
    assert!(s.recv().is_empty());
  }
  s.send(dup, &[]);
  let out = s.recv();
  assert_eq!(out.len(), 1);
  assert_eq!((out[0].0.ty, out[0].0.seq_nr), (PacketType::Data, first));
  assert_eq!(s.ep.connection_stats(h).unwrap().retransmits, 1);
}

#[test]
fn sack_marks_holes_lost_and_resends_only_them() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.ep.write(h, &[1; 6000]).unwrap();
  assert_eq!(s.recv().len(), 6);
  // Peer has first+1 .. first+4 but not `first`: cumulative ack stays, SACK bits 0..3 (first+1..)
  // Wait: bit 0 is ack_nr + 2 = first + 1
  let st = Header {
    ty: PacketType::State,
    conn_id: 0x7001,
    seq_nr: SeqNr(101),
    ack_nr: first.sub(1),
    ..syn(0, 0)
  };
  s.send_sack(st, Some(&[0b1111, 0, 0, 0]), &[]);
  let out = s.recv();
  assert_eq!(
    out.iter().map(|p| p.0.seq_nr).collect::<Vec<_>>(),
    vec![first],
    "only the hole"
  );
}

#[test]
fn acks_for_unsent_data_are_ignored() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.ep.write(h, &[1; 1000]).unwrap();
  s.recv();
  let bogus = Header {
    ty: PacketType::State,
    conn_id: 0x7001,
    seq_nr: SeqNr(101),
    ack_nr: first.add(50),
    ..syn(0, 0)
  };
  s.send(bogus, &[]);
  assert_eq!(
    s.ep.connection_stats(h).unwrap().in_flight,
    1000,
    "nothing acknowledged"
  );
}

#[test]
fn zero_window_is_probed_and_reopens() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  // The peer advertises no room at all
  let closed = Header {
    ty: PacketType::State,
    conn_id: 0x7001,
    seq_nr: SeqNr(101),
    ack_nr: first.sub(1),
    wnd_size: 0,
    ..syn(0, 0)
  };
  s.send(closed, &[]);
  s.ep.write(h, &[3; 3000]).unwrap();
  assert!(s.recv().is_empty(), "closed window: nothing sent");
  s.advance(Duration::from_millis(1100));
  let probe = s.recv();
  assert_eq!(probe.len(), 1, "one probe packet after the persist timer");
  // The probe is acknowledged with an open window: the rest flows
  let open = Header {
    ack_nr: probe[0].0.seq_nr,
    wnd_size: 1 << 20,
    ..closed
  };
  s.send(open, &[]);
  assert_eq!(s.recv().len(), 2);
}

#[test]
fn fin_is_delivered_in_order_after_the_data_before_it() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  let ack = first.sub(1);
  s.send(
    Header {
      ty: PacketType::Fin,
      ..data(103, ack)
    },
    &[],
  );
  s.send(data(102, ack), b"b");
  s.recv();
  let mut buf = Vec::new();
  assert_eq!(
    (s.ep.read(h, &mut buf, 100).bytes, s.ep.read(h, &mut buf, 100).eof),
    (0, false),
    "101 is missing: nothing readable, no end"
  );
  s.send(data(101, ack), b"a");
  let acks = s.recv();
  assert_eq!(acks.last().unwrap().0.ack_nr, SeqNr(103), "FIN acknowledged");
  let r = s.ep.read(h, &mut buf, 100);
  assert_eq!((r.bytes, r.eof), (2, true));
  assert_eq!(buf, b"ab");
  // Data claiming to come after the FIN is ignored
  s.send(data(104, ack), b"zzz");
  let r = s.ep.read(h, &mut buf, 100);
  assert_eq!((r.bytes, r.eof), (0, true));
}

#[test]
fn keepalive_goes_out_when_idle_and_is_answered() {
  let cfg = Config {
    keepalive: Duration::from_millis(500),
    ..Config::default()
  };
  let mut s = Script::new(cfg);
  let (_, first) = accept(&mut s);
  s.advance(Duration::from_millis(600));
  let ka = s.recv();
  assert_eq!(ka.len(), 1);
  assert_eq!(
    (ka[0].0.ty, ka[0].0.ack_nr),
    (PacketType::State, SeqNr(99)),
    "libutp form: ack_nr - 1"
  );
  // The peer's keepalive (ack one before our last sent) gets an immediate answer
  let peer_ka = Header {
    ty: PacketType::State,
    conn_id: 0x7001,
    seq_nr: SeqNr(101),
    ack_nr: first.sub(2),
    ..syn(0, 0)
  };
  s.send(peer_ka, &[]);
  let answer = s.recv();
  assert_eq!(answer.len(), 1);
  assert_eq!(answer[0].0.ack_nr, SeqNr(100));
}

#[test]
fn reset_from_the_peer_closes_and_stray_packets_get_reset() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  // A blind RESET: its ack_nr is no sequence number we sent, so it is dropped unanswered
  let blind = Header {
    ty: PacketType::Reset,
    conn_id: 0x7001,
    ack_nr: first.add(1000),
    ..syn(0, 0)
  };
  s.send(blind, &[]);
  assert!(s.recv().is_empty());
  assert!(s.ep.is_open(h));
  // The peer's RESET acknowledges what it answers (libutp and libtorrent: that packet's seq_nr)
  let reset = Header {
    ack_nr: first,
    ..blind
  };
  s.send(reset, &[]);
  s.recv();
  assert!(s.events.contains(&(h, Event::Closed(CloseReason::Reset))));
  // Once the connection is forgotten, nothing talks to the peer's address any more: strays from
  // it are answered (while one does, they are not: see `handle_datagram`)
  s.advance(Duration::from_millis(1));
  // An unknown connection's data is answered with RESET, a RESET never is
  s.send(
    Header {
      conn_id: 0x1111,
      ..data(5, SeqNr(5))
    },
    b"x",
  );
  let out = s.recv();
  assert_eq!(out.len(), 1);
  assert_eq!(
    (out[0].0.ty, out[0].0.conn_id, out[0].0.ack_nr),
    (PacketType::Reset, 0x1111, SeqNr(5))
  );
  s.send(
    Header {
      conn_id: 0x1111,
      ..reset
    },
    &[],
  );
  assert!(s.recv().is_empty());
}

#[test]
fn resets_to_strangers_are_rate_limited() {
  let cfg = Config {
    resets_per_second: 10,
    ..Config::default()
  };
  let mut s = Script::new(cfg);
  for i in 0..100u16 {
    s.send(
      Header {
        conn_id: i,
        ..data(5, SeqNr(5))
      },
      b"x",
    );
  }
  assert_eq!(s.recv().len(), 10);
  s.advance(Duration::from_secs(1));
  s.send(
    Header {
      conn_id: 500,
      ..data(5, SeqNr(5))
    },
    b"x",
  );
  assert_eq!(s.recv().len(), 1);
}

#[test]
fn outgoing_connection_uses_recv_id_in_syn_and_recv_id_plus_one_after() {
  let mut s = Script::new(Config::default());
  let h = s.ep.connect(s.now, s.peer).unwrap();
  let out = s.recv();
  let syn_h = out[0].0;
  assert_eq!(syn_h.ty, PacketType::Syn);
  let recv_id = syn_h.conn_id;
  assert_eq!(s.ep.connection_id(h), Some(recv_id));
  // The SYN-ACK names the responder's first seq; our ack_nr becomes that minus one (libutp)
  let synack = Header {
    ty: PacketType::State,
    conn_id: recv_id,
    seq_nr: SeqNr(7000),
    ack_nr: syn_h.seq_nr,
    ..syn(0, 0)
  };
  s.send(synack, &[]);
  s.recv();
  assert!(s.events.contains(&(h, Event::Connected)));
  s.ep.write(h, b"hi").unwrap();
  let out = s.recv();
  assert_eq!(out[0].0.conn_id, recv_id.wrapping_add(1));
  assert_eq!(out[0].0.ack_nr, SeqNr(6999));
  assert_eq!(out[0].0.seq_nr, syn_h.seq_nr.add(1));
  assert_eq!(out[0].2, b"hi");
}

#[test]
fn a_syn_whose_id_equals_an_existing_key_still_opens_a_connection() {
  let mut s = Script::new(Config::default());
  // First connection: SYN id 0x7000, so we key it by 0x7001
  let (first, _) = accept(&mut s);
  // A second connection from the same peer whose SYN id is 0x7001 (keyed by 0x7002)
  s.send(syn(0x7001, 900), &[]);
  let out = s.recv();
  assert_eq!(out.len(), 1);
  assert_eq!(
    (out[0].0.ty, out[0].0.conn_id, out[0].0.ack_nr),
    (PacketType::State, 0x7001, SeqNr(900))
  );
  s.send(
    Header {
      conn_id: 0x7002,
      ..confirm(out[0].0.seq_nr)
    },
    &[],
  );
  s.recv();
  let incoming: Vec<_> = s
    .events
    .iter()
    .filter(|(_, e)| *e == Event::Incoming)
    .map(|(h, _)| *h)
    .collect();
  assert_eq!(incoming.len(), 2);
  assert_ne!(incoming[1], first);
}

/// An in-order DATA packet with no payload moves the ACK but has nothing to read: no Readable
/// event for it (an application woken for nothing reads zero bytes, which a stream takes for
/// the end)
#[test]
fn an_empty_data_packet_is_not_readable() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.events.clear();
  s.send(data(101, first.sub(1)), &[]);
  s.advance(Duration::from_millis(500));
  let acks = s.recv();
  assert!(
    acks.iter().any(|(hd, _, _)| hd.ack_nr == SeqNr(101)),
    "acknowledged: {acks:?}"
  );
  assert!(
    !s.events.iter().any(|(_, e)| *e == Event::Readable),
    "{:?}",
    s.events
  );
  s.send(data(102, first.sub(1)), b"x");
  s.recv();
  assert!(s.events.iter().any(|(c, e)| *c == h && *e == Event::Readable));
}

/// Spurious-timeout detection needs the peer's echo of our clock: an ACK after a timeout whose
/// `timestamp_diff` is 0 (the peer has no sample yet) proves nothing, so the window stays cut
#[test]
fn an_ack_without_a_delay_sample_does_not_undo_a_timeout() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.ep.write(h, &[9; 3000]).unwrap();
  assert_eq!(s.recv().len(), 3);
  // No ACK: the retransmission timer fires
  for _ in 0..30 {
    s.advance(Duration::from_millis(100));
    s.recv();
  }
  let st = s.ep.connection_stats(h).unwrap();
  assert!(st.timeouts >= 1, "{st:?}");
  let ack = Header {
    ty: PacketType::State,
    conn_id: 0x7001,
    seq_nr: SeqNr(101),
    ack_nr: first.add(2),
    timestamp: 1000,
    timestamp_diff: 0,
    ..syn(0, 0)
  };
  s.send(ack, &[]);
  s.recv();
  let st = s.ep.connection_stats(h).unwrap();
  assert_eq!(st.spurious_timeouts, 0, "{st:?}");
}
