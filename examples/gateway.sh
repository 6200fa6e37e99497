#!/usr/bin/env bash
# A private network behind `dpmd gateway`: a plain Linux host fetches a page from a server
# outside with curl (standard NAPT), and a DPM client beside it does the same with dpm-cat
# (the DPM setup exchange first); the gateway's status shows both sessions.
# Run as root from the repository root, after scripts/build.sh:   examples/gateway.sh
#
#   "host": a Linux host          "lan": the private network's router           "wan": outside
#   curl        10.77.3.2 == veth == 10.77.3.1
#   dpmd client 10.77.1.2         kernel 10.77.0.254 on TUN gwin                 server 198.51.100.10
#     on TUN dpm0 (kernel 10.77.1.1)  dpmd gateway 10.77.0.1 -- TUN gwout, moved into wan
#                                     (pool 203.0.113.1-8)
#
# Each program runs in the namespace of the dpmd it talks to (a program reaches the dpmd of
# its own network namespace). Everything made here is removed on exit, even on failure or
# Ctrl-C; nothing is configured outside the three namespaces.
set -euo pipefail
BUILD=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
HOST=dpm-example-host-$$ # names of our own: two runs never meet
LAN=dpm-example-lan-$$
WAN=dpm-example-wan-$$
WWW=$(mktemp -d)

cleanup() {
  set +e
  jobs -p | xargs -r kill 2>/dev/null # both dpmds and the server, started below with &
  wait
  for ns in "$HOST" "$LAN" "$WAN"; do ip netns del "$ns" 2>/dev/null; done # veths go too
  rm -rf "$WWW"
}
trap cleanup EXIT

# wait_for CMD... : retries CMD (each try at most 1 s) for up to 10 s.
wait_for() { for _ in $(seq 50); do timeout 1 "$@" &>/dev/null && return; sleep 0.1; done; echo "gave up: $*" >&2; return 1; }

for ns in "$HOST" "$LAN" "$WAN"; do ip netns add "$ns"; done
# host <-> lan: a veth pair, one end made directly in each.
ip link add veth0 netns "$HOST" type veth peer name veth0 netns "$LAN"
ip -n "$HOST" addr add 10.77.3.2/24 dev veth0
ip -n "$LAN" addr add 10.77.3.1/24 dev veth0
ip -n "$HOST" link set veth0 up
ip -n "$LAN" link set veth0 up
ip -n "$HOST" route add default via 10.77.3.1 # the host's router is lan
ip netns exec "$LAN" sysctl -qw net.ipv4.ip_forward=1

# The gateway runs in lan and makes both TUNs there. gwin stays: lan's kernel side of it is
# 10.77.0.254/16, so lan reaches the gateway's own address 10.77.0.1 (the DPM server) on it.
ip netns exec "$LAN" "$BUILD/dpmd" gateway --inside-tun gwin --inside-host-address 10.77.0.254/16 \
  --outside-tun gwout --address 10.77.0.1/16 --inside-network 10.77.0.0/16 \
  --pool 203.0.113.1-203.0.113.8 &
wait_for ip netns exec "$LAN" "$BUILD/dpmd" status
# gwout belongs outside: moved into wan (dpmd keeps it open), it is where wan sends the pool.
ip -n "$LAN" link set gwout netns "$WAN"
ip -n "$WAN" link set gwout up
ip -n "$WAN" route add 203.0.113.0/24 dev gwout
# lan sends everything that is not private into the gateway, which translates it.
ip -n "$LAN" route add default dev gwin

# The server's address sits on wan's loopback; wan has no route into the private network.
ip -n "$WAN" link set lo up
ip -n "$WAN" addr add 198.51.100.10/32 dev lo
echo "hello from the wan namespace" >"$WWW/index.html"
ip netns exec "$WAN" python3 -m http.server 80 --bind 198.51.100.10 --directory "$WWW" \
  >/dev/null 2>"$WWW/server.log" &
wait_for ip netns exec "$WAN" bash -c 'exec 3<>/dev/tcp/198.51.100.10/80' # listening?

echo "--- the plain host: curl http://198.51.100.10/ (standard NAPT) ---"
ip netns exec "$HOST" curl -sS --max-time 20 -w 'curl: HTTP %{http_code}\n' http://198.51.100.10/

# The DPM client: a stack 10.77.1.2 on TUN dpm0 in host (kernel side 10.77.1.1). host forwards
# its packets to lan; lan needs the way back to it. Its setup exchange goes to 10.77.0.1.
ip netns exec "$HOST" sysctl -qw net.ipv4.ip_forward=1
ip -n "$LAN" route add 10.77.1.0/24 via 10.77.3.2
ip netns exec "$HOST" "$BUILD/dpmd" client --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 \
  --host-address 10.77.1.1/24 --dpm-gateway 10.77.0.1 --private-network 10.77.0.0/16 &
wait_for ip netns exec "$HOST" "$BUILD/dpmd" status

echo "--- the DPM client: dpm-cat 198.51.100.10 80 (local = the registered address and port) ---"
# It connects at once and sends its request 2 s later, so the gateway lists the DPM session.
{ sleep 2; printf 'GET / HTTP/1.0\r\n\r\n'; } | ip netns exec "$HOST" timeout 20 "$BUILD/dpm-cat" 198.51.100.10 80 &
sleep 1
echo "--- dpmd status of the gateway (run in lan), while that connection is open ---"
ip netns exec "$LAN" "$BUILD/dpmd" status
wait $!
echo "--- the server saw (both from the pool) ---"
cat "$WWW/server.log"
