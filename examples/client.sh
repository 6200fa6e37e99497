#!/usr/bin/env bash
# A program fetches a web page from a real server through the dpm stack.
# Run as root from the repository root, after scripts/build.sh:   examples/client.sh
#
#   namespace "client"                                      namespace "server"
#   dpmd client 10.77.1.2 -- TUN dpm0 -- kernel 10.77.1.1    python3 -m http.server
#   dpm-cat, dpmd status, dpm-run curl   kernel 198.51.100.1 == veth == 198.51.100.10:80
#
# dpm-cat, `dpmd status` and curl under dpm-run run in the client namespace: a program reaches the dpmd of its own
# network namespace. Everything made here is removed on exit, even on failure or Ctrl-C;
# nothing is configured outside the two namespaces.
set -euo pipefail
BUILD=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
CLIENT=dpm-example-client-$$ # names of our own: two runs never meet
SERVER=dpm-example-server-$$
WWW=$(mktemp -d)

cleanup() {
  set +e
  jobs -p | xargs -r kill 2>/dev/null # dpmd and the server, started below with &
  wait
  ip netns del "$CLIENT" 2>/dev/null # takes the veth pair with it; the TUN went with dpmd
  ip netns del "$SERVER" 2>/dev/null
  rm -rf "$WWW"
}
trap cleanup EXIT

# wait_for CMD... : retries CMD (each try at most 1 s) for up to 10 s.
wait_for() { for _ in $(seq 50); do timeout 1 "$@" &>/dev/null && return; sleep 0.1; done; echo "gave up: $*" >&2; return 1; }

ip netns add "$CLIENT"
ip netns add "$SERVER"
# The wire between the namespaces: a veth pair, one end made directly in each.
ip link add veth0 netns "$CLIENT" type veth peer name veth0 netns "$SERVER"
ip -n "$CLIENT" addr add 198.51.100.1/24 dev veth0
ip -n "$SERVER" addr add 198.51.100.10/24 dev veth0
ip -n "$CLIENT" link set veth0 up
ip -n "$SERVER" link set veth0 up
# The client namespace's kernel is the stack's router: it forwards between TUN and veth.
ip netns exec "$CLIENT" sysctl -qw net.ipv4.ip_forward=1
# The server's replies to the stack go back through that router.
ip -n "$SERVER" route add 10.77.1.0/24 via 198.51.100.1

echo "hello from the server namespace" >"$WWW/index.html"
ip netns exec "$SERVER" python3 -m http.server 80 --bind 198.51.100.10 --directory "$WWW" >/dev/null 2>&1 &
wait_for ip netns exec "$CLIENT" bash -c 'exec 3<>/dev/tcp/198.51.100.10/80' # listening?

# dpmd makes TUN dpm0 in the client namespace; the stack is 10.77.1.2 and sends everything
# off its /24 to the kernel's side of the TUN, which --host-address sets to 10.77.1.1.
ip netns exec "$CLIENT" "$BUILD/dpmd" client --tun dpm0 --address 10.77.1.2/24 \
  --gateway 10.77.1.1 --host-address 10.77.1.1/24 &
wait_for ip netns exec "$CLIENT" "$BUILD/dpmd" status

echo "--- dpm-cat fetches http://198.51.100.10/ through the stack ---"
printf 'GET / HTTP/1.0\r\n\r\n' | ip netns exec "$CLIENT" timeout 20 "$BUILD/dpm-cat" 198.51.100.10 80
echo "--- dpmd status ---"
ip netns exec "$CLIENT" "$BUILD/dpmd" status
echo "--- unmodified curl through dpm-run (the preload hook puts its socket in the stack) ---"
ip netns exec "$CLIENT" timeout 20 "$BUILD/dpm-run" -- curl -sS -w 'curl: HTTP %{http_code} from %{local_ip}\n' \
  http://198.51.100.10/ | sed 's/^hello/curl: hello/'
