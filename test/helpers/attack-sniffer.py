# A passive eavesdropper on the loopback interface (root): sees every IPv4 UDP datagram on lo, prints the
# rendezvous ones (magic 'UTPRV') as JSON lines, counts datagrams per destination IP and how many payloads
# contain each needle (hex, argv[1:]); prints {"summary": ...} and exits when stdin closes.
import json, select, socket, struct, sys

needles = [bytes.fromhex(n) for n in sys.argv[1:]]
hits = [0] * len(needles)
per_dst = {}
packets = 0
payload_bytes = 0
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
# SO_RCVBUF is capped at net.core.rmem_max (about 200 KB by default), far too little for a recorder that must see every
# frame of several MiB sent at full speed while the test runner loads the CPU: as root, force the size (SO_RCVBUFFORCE)
s.setsockopt(socket.SOL_SOCKET, getattr(socket, 'SO_RCVBUFFORCE', 33), 256 << 20)
s.bind(('lo', 0))
print(json.dumps({'ready': True}), flush=True)
PACKET_OUTGOING = 4
while True:
    r, _, _ = select.select([s, sys.stdin], [], [])
    if sys.stdin in r:
        if sys.stdin.readline() == '':
            break
    if s not in r:
        continue
    frame, addr = s.recvfrom(65600)
    if addr[2] == PACKET_OUTGOING:
        continue  # loopback shows each datagram twice: count it once, as it arrives
    ip = frame[14:]
    if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
        continue
    ihl = (ip[0] & 15) * 4
    src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    sport, dport, ulen = struct.unpack('!HHH', ip[ihl:ihl + 6])
    payload = ip[ihl + 8:ihl + ulen]
    packets += 1
    payload_bytes += len(payload)
    per_dst[dst] = per_dst.get(dst, 0) + 1
    for i, n in enumerate(needles):
        if n in payload:
            hits[i] += 1
    if payload.startswith(b'UTPRV'):
        print(json.dumps({'src': src, 'sport': sport, 'dst': dst, 'dport': dport, 'body': payload[6:].decode('utf8', 'replace')}), flush=True)
# Frames the kernel dropped because this recorder fell behind (PACKET_STATISTICS: tp_packets, tp_drops)
SOL_PACKET, PACKET_STATISTICS = 263, 6
_, dropped = struct.unpack('II', s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
print(json.dumps({'summary': {'packets': packets, 'bytes': payload_bytes, 'hits': hits, 'perDst': per_dst, 'dropped': dropped}}), flush=True)
