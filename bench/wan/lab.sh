#!/usr/bin/env bash
# The WAN lab: three network namespaces, a tbf bottleneck and the NAT lab's NFQUEUE shim on the router.
#
#   PREFIX-snd 10.78.1.1 --s0/r0-- PREFIX-rtr 10.78.2.1 --r1/d0-- PREFIX-rcv 10.78.2.2
#
# On the router, every packet entering from s0 goes to NFQUEUE 0 and every packet entering from d0 to
# NFQUEUE 1 (mangle PREROUTING), so impair.py, bound to both queues by run.js, impairs each direction
# with its own spec. `--queue-bypass`: while no shim is bound, packets pass untouched. Toward the
# receiver, r1's egress is a tbf (the bottleneck); the way back has no rate limit. Offloads are off so
# queues hold ordinary-sized packets. TCP buffers are raised in snd and rcv so that TCP's windows, not
# the lab, never limit it (see README). Nothing touches the root namespace.
#
#   lab.sh up PREFIX                       topology, sysctls, NFQUEUE rules, tbf 20mbit / 300 ms
#   lab.sh shape PREFIX MBIT QUEUE_MS      replace the bottleneck: tbf rate MBIT, queue of QUEUE_MS
#   lab.sh tcp PREFIX cubic|bbr            congestion control of TCP in snd and rcv (a route metric)
#   lab.sh down PREFIX
set -euo pipefail
cmd=${1:?up|shape|tcp|down}
p=${2:?prefix}
[[ $p =~ ^wan[a-z0-9]{0,12}$ ]] || { echo "wan lab: bad prefix '$p'" >&2; exit 2; }
snd=$p-snd rtr=$p-rtr rcv=$p-rcv

down() {
  for ns in "$snd" "$rtr" "$rcv"; do ip netns del "$ns" 2>/dev/null || true; done
}

# tbf rate MBIT with a queue that holds QUEUE_MS at that rate
shape() { # mbit queue_ms
  tc -n "$rtr" qdisc replace dev r1 root tbf rate "${1}mbit" burst 15k latency "${2}ms"
}

# A namespace cannot make cubic its default (net.ipv4.tcp_congestion_control answers EPERM outside the
# root namespace for algorithms missing from tcp_allowed_congestion_control, "reno bbr" here), but a
# route's congctl metric applies to every connection over it, without a privilege check. `lock` keeps
# a socket option from overriding it.
tcp() { # cubic|bbr
  [[ $1 =~ ^(cubic|bbr)$ ]] || { echo "wan lab: tcp wants cubic or bbr" >&2; exit 2; }
  ip -n "$snd" route replace default via 10.78.1.2 dev s0 congctl lock "$1"
  ip -n "$rcv" route replace default via 10.78.2.1 dev d0 congctl lock "$1"
}

up() {
  down
  trap 'rc=$?; if ((rc)); then echo "wan lab: up failed (rc=$rc), tearing down" >&2; down; fi' EXIT
  for ns in "$snd" "$rtr" "$rcv"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
  ip -n "$snd" link add s0 type veth peer name r0 netns "$rtr"
  ip -n "$rtr" link add r1 type veth peer name d0 netns "$rcv"
  ip -n "$snd" addr add 10.78.1.1/24 dev s0
  ip -n "$rtr" addr add 10.78.1.2/24 dev r0
  ip -n "$rtr" addr add 10.78.2.1/24 dev r1
  ip -n "$rcv" addr add 10.78.2.2/24 dev d0
  for pair in "$snd s0" "$rtr r0" "$rtr r1" "$rcv d0"; do
    set -- $pair
    ip -n "$1" link set "$2" up
    ip netns exec "$1" ethtool -K "$2" gso off gro off tso off >/dev/null
  done
  ip -n "$snd" route add default via 10.78.1.2
  ip -n "$rcv" route add default via 10.78.2.1
  ip netns exec "$rtr" sysctl -qw net.ipv4.ip_forward=1
  # TCP may grow its windows to 32 MiB: 600 ms at 20 Mbit/s plus a 300 ms queue is 2.25 MB in flight
  for ns in "$snd" "$rcv"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_rmem="4096 131072 33554432" \
      net.ipv4.tcp_wmem="4096 65536 33554432" net.ipv4.tcp_no_metrics_save=1
  done
  ip netns exec "$rtr" iptables -w -t mangle -A PREROUTING -i r0 -j NFQUEUE --queue-num 0 --queue-bypass
  ip netns exec "$rtr" iptables -w -t mangle -A PREROUTING -i r1 -j NFQUEUE --queue-num 1 --queue-bypass
  shape 20 300
  trap - EXIT
}

case $cmd in
  up) up ;;
  shape) shape "${3:?mbit}" "${4:?queue ms}" ;;
  tcp) tcp "${3:?cubic|bbr}" ;;
  down) down ;;
  *) echo "usage: lab.sh up|shape|tcp|down PREFIX ..." >&2; exit 2 ;;
esac
