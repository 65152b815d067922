#!/usr/bin/env python3
"""The competing TCP flow, with cubic set per socket (a namespace inherits the host's default, bbr
here, and its sysctl is read-only inside a namespace).

  tcp.py send HOST PORT SECONDS     write as fast as TCP allows for SECONDS
  tcp.py receive PORT               print {"t": epoch ms, "bytes": cumulative} every 0.5 s
"""
import json
import socket
import sys
import time


def send(host, port, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
    s.connect((host, port))
    chunk = b"\x5a" * 65536
    end = time.time() + seconds
    while time.time() < end:
        s.sendall(chunk)
    s.close()


def receive(port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(1)
    conn, _ = ls.accept()
    conn.settimeout(0.1)
    buf = bytearray(1 << 16)
    total, last = 0, 0.0
    while True:
        try:
            n = conn.recv_into(buf)
            if n == 0:
                break
            total += n
        except socket.timeout:
            pass
        now = time.time()
        if now - last >= 0.5:
            print(json.dumps({"t": now * 1000, "bytes": total}), flush=True)
            last = now
    print(json.dumps({"t": time.time() * 1000, "bytes": total}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        receive(int(sys.argv[2]))
