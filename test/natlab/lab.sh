#!/usr/bin/env bash
# NAT lab in network namespaces: two home NATs and a small "internet" with a rendezvous/STUN host.
# Run as root (CI does); needs iproute2, nftables, iptables and python3 (test/natlab/install-deps.sh).
#
#   hostA 10.0.1.2 --eth0/lan-- natA  wan 198.51.100.1 --wan/vA--+
#                                                                  inet (router)  lo: 203.0.113.10, .11
#                                                                                     and .100-.139 (DHT nodes)
#   hostB 10.0.2.2 --eth0/lan-- natB  wan 198.51.100.2 --wan/vB--+
#
#   --same-nat: hostA 10.0.1.2 and hostB 10.0.1.3 share natA's LAN (a bridge "lan" in natA); no natB.
#
# Usage:
#   lab.sh up [--a cone|symmetric|fullcone] [--b cone|symmetric|fullcone] [--same-nat]
#             [--udp-timeout S] [--impair SPEC] [--impair-a SPEC] [--impair-b SPEC]
#   lab.sh down
#   lab.sh exec hostA|hostB|inet|natA|natB CMD...
#   lab.sh status
#   lab.sh conntrack natA|natB
#   lab.sh rebind natA|natB HOSTPORT NEWPORT
#
# rebind simulates a NAT that lost its state (a reboot): from now on the NAT maps the host's UDP port
# HOSTPORT to public port NEWPORT, for every destination (endpoint-independent), and all its UDP
# conntrack entries are dropped, so established flows continue from the new public port.
#
# SPEC is delay=MS,jitter=MS,loss=PCT,reorder=PCT (any subset). --impair applies SPEC to each public link
# (natA<->inet and natB<->inet, both directions), so A<->B one-way latency is twice the delay.
# This kernel has no netem, so impairment is a userspace NFQUEUE shim (impair.py) in the inet namespace.
#
# Nothing is connected to the root namespace. Namespaces are "$NATLAB_PREFIX-*" (default upr-*);
# state (pid files, logs) lives in /run/$NATLAB_PREFIX-natlab. One lab per prefix at a time; labs with
# different prefixes are independent (the tests use upr-t<pid>, so concurrent test runs do not collide).
set -euo pipefail

P=${NATLAB_PREFIX:-upr}
[[ $P =~ ^[a-z][a-z0-9-]{0,23}$ ]] || { echo "natlab: bad NATLAB_PREFIX '$P'" >&2; exit 1; }
STATE=/run/$P-natlab
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NODES=(hostA hostB natA natB inet)
WAN_A=198.51.100.1
WAN_B=198.51.100.2
GW_A=198.51.100.101 # inet's address on vA (next hop of natA)
GW_B=198.51.100.102 # inet's address on vB
SERVER_IPS=(203.0.113.10 203.0.113.11)
# One address per DHT node, as on the internet: mainline keeps one node per address in a routing table or a
# lookup unless the node IDs are BEP 42 ones for that address, so 30 nodes on two addresses look like two
# or four nodes to a client, and two clients can end up storing at and reading from different ones
DHT_IPS=($(seq -f '203.0.113.%g' 100 139))

die() { echo "natlab: $*" >&2; exit 1; }
nsname() { echo "$P-$1"; }
nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
have_ns() { [[ -e /run/netns/$P-$1 ]]; }

python_bin() {
  if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else command -v python3 || die "python3 missing"; fi
}

# Kill every process inside the lab namespaces and delete them. Safe to run any time.
do_down() {
  local n pid pids=()
  # pids we recorded, but only while they still live in one of our namespaces (no pid-reuse accidents)
  if [[ -d $STATE ]]; then
    for f in "$STATE"/*.pid; do
      [[ -e $f ]] || continue
      pid=$(<"$f")
      if [[ $pid =~ ^[0-9]+$ ]] && [[ $(ip netns identify "$pid" 2>/dev/null || true) == "$P-"* ]]; then pids+=("$pid"); fi
    done
  fi
  for n in "${NODES[@]}"; do
    have_ns "$n" || continue
    while read -r pid; do [[ -n $pid ]] && pids+=("$pid"); done < <(ip netns pids "$(nsname "$n")" 2>/dev/null || true)
  done
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 20); do
      local alive=()
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
      ((${#alive[@]})) || break
      sleep 0.05
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  for n in "${NODES[@]}"; do
    if have_ns "$n"; then ip netns del "$(nsname "$n")" 2>/dev/null || true; fi
  done
  rm -rf "$STATE"
}

# sysctls common to every lab namespace (pitfall: IPv4 conf/all is inherited from the root namespace)
ns_base() { # node forward(0|1)
  nsx "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 net.ipv4.ip_forward="$2" >/dev/null
  ip -n "$(nsname "$1")" link set lo up
}

# nftables NAT + home-router firewall for one NAT namespace
nat_rules() { # type wan_ip lan_net map_timeout
  local type=$1 wan=$2 lan=$3 t=$4 snat fc_map="" fc_dnat="" fc_learn="" fc_fwd=""
  case $type in
    cone | fullcone) snat="snat ip to $wan" ;;
    symmetric) snat="snat ip to $wan fully-random" ;;
    *) die "unknown NAT type '$type' (cone|symmetric|fullcone)" ;;
  esac
  if [[ $type == fullcone ]]; then
    # Endpoint-independent filtering: remember public port -> internal endpoint from outbound packets
    # (after SNAT, so udp sport is the public port) and DNAT anything arriving on that port to it.
    fc_map="map fcmap { type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout ${t}s; }"
    fc_dnat='iifname "wan" meta l4proto udp dnat ip to udp dport map @fcmap'
    fc_learn='chain fc_learn {
    type filter hook postrouting priority 110; policy accept;
    oifname "wan" meta l4proto udp ct direction original update @fcmap { udp sport : ct original ip saddr . ct original proto-src }
    oifname "wan" meta l4proto udp ct direction reply update @fcmap { udp sport : ct reply ip saddr . ct reply proto-src }
  }'
    fc_fwd='iifname "wan" oifname "lan" ct status dnat accept'
  fi
  cat <<EOF
table ip natlab {
  $fc_map
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    $fc_dnat
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" ip saddr $lan $snat
  }
  $fc_learn
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan" oifname "wan" accept
    $fc_fwd
  }
}
EOF
}

validate_spec() {
  local kv
  [[ -n $1 ]] || die "empty impairment spec"
  IFS=, read -ra kv <<<"$1"
  for x in "${kv[@]}"; do
    [[ $x =~ ^(delay|jitter|loss|reorder)=[0-9]+(\.[0-9]+)?$ ]] || die "bad impairment '$x' in '$1' (delay=MS,jitter=MS,loss=PCT,reorder=PCT)"
  done
}

do_up() {
  local a=cone b=cone same=0 udp_timeout="" imp_a="" imp_b=""
  while (($#)); do
    case $1 in
      --a) a=${2:?}; shift 2 ;;
      --b) b=${2:?}; shift 2 ;;
      --same-nat) same=1; shift ;;
      --udp-timeout) udp_timeout=${2:?}; shift 2 ;;
      --impair) imp_a=${2:?}; imp_b=$2; shift 2 ;;
      --impair-a) imp_a=${2:?}; shift 2 ;;
      --impair-b) imp_b=${2:?}; shift 2 ;;
      *) die "up: unknown option '$1'" ;;
    esac
  done
  for t in "$a" "$b"; do [[ $t =~ ^(cone|symmetric|fullcone)$ ]] || die "unknown NAT type '$t'"; done
  [[ -z $udp_timeout || $udp_timeout =~ ^[0-9]+$ ]] || die "--udp-timeout wants whole seconds"
  [[ -n $imp_a ]] && validate_spec "$imp_a"
  [[ -n $imp_b ]] && validate_spec "$imp_b"
  ((same)) && imp_b=""
  for c in ip nft; do command -v "$c" >/dev/null || die "$c missing: run test/natlab/install-deps.sh"; done
  if [[ -n $imp_a || -n $imp_b ]]; then command -v iptables >/dev/null || die "iptables missing (needed for --impair): run test/natlab/install-deps.sh"; fi

  do_down
  mkdir -p "$STATE"
  # a failed up leaves nothing behind
  # shellcheck disable=SC2154 # rc is assigned inside the trap
  trap 'rc=$?; if ((rc)); then echo "natlab: up failed (rc=$rc), tearing down" >&2; do_down; fi' EXIT

  local nodes=(hostA natA inet hostB)
  ((same)) || nodes+=(natB)
  for n in "${nodes[@]}"; do ip netns add "$(nsname "$n")"; done
  ns_base hostA 0; ns_base hostB 0; ns_base natA 1; ns_base inet 1
  ((same)) || ns_base natB 1

  # LANs: veths created inside the namespaces, never in the root namespace
  local nA nB nI
  nA=$(nsname natA); nB=$(nsname natB); nI=$(nsname inet)
  if ((same)); then
    # One LAN behind natA: a bridge with a port per host. br_netfilter is built in and would push the
    # bridged frames through natA's ip hooks (forward policy drop), so turn that off in natA.
    # shellcheck disable=SC2016 # expanded by the inner sh
    nsx natA sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e "$f" ] && echo 0 > "$f"; done; true'
    ip -n "$nA" link add lan type bridge forward_delay 0 stp_state 0
    ip -n "$nA" link add lanA type veth peer name eth0 netns "$(nsname hostA)"
    ip -n "$nA" link add lanB type veth peer name eth0 netns "$(nsname hostB)"
    ip -n "$nA" link set lanA master lan up
    ip -n "$nA" link set lanB master lan up
    ip -n "$nA" addr add 10.0.1.1/24 dev lan
    ip -n "$nA" link set lan up
    ip -n "$(nsname hostA)" addr add 10.0.1.2/24 dev eth0
    ip -n "$(nsname hostB)" addr add 10.0.1.3/24 dev eth0
    ip -n "$(nsname hostA)" link set eth0 up
    ip -n "$(nsname hostB)" link set eth0 up
    ip -n "$(nsname hostA)" route add default via 10.0.1.1
    ip -n "$(nsname hostB)" route add default via 10.0.1.1
  else
    ip -n "$nA" link add lan type veth peer name eth0 netns "$(nsname hostA)"
    ip -n "$nB" link add lan type veth peer name eth0 netns "$(nsname hostB)"
    ip -n "$nA" addr add 10.0.1.1/24 dev lan
    ip -n "$nB" addr add 10.0.2.1/24 dev lan
    ip -n "$nA" link set lan up
    ip -n "$nB" link set lan up
    ip -n "$(nsname hostA)" addr add 10.0.1.2/24 dev eth0
    ip -n "$(nsname hostB)" addr add 10.0.2.2/24 dev eth0
    ip -n "$(nsname hostA)" link set eth0 up
    ip -n "$(nsname hostB)" link set eth0 up
    ip -n "$(nsname hostA)" route add default via 10.0.1.1
    ip -n "$(nsname hostB)" route add default via 10.0.2.1
  fi

  # Public side: point-to-point veths (/32 addresses + onlink routes, no bridge)
  ip -n "$nA" link add wan type veth peer name vA netns "$nI"
  ip -n "$nA" addr add $WAN_A/32 dev wan
  ip -n "$nA" link set wan up
  ip -n "$nI" addr add $GW_A/32 dev vA
  ip -n "$nI" link set vA up
  ip -n "$nA" route add default via $GW_A dev wan onlink
  if ((!same)); then
    ip -n "$nB" link add wan type veth peer name vB netns "$nI"
    ip -n "$nB" addr add $WAN_B/32 dev wan
    ip -n "$nB" link set wan up
    ip -n "$nI" addr add $GW_B/32 dev vB
    ip -n "$nI" link set vB up
    ip -n "$nB" route add default via $GW_B dev wan onlink
  fi
  for ipaddr in "${SERVER_IPS[@]}" "${DHT_IPS[@]}"; do ip -n "$nI" addr add "$ipaddr/32" dev lo; done
  # Routes to the NATs prefer the server address as source: a server bound to 0.0.0.0 must answer from
  # 203.0.113.10, not from the link address, or the NAT (conntrack) drops the reply as unsolicited
  ip -n "$nI" route add $WAN_A/32 dev vA src "${SERVER_IPS[0]}"
  ((same)) || ip -n "$nI" route add $WAN_B/32 dev vB src "${SERVER_IPS[0]}"

  # NAT rules and UDP conntrack timeouts (per namespace: both unreplied and stream)
  local t=${udp_timeout:-120}
  nat_rules "$a" $WAN_A 10.0.1.0/24 "$t" | nsx natA nft -f -
  ((same)) || nat_rules "$b" $WAN_B 10.0.2.0/24 "$t" | nsx natB nft -f -
  if [[ -n $udp_timeout ]]; then
    for n in natA natB; do
      have_ns "$n" || continue
      nsx "$n" sysctl -qw net.netfilter.nf_conntrack_udp_timeout="$udp_timeout" \
        net.netfilter.nf_conntrack_udp_timeout_stream="$udp_timeout" >/dev/null
    done
  fi

  # Impairment: NFQUEUE shim in inet (no NAT/conntrack there, pitfall: queueing inside a NAT namespace
  # happens before conntrack confirmation and changes symmetric mappings). Queue 0 = link A, 1 = link B.
  if [[ -n $imp_a || -n $imp_b ]]; then
    local qargs=() py
    [[ -n $imp_a ]] && qargs+=(--queue "0=$imp_a")
    [[ -n $imp_b ]] && qargs+=(--queue "1=$imp_b")
    py=$(python_bin)
    setsid ip netns exec "$nI" "$py" "$HERE/impair.py" "${qargs[@]}" --ready "$STATE/impair.ready" \
      </dev/null >"$STATE/impair.log" 2>&1 9<&- &
    echo $! >"$STATE/impair.pid"
    for _ in $(seq 1 100); do
      [[ -e $STATE/impair.ready ]] && break
      kill -0 "$(<"$STATE/impair.pid")" 2>/dev/null || { cat "$STATE/impair.log" >&2; die "impair shim exited"; }
      sleep 0.05
    done
    [[ -e $STATE/impair.ready ]] || { cat "$STATE/impair.log" >&2; die "impair shim not ready after 5 s"; }
    if [[ -n $imp_a ]]; then
      nsx inet iptables -w -t mangle -A PREROUTING -i vA -j NFQUEUE --queue-num 0
      nsx inet iptables -w -t mangle -A POSTROUTING -o vA -j NFQUEUE --queue-num 0
    fi
    if [[ -n $imp_b ]]; then
      nsx inet iptables -w -t mangle -A PREROUTING -i vB -j NFQUEUE --queue-num 1
      nsx inet iptables -w -t mangle -A POSTROUTING -o vB -j NFQUEUE --queue-num 1
    fi
  fi

  # veth carrier comes up asynchronously (linkwatch, up to ~1 s): until then the link is NO-CARRIER,
  # operstate DOWN, and getifaddrs()/libuv (os.networkInterfaces) does not even list its address
  local waited=0 down_links
  while :; do
    down_links=""
    for n in "${nodes[@]}"; do
      down_links+=$(ip -n "$(nsname "$n")" -o link show | awk -v n="$n" '$2 !~ /^lo:/ && !/state UP/ {print n"/"$2}')
    done
    [[ -z $down_links ]] && break
    ((waited++ < 100)) || die "links without carrier after 5 s: $down_links"
    sleep 0.05
  done

  {
    echo "a=$a"; echo "b=$b"; echo "same_nat=$same"; echo "udp_timeout=${udp_timeout:-default}"
    echo "impair_a=$imp_a"; echo "impair_b=$imp_b"
  } >"$STATE/config"
  trap - EXIT
  echo "natlab: up $(paste -sd' ' "$STATE/config")"
}

do_status() {
  [[ -f $STATE/config ]] && cat "$STATE/config" || echo "no lab state in $STATE"
  for n in "${NODES[@]}"; do
    if have_ns "$n"; then
      echo "== $n: $(ip -n "$(nsname "$n")" -br -4 addr | grep -v '^lo ' | tr -s ' ' | paste -sd';')"
      echo "   pids: $(ip netns pids "$(nsname "$n")" | paste -sd' ')"
    fi
  done
  [[ -f $STATE/impair.log ]] && { echo "== impair shim"; cat "$STATE/impair.log"; }
  return 0
}

cmd=${1:-}
[[ -n $cmd ]] && shift
case $cmd in
  up)
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    exec 9<"$0"; flock -w 30 9 || die "another natlab up/down is running"
    do_up "$@" ;;
  down)
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    exec 9<"$0"; flock -w 30 9 || die "another natlab up/down is running"
    do_down; echo "natlab: down" ;;
  exec)
    node=${1:?exec needs a node: ${NODES[*]}}; shift
    [[ " ${NODES[*]} " == *" $node "* ]] || die "unknown node '$node' (${NODES[*]})"
    have_ns "$node" || die "node $node is not up"
    (($#)) || die "exec $node: no command"
    exec ip netns exec "$(nsname "$node")" "$@" ;;
  status) do_status ;;
  rebind)
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    node=${1:?rebind natA|natB HOSTPORT NEWPORT}; hostport=${2:?rebind needs HOSTPORT}; newport=${3:?rebind needs NEWPORT}
    [[ $hostport =~ ^[0-9]+$ && $newport =~ ^[0-9]+$ ]] || die "rebind: ports must be numbers"
    case $node in
      natA) host_ip=10.0.1.2 wan=$WAN_A ;;
      natB) host_ip=10.0.2.2 wan=$WAN_B ;;
      *) die "rebind: natA or natB, not '$node'" ;;
    esac
    have_ns "$node" || die "node $node is not up"
    nsx "$node" nft insert rule ip natlab postrouting oifname wan ip saddr "$host_ip" udp sport "$hostport" snat ip to "$wan:$newport"
    nsx "$node" conntrack -D -p udp >/dev/null 2>&1 || true
    echo "natlab: $node maps $host_ip:$hostport to $wan:$newport now" ;;
  conntrack)
    node=${1:?conntrack natA|natB}
    have_ns "$node" || die "node $node is not up"
    if command -v conntrack >/dev/null; then nsx "$node" conntrack -L -p udp 2>/dev/null
    else nsx "$node" cat /proc/net/nf_conntrack; fi ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; [[ -z $cmd || $cmd == help || $cmd == -h || $cmd == --help ]] ;;
esac
