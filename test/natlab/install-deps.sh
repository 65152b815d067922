#!/usr/bin/env bash
# Installs what the NAT lab (test/natlab/lab.sh) needs, only when something is missing.
# Debian/Ubuntu, run as root. Without root or apt-get it fails and says what is missing: .ci/run must not go on
# to a NAT lab that cannot run (issue 14: no silent skips).
set -euo pipefail
need=()
have_cmd() { command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 || -x /sbin/$1 ]]; }
have_cmd ip        || need+=(iproute2)
have_cmd nft       || need+=(nftables)
have_cmd iptables  || need+=(iptables)
have_cmd conntrack || need+=(conntrack)
have_cmd python3   || need+=(python3)
if [[ ${#need[@]} -eq 0 ]]; then echo "natlab deps: all present"; exit 0; fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "natlab deps: missing ${need[*]} and cannot install them (not root or no apt-get)" >&2
  exit 1
fi
echo "natlab deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}"
