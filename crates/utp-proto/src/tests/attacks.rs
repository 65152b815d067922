//! Forged traffic (issue 12): half-open connections from SYNs with any source address, blind
//! RESETs, and packets that would tell a scanner which connection ids are live

use std::net::SocketAddr;
use std::time::Duration;

use super::scripted::{accept, confirm, data, syn, Script};
use super::sim::{payload, Sim};
use crate::packet::{Header, PacketType};
use crate::seq::SeqNr;
use crate::{CloseReason, Config, Endpoint, Event, Instant};

fn ms(n: u64) -> Duration {
  Duration::from_millis(n)
}

// -------------------------------------------------------------------------------------------------
// Half-open connections

#[test]
fn an_unconfirmed_connection_sends_only_syn_acks_and_is_forgotten_quietly() {
  let mut s = Script::new(Config::default());
  s.send(syn(0x7000, 100), &[]);
  let out = s.recv();
  assert_eq!(out.len(), 1, "one SYN-ACK");
  assert!(s.events.is_empty(), "not announced");
  assert_eq!(s.ep.stats().unconfirmed_connections, 1);
  assert_eq!(
    s.ep.stats().server_connections,
    0,
    "not counted against max_connections"
  );
  assert!(s.ep.open_connections().is_empty());
  // No keepalives, no retransmissions: silence, whatever time passes
  for _ in 0..4 {
    s.advance(ms(1000));
    assert!(s.recv().is_empty());
  }
  // A repeated SYN gets one SYN-ACK, the same one
  s.send(syn(0x7000, 100), &[]);
  let again = s.recv();
  assert_eq!(again.len(), 1);
  assert_eq!(again[0].0.seq_nr, out[0].0.seq_nr);
  // ...and a full handshake timeout from then
  s.advance(ms(4900));
  assert_eq!(s.ep.stats().unconfirmed_connections, 1);
  s.advance(ms(200));
  assert!(s.recv().is_empty());
  assert!(s.events.is_empty(), "forgotten without a word");
  let st = s.ep.stats();
  assert_eq!((st.unconfirmed_connections, st.handshakes_expired), (0, 1));
  assert_eq!(s.ep.connection_count(), 0);
}

#[test]
fn a_confirmation_announces_the_connection_before_its_data() {
  let mut s = Script::new(Config::default());
  s.send(syn(0x7000, 100), &[]);
  let syn_ack = s.recv()[0].0.seq_nr;
  // The initiator's first DATA confirms and carries bytes: Incoming comes first
  s.send(data(101, syn_ack.sub(1)), b"hello");
  let out = s.recv();
  assert_eq!(out.len(), 1, "the DATA is acknowledged");
  assert_eq!(s.events.len(), 2);
  let h = s.events[0].0;
  assert_eq!(s.events[..], [(h, Event::Incoming), (h, Event::Readable)]);
  assert_eq!(s.ep.stats().server_connections, 1);
  assert_eq!(s.ep.stats().unconfirmed_connections, 0);
}

/// Bytes written to a connection before its handshake is confirmed (only through a handle the
/// application was never given: the endpoint announces none before) wait, and go once it is
#[test]
fn data_written_before_the_confirmation_waits_for_it() {
  let mut s = Script::new(Config::default());
  s.send(syn(0x7000, 100), &[]);
  let syn_ack = s.recv()[0].0.seq_nr;
  let h = crate::ConnectionHandle(1); // the endpoint's first handle
  assert_eq!(s.ep.write(h, b"early"), Ok(5));
  assert!(
    s.recv().is_empty(),
    "nothing but the SYN-ACK before the confirmation"
  );
  s.send(confirm(syn_ack), &[]);
  let out = s.recv();
  assert_eq!(out.len(), 1);
  assert_eq!((out[0].0.ty, out[0].0.seq_nr), (PacketType::Data, syn_ack));
  assert_eq!(out[0].2, b"early");
  assert_eq!(s.events[..], [(h, Event::Incoming)]);
}

#[test]
fn a_keepalive_confirms_but_a_wrong_ack_does_not() {
  let mut s = Script::new(Config::default());
  s.send(syn(0x7000, 100), &[]);
  let syn_ack = s.recv()[0].0.seq_nr;
  for wrong in [syn_ack, syn_ack.add(1000), syn_ack.sub(3)] {
    s.send(
      Header {
        ack_nr: wrong,
        ..confirm(syn_ack)
      },
      &[],
    );
    assert!(s.recv().is_empty() && s.events.is_empty(), "ack_nr {wrong:?}");
  }
  // libutp's keepalive form (one less than the SYN-ACK's ack): the confirming STATE was lost
  s.send(
    Header {
      ack_nr: syn_ack.sub(2),
      ..confirm(syn_ack)
    },
    &[],
  );
  let out = s.recv();
  assert!(matches!(s.events[..], [(_, Event::Incoming)]));
  assert_eq!(out.len(), 1, "the keepalive is answered");
}

#[test]
fn syns_past_the_unconfirmed_bounds_go_unanswered_and_leave_room_for_real_connections() {
  let cfg = Config {
    max_unconfirmed_per_ip: 3,
    max_unconfirmed: 5,
    max_connections: 1,
    ..Config::default()
  };
  let mut s = Script::with_peer(cfg, "192.0.2.7:1000");
  for i in 0..4u16 {
    s.peer = format!("192.0.2.7:{}", 1000 + i).parse().unwrap();
    s.send(syn(0x100 + 2 * i, 1), &[]);
    assert_eq!(s.recv().len(), usize::from(i < 3), "SYN {i} from one address");
  }
  for i in 0..3u16 {
    s.peer = format!("192.0.2.{}:1000", 20 + i).parse().unwrap();
    s.send(syn(0x200, 1), &[]);
    assert_eq!(
      s.recv().len(),
      usize::from(i < 2),
      "SYN {i} past the global bound"
    );
  }
  let st = s.ep.stats();
  assert_eq!(
    (st.unconfirmed_connections, st.syns_dropped, st.refused),
    (5, 2, 0)
  );
  // A real initiator still gets in: its SYN is answered once it is the only one (the others
  // expired), and its confirmation finds room, unconfirmed connections never taking any
  s.advance(ms(5100));
  assert_eq!(s.ep.stats().unconfirmed_connections, 0);
  s.peer = "198.51.100.1:6881".parse().unwrap();
  let (h, _) = accept(&mut s);
  assert!(s.ep.is_open(h));
  assert_eq!(s.ep.stats().server_connections, 1);
}

#[test]
fn loopback_sources_share_only_the_global_bound() {
  let cfg = Config {
    max_unconfirmed_per_ip: 2,
    max_unconfirmed: 4,
    ..Config::default()
  };
  let mut s = Script::with_peer(cfg, "127.0.0.1:1000");
  for i in 0..5u16 {
    s.peer = format!("127.0.0.1:{}", 1000 + i).parse().unwrap();
    s.send(syn(0x100, 1), &[]);
    assert_eq!(s.recv().len(), usize::from(i < 4), "SYN {i}");
  }
}

#[test]
fn an_unconfirmed_connection_reset_by_its_initiator_goes_without_an_event() {
  let mut s = Script::new(Config::default());
  s.send(syn(0x7000, 100), &[]);
  let syn_ack = s.recv()[0].0.seq_nr;
  s.send(
    Header {
      ty: PacketType::Reset,
      conn_id: 0x7001,
      ack_nr: syn_ack,
      ..syn(0, 0)
    },
    &[],
  );
  assert!(s.recv().is_empty() && s.events.is_empty());
  assert_eq!(s.ep.connection_count(), 0);
}

#[test]
fn stopping_listening_forgets_unconfirmed_connections_and_refuses_each_with_a_reset() {
  let mut s = Script::new(Config::default());
  s.send(syn(0x7000, 100), &[]);
  let syn_ack = s.recv()[0].0;
  s.advance(ms(20));
  s.ep.set_listening(false);
  assert_eq!(s.ep.connection_count(), 0);
  assert!(s.events.is_empty(), "the application never heard of it");
  s.advance(ms(7));
  // Its initiator has our SYN-ACK and counts itself connected: one RESET it will believe (its id,
  // acknowledging its SYN), stamped when it went out
  let out = s.recv();
  assert_eq!(out.len(), 1);
  let reset = out[0].0;
  assert_eq!(
    (reset.ty, reset.conn_id, reset.ack_nr, reset.seq_nr),
    (PacketType::Reset, syn_ack.conn_id, SeqNr(100), syn_ack.seq_nr)
  );
  assert_eq!(reset.timestamp, s.now.wire_timestamp());
  assert_eq!(s.ep.stats().resets_sent, 1);
  // Once
  s.advance(ms(1000));
  assert!(s.recv().is_empty());
}

#[test]
fn the_resets_of_a_stop_come_out_of_the_reset_budget() {
  // Forged SYNs fill the unconfirmed table as real ones do: a stop answers no more of them than
  // the budget allows, and what it could not send is not sent later
  let mut s = Script::new(Config {
    resets_per_second: 3,
    ..Config::default()
  });
  for i in 0..10u16 {
    s.send(syn(0x7000 + 2 * i, 100), &[]);
  }
  assert_eq!(s.recv().len(), 10);
  s.ep.set_listening(false);
  let out = s.recv();
  assert_eq!(out.len(), 3);
  assert!(out.iter().all(|(h, _, _)| h.ty == PacketType::Reset));
  assert_eq!(s.ep.stats().resets_sent, 3);
  s.advance(ms(2000));
  assert!(s.recv().is_empty());
}

/// A server that speaks first: our initiator confirms at once, so the server's data flows with
/// nothing sent by the initiator's application
#[test]
fn between_our_endpoints_the_responder_may_speak_first() {
  let mut sim = Sim::new(3, 2, Config::default());
  sim.nodes[1].ep.set_listening(true);
  let a = sim.connect(0, 1, vec![], false);
  assert!(sim.run_until(Duration::from_secs(5), |s| !s.nodes[1].accepted.is_empty()));
  let b = sim.nodes[1].accepted[0];
  let app = sim.app_mut(1, b);
  app.to_send = payload(5, 20_000);
  app.finish = true;
  assert!(sim.run_until(Duration::from_secs(10), |s| s.app(0, a).eof));
  assert_eq!(sim.app(0, a).received, payload(5, 20_000));
}

// -------------------------------------------------------------------------------------------------
// Blind RESETs

#[test]
fn a_reset_is_believed_only_for_what_we_sent() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s);
  s.ep.write(h, &[7; 3000]).unwrap();
  assert_eq!(s.recv().len(), 3); // first .. first + 2
  let reset = |ack: SeqNr| Header {
    ty: PacketType::Reset,
    conn_id: 0x7001,
    ack_nr: ack,
    ..syn(0, 0)
  };
  // Far from anything sent, either side of the window: ignored, unanswered
  for ack in [first.add(4), first.add(30_000), first.sub(18), first.sub(30_000)] {
    s.send(reset(ack), &[]);
    assert!(s.recv().is_empty(), "{ack:?}");
    assert!(s.ep.is_open(h), "{ack:?}");
  }
  // The next sequence number (what our STATEs carry) is something a peer may answer
  s.send(reset(first.add(3)), &[]);
  s.recv();
  assert!(s.events.contains(&(h, Event::Closed(CloseReason::Reset))));
}

/// What the references put in a RESET (libutp `send_rst` for a connection it forgot: our send id,
/// `ack_nr` the seq_nr of our packet; libtorrent `send_reset` from a closing socket: its send id,
/// which is our receive id, same `ack_nr`) still closes: answering our newest DATA, or the STATE
/// (keepalive) we sent after everything was acknowledged
#[test]
fn resets_as_libutp_and_libtorrent_build_them_still_close() {
  for (conn_id, idle) in [(0x7000, false), (0x7001, false), (0x7000, true), (0x7001, true)] {
    let mut s = Script::new(Config::default());
    let (h, first) = accept(&mut s);
    s.ep.write(h, &[7; 2000]).unwrap();
    let sent = s.recv();
    let mut answered = sent.last().unwrap().0.seq_nr;
    if idle {
      // Everything acknowledged; our next keepalive carries the next sequence number
      s.send(confirm(first.add(2)), &[]);
      s.advance(ms(1100));
      let ka = s.recv();
      assert_eq!(ka.len(), 1, "a keepalive");
      answered = ka[0].0.seq_nr;
    }
    s.send(
      Header {
        ty: PacketType::Reset,
        conn_id,
        timestamp: 0,
        wnd_size: 0,
        seq_nr: SeqNr(31337),
        ack_nr: answered,
        ..syn(0, 0)
      },
      &[],
    );
    s.recv();
    assert!(
      s.events.contains(&(h, Event::Closed(CloseReason::Reset))),
      "id {conn_id:#x}, idle {idle}"
    );
  }
}

#[test]
fn a_refusal_must_answer_our_syn() {
  let mut ep = Endpoint::new(Config::default(), 9);
  let peer: SocketAddr = "192.0.2.9:6881".parse().unwrap();
  let now = Instant::from_micros(1_000_000);
  let h = ep.connect(now, peer).unwrap();
  let mut buf = Vec::new();
  ep.poll_transmit(now, &mut buf).unwrap();
  let syn_hdr = crate::packet::decode(&buf).unwrap().header;
  let refuse = |ack: SeqNr| {
    let mut out = Vec::new();
    crate::packet::Packet {
      header: Header {
        ty: PacketType::Reset,
        conn_id: syn_hdr.conn_id,
        ack_nr: ack,
        ..syn(0, 0)
      },
      sack: None,
      ours: crate::packet::Ours::NONE,
      payload: &[],
    }
    .encode(&mut out);
    out
  };
  ep.handle_datagram(now, peer, &refuse(syn_hdr.seq_nr.add(100)));
  assert!(ep.is_open(h), "a guess is not a refusal");
  ep.handle_datagram(now, peer, &refuse(syn_hdr.seq_nr));
  assert_eq!(ep.poll_event(), Some((h, Event::Closed(CloseReason::Refused))));
}

// -------------------------------------------------------------------------------------------------
// No oracle: whether an id is live does not show

/// Unmatched packets are answered by source address alone: a scanner from its own address gets
/// a RESET for every id, live or not; from an address we talk to (the peer's, forged), every id
/// gets silence, and so does an out-of-window packet on the live id itself
#[test]
fn live_ids_answer_like_unknown_ones() {
  let mut s = Script::new(Config::default());
  let (h, first) = accept(&mut s); // receives on 0x7001 from PEER
  let probe = |conn_id: u16| Header {
    conn_id,
    ..data(5000, first.add(30_000))
  };
  // A scanner at its own address: RESET for the live id and for an unknown one alike
  s.peer = "203.0.113.5:4000".parse().unwrap();
  for id in [0x7001, 0x7002, 0x1234] {
    s.send(probe(id), b"x");
    let out = s.recv();
    assert_eq!(out.len(), 1, "id {id:#x}");
    assert_eq!(out[0].0.ty, PacketType::Reset);
  }
  // Forged from the peer's address (its port, or another): silence for every id, the live
  // one included (its ack_nr is out of window)
  for peer in ["192.0.2.7:6881", "192.0.2.7:7000"] {
    s.peer = peer.parse().unwrap();
    for id in [0x7001, 0x7002, 0x1234] {
      s.send(probe(id), b"x");
      assert!(s.recv().is_empty(), "{peer} id {id:#x}");
    }
  }
  assert!(s.ep.is_open(h));
  assert_eq!(s.ep.connection_stats(h).unwrap().bytes_received, 0);
}
