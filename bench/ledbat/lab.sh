#!/usr/bin/env bash
# A 20 Mbit/s bottleneck in three network namespaces (see /work/shared/research/ledbat-lab.md):
#
#   PREFIX-snd 10.77.1.1 --s0/r0-- PREFIX-rtr 10.77.2.1 --r1/d0-- PREFIX-rcv 10.77.2.2
#                                   (tbf 20mbit, 300 ms queue on r1)
#
# The queue sits on the router, not on the sending host, so senders are not throttled locally
# before it fills. Offloads are off so the queue holds ordinary-sized packets. Nothing touches the
# root namespace.
#
#   lab.sh up PREFIX      lab.sh down PREFIX
set -euo pipefail
cmd=${1:?up|down}
p=${2:?prefix}
snd=$p-snd rtr=$p-rtr rcv=$p-rcv

down() {
  for ns in "$snd" "$rtr" "$rcv"; do ip netns del "$ns" 2>/dev/null || true; done
}

up() {
  down
  for ns in "$snd" "$rtr" "$rcv"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  ip -n "$snd" link add s0 type veth peer name r0 netns "$rtr"
  ip -n "$rtr" link add r1 type veth peer name d0 netns "$rcv"
  ip -n "$snd" addr add 10.77.1.1/24 dev s0
  ip -n "$rtr" addr add 10.77.1.2/24 dev r0
  ip -n "$rtr" addr add 10.77.2.1/24 dev r1
  ip -n "$rcv" addr add 10.77.2.2/24 dev d0
  for pair in "$snd s0" "$rtr r0" "$rtr r1" "$rcv d0"; do
    set -- $pair
    ip -n "$1" link set "$2" up
    ip netns exec "$1" ethtool -K "$2" gso off gro off tso off >/dev/null 2>&1 || true
  done
  ip -n "$snd" route add default via 10.77.1.2
  ip -n "$rcv" route add default via 10.77.2.1
  ip netns exec "$rtr" sysctl -qw net.ipv4.ip_forward=1
  tc -n "$rtr" qdisc add dev r1 root tbf rate 20mbit burst 15k latency 300ms
}

case $cmd in
  up) up ;;
  down) down ;;
  *) echo "usage: lab.sh up|down PREFIX" >&2; exit 2 ;;
esac
