#!/usr/bin/env python3
"""Capture uTP (BEP 29) datagrams exchanged by real implementations, for codec fixtures.

A UDP relay on 127.0.0.1 sits between two uTP endpoints: the connecting side sends to the relay's
front port, the relay forwards to the accepting side from its back port and forwards the answers
back. Every datagram is logged in both directions as hex with its direction, its phase of the
scenario and a decoded summary. The relay can drop a chosen datagram (to make the receiver send
selective ACKs) and inject copies of earlier ones (to provoke RESETs after a close).

Scenarios (each on loopback only, bounded in time, cleaning up its temporary files):

  lt      two libtorrent-rasterbar sessions (a seed and a downloader of a small torrent), uTP only:
          TCP, DHT, LSD, UPnP, NAT-PMP and encryption off. Phases: connect (the downloader wants no
          piece yet), idle (keepalives), download (one seed DATA dropped, and its first
          retransmission too, so the downloader's selective ACK grows over several bytes), close
          (the downloader removes the torrent: FIN with a close reason), stale (replayed packets
          right behind each FIN and later: libtorrent 2.1.1 answered none of them with a RESET).
  libutp  a libutp client and server (npm utp-native, through capture-libutp.mjs). Phases:
          transfer both ways (one DATA dropped), idle past libutp's 29 s keepalive, close (FIN both
          ways), stale (replayed packets to closed connections: RESET).
  cross   a libutp client connecting to a libtorrent seed, once with a BitTorrent handshake for an
          unknown info-hash (libtorrent closes at once, FIN with a close reason), once with the
          right one.

Output: one log per scenario in --out (default: a temporary directory, printed at the end):
lt-lt.log, libutp-libutp.log, libutp-lt.log. On stdout, per scenario: datagram sizes, window
sizes and extensions seen per side, then the first datagram of each kind (fixture candidates; hex
cut short past 64 bytes, full in the log). crates/utp-proto/src/packet/fixtures.rs holds datagrams
picked from these logs, its comments giving the log and the `#` number of each.

Usage: python3 test/libtorrent/capture.py [--scenario lt|libutp|cross|all] [--out DIR]
                                          [--lt-idle S] [--libutp-idle S]
Takes about 80 s for all three (the libutp idle phase alone is 31 s).
"""

import argparse
import json
import os
import random
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# ------------------------------------------------------------------------------------------------
# Decoding (independent of the Rust codec: this is what the fixtures are checked against)
# ------------------------------------------------------------------------------------------------

TYPE_NAMES = {0: "DATA", 1: "FIN", 2: "STATE", 3: "RESET", 4: "SYN"}
EXT_NAMES = {1: "sack", 2: "ext-bits", 3: "close-reason"}


def decode(buf):
    """Parse a datagram as uTP v1. Returns a dict; 'error' is set when it is not well-formed."""
    d = {"len": len(buf), "error": None, "exts": []}
    if len(buf) < 20:
        d["error"] = "short"
        return d
    d["type"] = buf[0] >> 4
    d["ver"] = buf[0] & 0x0F
    d["conn_id"] = int.from_bytes(buf[2:4], "big")
    d["ts"] = int.from_bytes(buf[4:8], "big")
    d["ts_diff"] = int.from_bytes(buf[8:12], "big")
    d["wnd"] = int.from_bytes(buf[12:16], "big")
    d["seq"] = int.from_bytes(buf[16:18], "big")
    d["ack"] = int.from_bytes(buf[18:20], "big")
    # Walk the extension chain: each is (next type, length, body)
    nxt, at = buf[1], 20
    while nxt != 0:
        if at + 2 > len(buf) or at + 2 + buf[at + 1] > len(buf):
            d["error"] = "truncated extension"
            return d
        ext_len = buf[at + 1]
        d["exts"].append((nxt, bytes(buf[at + 2 : at + 2 + ext_len])))
        nxt, at = buf[at], at + 2 + ext_len
    d["payload_at"] = at
    d["payload_len"] = len(buf) - at
    return d


def sack_acked(ack, mask):
    """Sequence numbers a selective ACK mask acknowledges: bit i of byte i/8 is ack + 2 + i."""
    return [(ack + 2 + i) & 0xFFFF for i in range(len(mask) * 8) if mask[i // 8] >> (i % 8) & 1]


def summary(d):
    """One-line human summary of a decoded datagram."""
    if d["error"] == "short":
        return "not uTP (%d bytes)" % d["len"]
    parts = [
        TYPE_NAMES.get(d["type"], "type%d" % d["type"]),
        "v%d" % d["ver"],
        "conn=%d" % d["conn_id"],
        "seq=%d" % d["seq"],
        "ack=%d" % d["ack"],
        "wnd=%d" % d["wnd"],
        "ts=%d" % d["ts"],
        "tsdiff=%d" % d["ts_diff"],
    ]
    for ty, body in d["exts"]:
        name = EXT_NAMES.get(ty, "ext%d" % ty)
        desc = "%s[%d]=%s" % (name, len(body), body.hex())
        if ty == 1:
            desc += " acks %s" % sack_acked(d["ack"], body)
        parts.append(desc)
    if d["error"]:
        parts.append("ERROR " + d["error"])
    else:
        parts.append("payload=%d" % d["payload_len"])
    return " ".join(parts)


# ------------------------------------------------------------------------------------------------
# The relay
# ------------------------------------------------------------------------------------------------


class Entry:
    """One logged datagram."""

    def __init__(self, idx, t, direction, phase, data, action):
        self.idx = idx
        self.t = t
        self.direction = direction  # e.g. "dl>seed"; "inject>seed" for replays
        self.phase = phase
        self.data = data
        self.action = action  # "fwd", "DROPPED" or "INJECTED"
        self.d = decode(data)

    def line(self):
        return "#%04d +%9.3fs %-12s %-9s %-8s len=%4d %s\n    hex %s\n" % (
            self.idx,
            self.t,
            self.direction,
            self.phase,
            self.action,
            len(self.data),
            summary(self.d),
            self.data.hex(),
        )


class Relay:
    """UDP man-in-the-middle between a connecting side (the client) and an accepting side.

    The client sends to `port` (the front socket); datagrams are forwarded to `target` from the
    back socket; the target's answers go back to the client's last known address.
    `drop(entry_direction, decoded)` decides per datagram whether it is forwarded.
    """

    def __init__(self, target, client_name, server_name, logfile):
        self.target = target
        self.c2s = "%s>%s" % (client_name, server_name)
        self.s2c = "%s>%s" % (server_name, client_name)
        self.server_name, self.client_name = server_name, client_name
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.client = None
        self.phase = "start"
        self.drop = lambda direction, d: False
        # called in the relay thread with each forwarded Entry, right after forwarding it
        self.on_forward = None
        self.entries = []
        self.lock = threading.Lock()
        self.logfile = logfile
        self.t0 = time.monotonic()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def note(self, text):
        """Write a comment line into the log (phase changes, application events)."""
        with self.lock:
            self.logfile.write("== +%.3fs %s\n" % (time.monotonic() - self.t0, text))
            self.logfile.flush()

    def set_phase(self, phase):
        self.phase = phase
        self.note("phase " + phase)

    def _record(self, direction, data, action):
        with self.lock:
            e = Entry(len(self.entries), time.monotonic() - self.t0, direction, self.phase, data, action)
            self.entries.append(e)
            self.logfile.write(e.line())
            self.logfile.flush()
        return e

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.front, selectors.EVENT_READ, "front")
        sel.register(self.back, selectors.EVENT_READ, "back")
        while not self.stopping:
            for key, _ in sel.select(timeout=0.1):
                try:
                    data, addr = key.fileobj.recvfrom(65536)
                except OSError:
                    continue  # ICMP port unreachable from a peer that went away
                if key.data == "front":
                    self.client = addr
                    direction, out, dest = self.c2s, self.back, self.target
                else:
                    direction, out, dest = self.s2c, self.front, self.client
                if self.drop(direction, decode(data)):
                    self._record(direction, data, "DROPPED")
                    continue
                e = self._record(direction, data, "fwd")
                if dest is not None:
                    try:
                        out.sendto(data, dest)
                    except OSError:
                        pass
                if self.on_forward is not None:
                    self.on_forward(e)
        sel.close()

    def inject(self, to_server, data):
        """Send `data` to one side as though the other side had sent it."""
        if to_server:
            self._record("inject>" + self.server_name, data, "INJECTED")
            self.back.sendto(data, self.target)
        elif self.client is not None:
            self._record("inject>" + self.client_name, data, "INJECTED")
            self.front.sendto(data, self.client)

    def last(self, direction, pred=lambda e: True):
        """Latest forwarded entry in `direction` matching `pred`."""
        with self.lock:
            for e in reversed(self.entries):
                if e.direction == direction and e.action == "fwd" and pred(e):
                    return e
        return None

    def seen(self, pred):
        with self.lock:
            return any(pred(e) for e in self.entries)

    def close(self):
        self.stopping = True
        self.thread.join()
        self.front.close()
        self.back.close()


def wait_for(cond, timeout, step=0.05):
    """Poll `cond` until it holds or `timeout` seconds pass; returns whether it held."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


class DropNth:
    """Drop policy: once armed, drop the n-th DATA datagram in `direction` carrying at least
    `min_payload` bytes, and then `times - 1` retransmissions of it (times=1: the first
    retransmission goes through; times=2: the gap lasts until a timeout, so the receiver's
    selective ACK grows longer)."""

    def __init__(self, direction, n, min_payload, times=1):
        self.direction, self.n, self.min_payload, self.times = direction, n, min_payload, times
        self.armed = False
        self.count = 0
        self.dropped = None  # seq_nr of the dropped DATA
        self.drops = 0

    def __call__(self, direction, d):
        if not self.armed or direction != self.direction:
            return False
        if d["error"] or d["type"] != 0:
            return False
        if self.dropped is not None:
            # a retransmission of the dropped packet
            if d["seq"] == self.dropped and self.drops < self.times:
                self.drops += 1
                return True
            return False
        if d["payload_len"] < self.min_payload:
            return False
        self.count += 1
        if self.count == self.n:
            self.dropped = d["seq"]
            self.drops = 1
            return True
        return False


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 (libtorrent listens on both)."""
    for _ in range(50):
        port = random.randint(20000, 60000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, socket.socket(
                socket.AF_INET, socket.SOCK_DGRAM
            ) as u:
                t.bind(("127.0.0.1", port))
                u.bind(("127.0.0.1", port))
                return port
        except OSError:
            continue
    raise RuntimeError("no free port")


# ------------------------------------------------------------------------------------------------
# Scenario: libtorrent seed <-> libtorrent downloader
# ------------------------------------------------------------------------------------------------


def lt_session(lt, port):
    """A libtorrent session that speaks uTP only, on 127.0.0.1, with every discovery off."""
    settings = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_outgoing_tcp": False,
        "enable_incoming_tcp": False,
        "enable_outgoing_utp": True,
        "enable_incoming_utp": True,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.disabled),
        # both sessions are on 127.0.0.1: don't treat that as a duplicate peer
        "allow_multiple_connections_per_ip": True,
        # keep the connection once both sides are seeds: we close it ourselves
        "close_redundant_connections": False,
        # BitTorrent keepalives go out after peer_timeout / 2 seconds of silence
        "peer_timeout": 20,
        "alert_mask": int(lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification),
    }
    return lt.session(settings)


def drain_alerts(ses, relay, who):
    """Copy libtorrent's peer alerts (disconnect reasons) into the log."""
    for a in ses.pop_alerts():
        relay.note("%s alert %s: %s" % (who, type(a).__name__, a.message()))


def import_libtorrent():
    import warnings

    import libtorrent as lt

    # file_storage + create_torrent(fs) still work in 2.1 but warn
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    return lt


def make_seed(lt, work):
    """A 256 KiB file in 16 KiB pieces (enough DATA for the congestion window to open) and a
    session seeding it. Returns (torrent_info, seed session, seed uTP port)."""
    seed_dir = os.path.join(work, "seed")
    os.makedirs(seed_dir)
    with open(os.path.join(seed_dir, "blob.bin"), "wb") as f:
        f.write(random.Random(29).randbytes(256 * 1024))
    fs = lt.file_storage()
    lt.add_files(fs, os.path.join(seed_dir, "blob.bin"))
    ct = lt.create_torrent(fs, 16 * 1024)
    lt.set_piece_hashes(ct, seed_dir)
    info = lt.torrent_info(lt.bencode(ct.generate()))
    seed_port = free_port()
    seed = lt_session(lt, seed_port)
    atp = lt.add_torrent_params()
    atp.ti, atp.save_path = info, seed_dir
    seed_h = seed.add_torrent(atp)
    if not wait_for(lambda: seed_h.status().is_seeding, 20):
        raise RuntimeError("seed never became a seed")
    return info, seed, seed_port


def scenario_lt(out_dir, idle_s):
    lt = import_libtorrent()
    work = tempfile.mkdtemp(prefix="utp-capture-lt-")
    log = open(os.path.join(out_dir, "lt-lt.log"), "w")
    log.write("# libtorrent-rasterbar %s <-> itself, uTP only, relay on 127.0.0.1\n" % lt.__version__)
    relay = None
    try:
        info, seed, seed_port = make_seed(lt, work)
        dl_dir = os.path.join(work, "dl")
        os.makedirs(dl_dir)
        dl_port = free_port()
        dl = lt_session(lt, dl_port)

        relay = Relay(("127.0.0.1", seed_port), "dl", "seed", log)
        relay.note("seed uTP port %d, downloader uTP port %d, relay front %d" % (seed_port, dl_port, relay.port))
        # Drop a DATA and its first retransmission: the hole lasts until the seed's timeout, and
        # the downloader's selective ACK grows from 1 byte to 2 and 3 meanwhile
        drop = DropNth(relay.s2c, 6, 1000, times=2)
        relay.drop = drop

        # Connect while the downloader wants nothing: the connection then stays idle
        relay.set_phase("connect")
        atp = lt.add_torrent_params()
        atp.ti, atp.save_path, atp.file_priorities = info, dl_dir, [0]
        dl_h = dl.add_torrent(atp)
        dl_h.connect_peer(("127.0.0.1", relay.port))
        if not wait_for(lambda: dl_h.status().num_peers >= 1, 10):
            raise RuntimeError("downloader never connected")
        time.sleep(2)

        relay.set_phase("idle")
        end = time.monotonic() + idle_s
        while time.monotonic() < end:
            drain_alerts(seed, relay, "seed")
            drain_alerts(dl, relay, "dl")
            time.sleep(0.5)

        # Download with one full-size DATA from the seed dropped: the downloader SACKs
        relay.set_phase("download")
        drop.armed = True
        dl_h.prioritize_files([4])
        if not wait_for(lambda: dl_h.status().is_seeding, 60):
            raise RuntimeError("download did not finish")
        relay.note("download complete; dropped seq_nr %s" % drop.dropped)
        time.sleep(2)

        # Close from the downloader's side, then replay packets at both sockets while they linger:
        # right after each FIN goes through (from the relay thread), then a few times later
        relay.set_phase("close")
        last_to_dl = relay.last(relay.s2c)
        last_to_seed = relay.last(relay.c2s)

        def replay_after_fin(e):
            # A FIN went through: right behind it, hand its recipient a stale copy of an earlier
            # packet of the same connection
            if e.d.get("type") != 1:
                return
            if e.direction == relay.c2s:
                relay.inject(True, last_to_seed.data)
            else:
                relay.inject(False, last_to_dl.data)

        relay.on_forward = replay_after_fin
        dl.remove_torrent(dl_h)
        wait_for(lambda: relay.seen(lambda e: e.d.get("type") == 1), 5)
        time.sleep(0.05)
        relay.set_phase("stale")
        for delay in (0.0, 0.5, 2.0):
            time.sleep(delay)
            relay.inject(False, last_to_dl.data)
            relay.inject(True, last_to_seed.data)
        time.sleep(1)
        drain_alerts(seed, relay, "seed")
        drain_alerts(dl, relay, "dl")
        relay.set_phase("end")
        del seed, dl
    finally:
        if relay is not None:
            relay.close()
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    return relay.entries


# ------------------------------------------------------------------------------------------------
# Scenario: libutp client <-> libutp server (utp-native)
# ------------------------------------------------------------------------------------------------


def scenario_libutp(out_dir, idle_s):
    log = open(os.path.join(out_dir, "libutp-libutp.log"), "w")
    version = "?"
    try:
        with open(os.path.join(ROOT, "node_modules", "utp-native", "package.json")) as f:
            version = json.load(f)["version"]
    except OSError:
        pass
    log.write("# libutp (npm utp-native %s) client <-> server, relay on 127.0.0.1\n" % version)
    node = subprocess.Popen(
        ["node", os.path.join(HERE, "capture-libutp.mjs")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    relay = None

    def expect(word, timeout):
        # Read node's lines until one starts with `word` (bounded by a timer that kills node)
        timer = threading.Timer(timeout, node.kill)
        timer.start()
        try:
            for line in node.stdout:
                line = line.strip()
                if relay is not None:
                    relay.note("node: " + line)
                if line.startswith(word):
                    return line
            raise RuntimeError("node exited before " + word)
        finally:
            timer.cancel()

    try:
        server_port = int(expect("LISTEN", 10).split()[1])
        relay = Relay(("127.0.0.1", server_port), "cli", "srv", log)
        drop = DropNth(relay.c2s, 10, 1000)
        drop.armed = True
        relay.drop = drop
        relay.set_phase("transfer")
        node.stdin.write("CONNECT %d %d\n" % (relay.port, int(idle_s * 1000)))
        node.stdin.flush()
        expect("IDLE", 30)
        relay.note("dropped seq_nr %s" % drop.dropped)
        relay.set_phase("idle")
        expect("CLOSING", idle_s + 10)
        relay.set_phase("close")
        expect("CLOSED", 30)
        # Replay the last DATA of each direction at the closed connections
        relay.set_phase("stale")
        is_data = lambda e: e.d.get("type") == 0
        relay.inject(True, relay.last(relay.c2s, is_data).data)
        relay.inject(False, relay.last(relay.s2c, is_data).data)
        time.sleep(1)
        relay.set_phase("end")
        node.stdin.write("EXIT\n")
        node.stdin.flush()
        expect("BYE", 10)
    finally:
        if node.poll() is None:
            try:
                node.wait(5)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
        if relay is not None:
            relay.close()
        log.close()
    return relay.entries


# ------------------------------------------------------------------------------------------------
# Scenario: libutp client -> libtorrent seed
# ------------------------------------------------------------------------------------------------


def scenario_cross(out_dir):
    """A libutp client connects to a libtorrent seed twice: once with a BitTorrent handshake for
    an info-hash the seed does not have (libtorrent closes at once, with a close reason), once with
    the right one (libtorrent answers; then the client closes)."""
    lt = import_libtorrent()
    work = tempfile.mkdtemp(prefix="utp-capture-cross-")
    log = open(os.path.join(out_dir, "libutp-lt.log"), "w")
    log.write("# libutp (npm utp-native) client -> libtorrent-rasterbar %s seed\n" % lt.__version__)
    relay = None
    try:
        info, seed, seed_port = make_seed(lt, work)
        relay = Relay(("127.0.0.1", seed_port), "libutp", "lt", log)
        for phase, info_hash in (("badhash", b"\x11" * 20), ("goodhash", info.info_hash().to_bytes())):
            relay.set_phase(phase)
            # BitTorrent handshake: pstrlen, pstr, 8 reserved bytes, info-hash, peer id
            hs = b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-UC0001-capture-0000"
            out = subprocess.run(
                ["node", os.path.join(HERE, "capture-libutp.mjs"), "client", str(relay.port), hs.hex(), "4000"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=30,
            )
            for line in out.stdout.splitlines():
                relay.note("node: " + line)
            time.sleep(1)
            drain_alerts(seed, relay, "lt")
        relay.set_phase("end")
        del seed
    finally:
        if relay is not None:
            relay.close()
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    return relay.entries


# ------------------------------------------------------------------------------------------------
# Picking fixtures
# ------------------------------------------------------------------------------------------------


def pick(entries):
    """The first datagram of each kind worth a fixture, as (name, entry)."""
    picks = []
    seen = set()

    def take(name, e):
        if name not in seen:
            seen.add(name)
            picks.append((name, e))

    last_ack = {}  # direction -> ack_nr of its previous STATE
    for e in entries:
        d = e.d
        if d["error"] or e.action == "INJECTED":
            continue
        ty, sacks = d["type"], [b for t, b in d["exts"] if t == 1]
        other = [t for t, _ in d["exts"] if t != 1]
        side = e.direction.split(">")[0]
        if ty == 4:
            take("syn " + side, e)
        elif ty == 2 and e.phase in ("connect", "transfer") and not sacks:
            take("first STATE (SYN-ACK if from the accepting side) " + side, e)
        if ty == 0:
            if d["payload_len"] > 0 and d["payload_len"] < 100:
                take("small DATA " + side, e)
            if len(e.data) >= 1400:
                take("full DATA %d bytes %s" % (len(e.data), side), e)
        if sacks:
            take("%s with %d-byte SACK %s" % (TYPE_NAMES[ty], len(sacks[0]), side), e)
        for t in other:
            take("%s with ext %d %s" % (TYPE_NAMES[ty], t, side), e)
        if ty == 1:
            take("FIN " + side, e)
        if ty == 3:
            take("RESET " + side, e)
        if ty == 2 and e.phase == "idle":
            if last_ack.get(e.direction) == (d["ack"] + 1) & 0xFFFF:
                take("keepalive STATE (ack_nr - 1) " + side, e)
            else:
                take("idle STATE " + side, e)
        if ty == 0 and e.phase == "idle" and d["payload_len"] == 4:
            take("idle DATA of 4 bytes (BitTorrent keepalive?) " + side, e)
        if ty == 2:
            last_ack[e.direction] = d["ack"]
    # RESETs are answers to injected packets: look at everything
    for e in entries:
        if not e.d["error"] and e.d["type"] == 3:
            take("RESET " + e.direction.split(">")[0], e)
    return picks


def report(title, entries):
    print("=" * 100)
    print(title)
    sizes, wnds, exts = {}, {}, set()
    for e in entries:
        if e.d["error"]:
            continue
        side = e.direction.split(">")[0]
        sizes.setdefault(side, set()).add(len(e.data))
        wnds.setdefault(side, set()).add(e.d["wnd"])
        for t, b in e.d["exts"]:
            exts.add((side, TYPE_NAMES[e.d["type"]], t, len(b)))
    for side in sorted(sizes):
        print("  %s datagram sizes: %s" % (side, sorted(sizes[side])))
        print("  %s wnd_size values: %s" % (side, sorted(wnds[side])[:20]))
    for side, ty, t, n in sorted(exts):
        print("  %s %s: extension %d of %d bytes" % (side, ty, t, n))
    for name, e in pick(entries):
        print("-- %s: #%04d %s %s %s" % (name, e.idx, e.direction, e.phase, summary(e.d)))
        hexed = e.data.hex()
        print("   %s" % (hexed if len(e.data) <= 64 else hexed[:128] + "... (%d bytes, full hex in the log)" % len(e.data)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=["lt", "libutp", "cross", "all"], default="all")
    ap.add_argument("--out", help="directory for the logs (default: a new temporary directory)")
    ap.add_argument("--lt-idle", type=float, default=25.0, help="idle seconds in the libtorrent scenario")
    ap.add_argument("--libutp-idle", type=float, default=31.0, help="idle seconds (libutp keepalive: 29 s)")
    args = ap.parse_args()
    out_dir = args.out or tempfile.mkdtemp(prefix="utp-capture-")
    os.makedirs(out_dir, exist_ok=True)
    if args.scenario in ("lt", "all"):
        report("libtorrent <-> libtorrent", scenario_lt(out_dir, args.lt_idle))
    if args.scenario in ("libutp", "all"):
        report("libutp <-> libutp", scenario_libutp(out_dir, args.libutp_idle))
    if args.scenario in ("cross", "all"):
        report("libutp client -> libtorrent seed", scenario_cross(out_dir))
    print("logs in %s" % out_dir, file=sys.stderr)


if __name__ == "__main__":
    main()
