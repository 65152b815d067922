#!/usr/bin/env python3
"""A libtorrent peer on loopback, speaking uTP only, driven by test/interop-libtorrent.test.ts.

  lt_peer.py seed --torrent T --save DIR        serve T's data (checked against T's piece hashes first)
  lt_peer.py download --torrent T --save DIR [--peer HOST:PORT]
                                                fetch T into the empty DIR from HOST:PORT
  --set NAME=VALUE (repeatable) overrides a libtorrent setting, e.g. --set download_rate_limit=500000

Output is one JSON object per line on stdout (stderr is for Python itself):
  {"event":"ready","libtorrent":...,"port":...,"infohash":...,"pieceLength":...,"pieces":[hex...]}
  {"event":"alert","type":...,"message":...}    every error, peer, connect and status alert
  {"event":"progress",...}                      twice a second while downloading
  {"event":"finished",...}                      download complete: sha256 of the file, counters
  {"event":"status","id":...,...}               the answer to a status command
Commands, one JSON object per line on stdin:
  {"cmd":"status","id":N}   torrent status, peers, uTP counters, UDP drops
  {"cmd":"connect","host":H,"port":P}
  {"cmd":"pause"}           disconnect every peer (libtorrent closes its end of the connections)
  {"cmd":"remove"}          remove the torrent (closes its connections too)
  {"cmd":"quit"}
The process ends on "quit", on stdin closing and on SIGTERM.
"""

import argparse
import hashlib
import json
import os
import queue
import signal
import sys
import threading
import time

import libtorrent as lt


def emit(obj):
  sys.stdout.write(json.dumps(obj) + '\n')
  sys.stdout.flush()


def session_settings(overrides):
  settings = {
    # Loopback only, uTP only: every byte the tests see went through the uTP stack under test
    'listen_interfaces': '127.0.0.1:0',
    'enable_outgoing_tcp': False,
    'enable_incoming_tcp': False,
    'enable_outgoing_utp': True,
    'enable_incoming_utp': True,
    'enable_dht': False,
    'enable_lsd': False,
    'enable_upnp': False,
    'enable_natpmp': False,
    'dht_bootstrap_nodes': '',
    # Plain BitTorrent handshakes: the test peer does not implement message stream encryption
    'out_enc_policy': int(lt.enc_policy.pe_disabled),
    'in_enc_policy': int(lt.enc_policy.pe_disabled),
    # Every test peer is 127.0.0.1
    'allow_multiple_connections_per_ip': True,
    # Connect to the test peer at once, not on the next tick of a rate-limited connect loop
    'smooth_connects': False,
    'connection_speed': 200,
    'alert_mask': int(lt.alert.category_t.error_notification
                      | lt.alert.category_t.peer_notification
                      | lt.alert.category_t.status_notification
                      | lt.alert.category_t.connect_notification
                      | lt.alert.category_t.storage_notification
                      | lt.alert.category_t.performance_warning),
    'alert_queue_size': 100000,
  }
  for item in overrides:
    name, value = item.split('=', 1)
    if value in ('true', 'false'):
      settings[name] = value == 'true'
    else:
      try:
        settings[name] = int(value)
      except ValueError:
        settings[name] = value
  return settings


def rcvbuf_errors():
  """The kernel's count of UDP datagrams dropped for a full socket receive buffer (all sockets)"""
  try:
    with open('/proc/net/snmp') as f:
      lines = [line.split() for line in f if line.startswith('Udp:')]
    return int(lines[1][lines[0].index('RcvbufErrors')])
  except (OSError, ValueError, IndexError):
    return None


def udp_socket_drops(port):
  """Datagrams the kernel dropped on the UDP socket bound to 127.0.0.1:port (the 'drops' column)"""
  local = '0100007F:%04X' % port
  try:
    with open('/proc/net/udp') as f:
      for line in f:
        fields = line.split()
        if len(fields) > 12 and fields[1] == local:
          return int(fields[-1])
  except OSError:
    pass
  return None


def torrent_status(handle):
  s = handle.status()
  return {
    'state': str(s.state),
    'paused': s.paused,
    'isSeeding': s.is_seeding,
    'progress': s.progress,
    'numPieces': s.num_pieces,
    'numPeers': s.num_peers,
    'totalDownload': s.total_download,
    'totalPayloadDownload': s.total_payload_download,
    'totalUpload': s.total_upload,
    'totalPayloadUpload': s.total_payload_upload,
    'totalFailedBytes': s.total_failed_bytes,
    'totalRedundantBytes': s.total_redundant_bytes,
    'downloadRate': s.download_payload_rate,
    'uploadRate': s.upload_payload_rate,
  }


def peer_status(p):
  return {
    'endpoint': '%s:%d' % (p.ip[0], p.ip[1]),
    'client': p.client.decode('utf-8', 'replace') if isinstance(p.client, bytes) else p.client,
    'flags': int(p.flags),
    'connectionType': int(p.connection_type),
    'totalDownload': p.total_download,
    'totalUpload': p.total_upload,
    'downloadQueue': p.download_queue_length,
    'uploadQueue': p.upload_queue_length,
    'requestTimeout': p.request_timeout,
    'numHashfails': p.num_hashfails,
    'rttMs': p.rtt,
    'sendBuffer': p.used_send_buffer,
    'receiveBuffer': p.used_receive_buffer,
    'remoteChoked': bool(p.flags & lt.peer_info.remote_choked),
    'choked': bool(p.flags & lt.peer_info.choked),
    'interesting': bool(p.flags & lt.peer_info.interesting),
    'remoteInterested': bool(p.flags & lt.peer_info.remote_interested),
  }


def describe_alert(a):
  out = {'event': 'alert', 'type': a.what(), 'message': a.message()}
  if isinstance(a, (lt.peer_disconnected_alert, lt.peer_error_alert)):
    out['op'] = lt.operation_name(a.op)
    out['error'] = a.error.message()
    out['errorCode'] = a.error.value()
    out['errorCategory'] = a.error.category().name()
  if isinstance(a, lt.peer_disconnected_alert):
    out['reason'] = str(a.reason)
  return out


class Peer:
  def __init__(self, args):
    self.args = args
    self.commands = queue.Queue()
    self.stopping = False
    self.hash_failures = 0
    # status commands waiting for the session counters (a session_stats_alert)
    self.pending_status = []
    self.counters = {}
    self.rcvbuf_errors_at_start = rcvbuf_errors()
    self.connected_at = None
    self.finished = False
    self.finish_reported = False
    self.finish_pending = False
    self.ses = lt.session(session_settings(args.set))
    self.port = self.wait_listen_port()
    with open(args.torrent, 'rb') as f:
      self.ti = lt.torrent_info(lt.bdecode(f.read()))

  def wait_listen_port(self):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
      for a in self.ses.pop_alerts():
        if isinstance(a, lt.listen_failed_alert):
          raise SystemExit('libtorrent could not listen: ' + a.message())
      port = self.ses.listen_port()
      if port:
        return port
      self.ses.wait_for_alert(50)
    raise SystemExit('libtorrent did not start listening within 10 s')

  def add_torrent(self):
    atp = lt.add_torrent_params()
    atp.ti = self.ti
    atp.save_path = self.args.save
    # Not queued, not paused, no IP filter: the torrent starts at once and takes loopback peers
    atp.flags = lt.torrent_flags.update_subscribe
    self.handle = self.ses.add_torrent(atp)

  def start(self):
    self.add_torrent()
    started = time.monotonic()
    if self.args.mode == 'seed':
      # The data is checked against the torrent's piece hashes: a seed means the test built a correct torrent
      while not self.handle.status().is_seeding:
        if self.stopping:
          return
        self.pump(100)
        st = self.handle.status()
        if st.errc.value() != 0:
          raise SystemExit('libtorrent torrent error: ' + st.errc.message())
        if time.monotonic() - started > 30:
          raise SystemExit('the seed did not finish checking its data within 30 s: ' + json.dumps(torrent_status(self.handle)))
    n = self.ti.num_pieces()
    emit({
      'event': 'ready',
      'libtorrent': lt.__version__,
      'mode': self.args.mode,
      'port': self.port,
      'infohash': str(self.ti.info_hashes().v1),
      'pieceLength': self.ti.piece_length(),
      'totalSize': self.ti.total_size(),
      'numPieces': n,
      'pieces': [bytes(self.ti.hash_for_piece(i)).hex() for i in range(n)],
      'checkSeconds': time.monotonic() - started,
    })
    if self.args.peer:
      host, port = self.args.peer.rsplit(':', 1)
      self.connect(host, int(port))

  def connect(self, host, port):
    self.connected_at = time.monotonic()
    self.handle.connect_peer((host, port))

  def read_stdin(self):
    for line in sys.stdin:
      line = line.strip()
      if line:
        self.commands.put(json.loads(line))
    self.commands.put({'cmd': 'quit'})

  def pump(self, wait_ms):
    self.ses.wait_for_alert(wait_ms)
    for a in self.ses.pop_alerts():
      if isinstance(a, lt.session_stats_alert):
        self.counters = {k: v for k, v in a.values.items()
                         if v and (k.startswith('utp.') or k.startswith('net.') or k.startswith('peer.'))}
        for req in self.pending_status:
          self.answer_status(req)
        self.pending_status = []
        if self.finish_pending:
          self.finish_pending = False
          self.report_finished()
        continue
      if isinstance(a, lt.session_stats_header_alert):
        continue
      if isinstance(a, lt.hash_failed_alert):
        self.hash_failures += 1
      emit(describe_alert(a))
      if isinstance(a, lt.torrent_finished_alert) and self.args.mode == 'download' and not self.finished:
        # The last pieces may still be on their way to the disk when the torrent counts as finished:
        # hash the file once libtorrent says its cache is flushed
        self.finished = True
        self.handle.flush_cache()
      if isinstance(a, lt.cache_flushed_alert) and self.finished and not self.finish_reported:
        # Reported with the counters as they are now, which come back as a session_stats_alert
        self.finish_reported = True
        self.finish_pending = True
        self.ses.post_session_stats()

  def snapshot(self):
    return {
      'torrent': torrent_status(self.handle) if self.handle.is_valid() else None,
      'peers': [peer_status(p) for p in self.handle.get_peer_info()] if self.handle.is_valid() else [],
      'hashFailures': self.hash_failures,
      'counters': self.counters,
      'udpDrops': udp_socket_drops(self.port),
      'rcvbufErrorsDelta': self.rcvbuf_delta(),
    }

  def rcvbuf_delta(self):
    now = rcvbuf_errors()
    if now is None or self.rcvbuf_errors_at_start is None:
      return None
    return now - self.rcvbuf_errors_at_start

  def answer_status(self, req):
    emit(dict(self.snapshot(), event='status', id=req.get('id')))

  def report_finished(self):
    seconds = time.monotonic() - self.connected_at if self.connected_at else None
    # Verify what reached the disk, not only libtorrent's piece checks
    digest = hashlib.sha256()
    for i in range(self.ti.files().num_files()):
      with open(os.path.join(self.args.save, self.ti.files().file_path(i)), 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
          digest.update(chunk)
    emit(dict(self.snapshot(), event='finished', seconds=seconds, sha256=digest.hexdigest()))

  def run(self):
    threading.Thread(target=self.read_stdin, daemon=True).start()
    last_progress = 0
    while not self.stopping:
      self.pump(100)
      while not self.commands.empty():
        self.command(self.commands.get())
      now = time.monotonic()
      if self.args.mode == 'download' and not self.finished and now - last_progress >= 0.5 and self.handle.is_valid():
        last_progress = now
        emit(dict(torrent_status(self.handle), event='progress'))

  def command(self, cmd):
    name = cmd.get('cmd')
    if name == 'status':
      # The counters come back as an alert; answer once it arrives
      self.pending_status.append(cmd)
      self.ses.post_session_stats()
    elif name == 'connect':
      self.connect(cmd.get('host', '127.0.0.1'), int(cmd['port']))
    elif name == 'pause':
      self.handle.pause()
    elif name == 'remove':
      self.ses.remove_torrent(self.handle)
    elif name == 'quit':
      self.stopping = True
    else:
      emit({'event': 'error', 'message': 'unknown command: ' + json.dumps(cmd)})


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('mode', choices=['seed', 'download'])
  parser.add_argument('--torrent', required=True)
  parser.add_argument('--save', required=True, help='the directory holding (seed) or receiving (download) the data')
  parser.add_argument('--peer', help='HOST:PORT to connect to once the torrent is added')
  parser.add_argument('--set', action='append', default=[], metavar='NAME=VALUE', help='override a libtorrent setting')
  args = parser.parse_args()

  peer = Peer(args)

  def on_sigterm(_signum, _frame):
    peer.stopping = True
  signal.signal(signal.SIGTERM, on_sigterm)

  peer.start()
  peer.run()
  # Closing the session closes its peer connections; nothing is announced anywhere, so this is quick
  del peer.ses


if __name__ == '__main__':
  main()
