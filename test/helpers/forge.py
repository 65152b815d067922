#!/usr/bin/env python3
"""Send UDP datagrams with a forged IPv4 source address (raw socket, needs root).

Attack tests use it to play an off-path stranger on loopback: reads one JSON object per line on stdin,
{"src": "127.0.0.9", "sport": 4000, "dst": "127.0.0.1", "dport": 5000, "payload": "<hex>", "count": 1},
sends `count` copies, and answers each line with one line "ok N" on stdout once they left.
"""
import json
import socket
import struct
import sys


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def datagram(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    udp_len = 8 + len(payload)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    csum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    total = 20 + udp_len
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + udp


def main() -> None:
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        pkt = datagram(req["src"], int(req["sport"]), req["dst"], int(req["dport"]), bytes.fromhex(req["payload"]))
        n = int(req.get("count", 1))
        for _ in range(n):
            raw.sendto(pkt, (req["dst"], 0))
        sys.stdout.write("ok %d\n" % n)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
