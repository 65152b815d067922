#!/usr/bin/env python3
"""Link impairment for the NAT lab: delay, jitter, loss and reordering through NFQUEUE.

The lab's kernel has no netem qdisc, so packets are queued to userspace with an iptables NFQUEUE rule
(nft's own `queue` statement is not built in either) and this program decides each one's fate:

  loss=PCT     drop the packet with that probability
  delay=MS     hold it that long before accepting it
  jitter=MS    add a uniform random -MS..+MS to the delay (packets may then overtake each other, as netem)
  reorder=PCT  with that probability send the packet at once, ahead of the delayed ones (netem's reorder)
  fifo=1       jitter keeps packets in order: none leaves before one that came earlier (except reorder's picks)

Stdlib only, raw netlink (NETLINK_NETFILTER, nfnetlink_queue). Only packet metadata is copied to
userspace; the verdict reinjects the original packet. One process serves several queues, each with
its own spec:  impair.py --queue 0=delay=40,loss=2 --queue 1=delay=40,loss=2 [--ready FILE] [--seed N]
Prints a per-queue summary on SIGTERM/SIGINT.
"""
import argparse
import errno
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NF_DROP = 0
NF_ACCEPT = 1


def parse_spec(text):
    spec = {"delay": 0.0, "jitter": 0.0, "loss": 0.0, "reorder": 0.0, "fifo": 0.0}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in spec:
            raise ValueError("bad impairment %r (delay=MS,jitter=MS,loss=PCT,reorder=PCT,fifo=1)" % part)
        spec[key] = float(value)
    if not (0 <= spec["loss"] <= 100 and 0 <= spec["reorder"] <= 100):
        raise ValueError("loss and reorder are percentages")
    return spec


def nla(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


class Queue:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        except OSError:
            pass
        self.sock.bind((0, 0))
        self.seq = 0

    def send(self, msg_type, queue, attrs, flags=NLM_F_REQUEST):
        self.seq += 1
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
        header = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, self.seq, 0)
        self.sock.send(header + body)
        return self.seq

    def request(self, queue, attrs):
        """A config message, acknowledged: raises OSError on a netlink error"""
        seq = self.send(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK)
        while True:
            data = self.sock.recv(65536)
            for msg_type, msg_seq, payload in split(data):
                if msg_type == NLMSG_ERROR and msg_seq == seq:
                    (err,) = struct.unpack_from("=i", payload)
                    if err:
                        raise OSError(-err, "nfqueue config on queue %d: %s" % (queue, os.strerror(-err)))
                    return

    def bind(self, queue, maxlen):
        self.request(queue, [nla(NFQA_CFG_CMD, struct.pack(">BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET))])
        self.request(queue, [nla(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META))])
        self.request(queue, [nla(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", maxlen))])

    def verdict(self, queue, packet_id, verdict):
        self.send(NFQNL_MSG_VERDICT, queue, [nla(NFQA_VERDICT_HDR, struct.pack(">II", verdict, packet_id))])


def split(data):
    """Netlink messages in one datagram: (type, seq, payload)"""
    offset = 0
    while offset + 16 <= len(data):
        length, msg_type, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        yield msg_type, seq, data[offset + 16:offset + length]
        offset += (length + 3) & ~3


def packet_id(payload):
    """(queue, packet id) of an NFQNL_MSG_PACKET payload (nfgenmsg + attributes)"""
    (queue,) = struct.unpack_from(">H", payload, 2)
    offset = 4
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            break
        if kind & 0x3FFF == NFQA_PACKET_HDR:
            (pid,) = struct.unpack_from(">I", payload, offset + 4)
            return queue, pid
        offset += (length + 3) & ~3
    return queue, None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", action="append", required=True, metavar="NUM=SPEC")
    parser.add_argument("--ready", help="file created once the queues are bound")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--maxlen", type=int, default=8192, help="packets held per queue before the kernel drops")
    args = parser.parse_args()

    specs = {}
    for item in args.queue:
        num, sep, text = item.partition("=")
        if not sep or not num.isdigit():
            parser.error("--queue wants NUM=SPEC, got %r" % item)
        specs[int(num)] = parse_spec(text)
    rng = random.Random(args.seed)

    nfq = Queue()
    for num in specs:
        nfq.bind(num, args.maxlen)
    nfq.sock.setblocking(False)
    stats = {num: {"seen": 0, "dropped": 0, "reordered": 0, "held": 0} for num in specs}

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))

    print("impair: bound queues %s" % ", ".join("%d=%s" % (n, s) for n, s in specs.items()), flush=True)
    if args.ready:
        with open(args.ready, "w") as f:
            f.write(str(os.getpid()))

    held = []  # heap of (release time, arrival counter, queue, packet id)
    counter = 0
    last_release = {num: 0.0 for num in specs}  # fifo: the latest release time given out per queue
    while not stopping:
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, queue, pid = heapq.heappop(held)
            nfq.verdict(queue, pid, NF_ACCEPT)
        timeout = max(0.0, held[0][0] - now) if held else 1.0
        try:
            readable, _, _ = select.select([nfq.sock], [], [], timeout)
        except InterruptedError:
            continue
        if not readable:
            continue
        while True:
            try:
                data = nfq.sock.recv(1 << 16)
            except BlockingIOError:
                break
            except InterruptedError:
                break
            except OSError as err:
                if err.errno == errno.ENOBUFS:  # the kernel dropped messages: those packets are lost
                    continue
                raise
            now = time.monotonic()
            for msg_type, _seq, payload in split(data):
                if msg_type != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    continue
                queue, pid = packet_id(payload)
                spec = specs.get(queue)
                if pid is None or spec is None:
                    continue
                st = stats[queue]
                st["seen"] += 1
                if spec["loss"] and rng.random() * 100 < spec["loss"]:
                    st["dropped"] += 1
                    nfq.verdict(queue, pid, NF_DROP)
                    continue
                delay = spec["delay"]
                if spec["jitter"]:
                    delay += rng.uniform(-spec["jitter"], spec["jitter"])
                if spec["reorder"] and rng.random() * 100 < spec["reorder"]:
                    st["reordered"] += 1
                    delay = 0
                elif spec["fifo"]:
                    release = max(now + delay / 1000.0, last_release[queue])
                    last_release[queue] = release
                    delay = (release - now) * 1000.0
                if delay <= 0:
                    nfq.verdict(queue, pid, NF_ACCEPT)
                else:
                    st["held"] += 1
                    counter += 1
                    heapq.heappush(held, (now + delay / 1000.0, counter, queue, pid))
    print("impair: stats %s" % ", ".join("%d: %s" % (n, s) for n, s in stats.items()), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
    except OSError as err:
        print("impair: %s" % err, file=sys.stderr, flush=True)
        sys.exit(1)
