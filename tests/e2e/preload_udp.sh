#!/usr/bin/env bash
# e2e.preload_udp: UDP programs under dpm-run against a dnsmasq DNS server in "wan" that
# answers example.test with 198.51.100.77:
#  - dig (bind9's netmgr on libuv) over UDP, and over TCP (+tcp);
#  - Python (tests/e2e/dns_query.py): sendto/recvfrom, connect/send/recv, sendmsg/recvmsg;
#  - sendmmsg/recvmmsg (e2e_preload_helper mmsg), unconnected and connected;
#  - a UDP echo server inside the stack (peers.py udp-echo under dpm-run) answering a kernel
#    client in "wan".
# Every answer must be right and come from the server; dnsmasq's query log shows each
# query's source (198.51.100.1 for the kernel control in "host", 10.77.1.2 through the hook).
source "$(dirname "$0")/lib.sh"
e2e_require_root preload_udp
e2e_require_cmd dig dnsmasq /usr/bin/python3
e2e_init preload_udp
e2e_require_test_program e2e_preload_helper
HELPER=$TEST_PROGRAM
e2e_topology
PYTHON=/usr/bin/python3
DNS=198.51.100.10
WANT=198.51.100.77

e2e_bg "$WAN" dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --address=/example.test/$WANT \
  --listen-address=$DNS --bind-interfaces --pid-file="$TMP/dnsmasq.pid" --log-queries --log-facility=- \
  >"$TMP/dnsmasq.log" 2>&1
e2e_wait_for 10 sh -c "ip netns exec '$WAN' ss -Hlun | grep -q '$DNS:53 '" || { cat "$TMP/dnsmasq.log"; e2e_fail "dnsmasq did not start"; }

queries_from() { grep -c "query\[A\] example.test from $1\$" "$TMP/dnsmasq.log" || true; }

# dns_clients LABEL SOURCE RUN... : every client, each run as RUN... CLIENT ARGS in "host".
dns_clients() {
  local label=$1 src=$2 out rc before
  shift 2
  before=$(queries_from "$src")
  out=$(timeout 30 "$@" dig -4 +short +tries=2 +time=5 @$DNS example.test A 2>&1) || true
  e2e_expect_eq "$label: dig over UDP gets the answer" "$WANT" "$out"
  out=$(timeout 30 "$@" dig -4 +tcp +short +tries=2 +time=5 @$DNS example.test A 2>&1) || true
  e2e_expect_eq "$label: dig over TCP gets the answer" "$WANT" "$out"
  rc=0
  timeout 60 "$@" "$PYTHON" "$E2E_DIR/dns_query.py" $DNS 53 example.test >"$TMP/py.out" 2>&1 || rc=$?
  sed 's/^/  /' "$TMP/py.out"
  e2e_expect_eq "$label: Python's three styles exit status" 0 "$rc"
  # getsockname: an unconnected socket stays on 0.0.0.0, a connected one has its source.
  local style local
  for style in sendto connected sendmsg; do
    local=0.0.0.0
    [ $style != connected ] || local=$src
    e2e_check "$label: Python $style: $WANT from $DNS:53, getsockname $local" \
      grep -Eq "^$style: ${WANT//./\\.} from ${DNS//./\\.}:53 local ${local//./\\.}:[0-9]+$" "$TMP/py.out"
  done
  rc=0
  timeout 60 "$@" "$HELPER" mmsg $DNS 53 example.test $WANT >"$TMP/mmsg.out" 2>&1 || rc=$?
  sed 's/^/  /' "$TMP/mmsg.out"
  e2e_expect_eq "$label: sendmmsg/recvmmsg exit status" 0 "$rc"
  # dig: 1 (UDP) + 1 (TCP); Python: 3 at least; mmsg: 6.
  e2e_wait_for 5 test "$(queries_from "$src")" -ge $((before + 11)) || true
  e2e_check "$label: dnsmasq logged at least 11 queries from $src" test "$(queries_from "$src")" -ge $((before + 11))
}

# udp_server LABEL ADDR PORT RUN... : peers.py udp-echo, started as RUN... in "host", answers a
# kernel client in "wan" that sends to ADDR:PORT.
udp_server() {
  local label=$1 addr=$2 port=$3 rc=0
  shift 3
  e2e_bg "$HOST" "$@" "$PY" "$E2E_DIR/peers.py" udp-echo 0.0.0.0 "$port" "$TMP/uecho-$port.log"
  local pid=$LAST_PID
  e2e_wait_for 10 grep -q ready "$TMP/uecho-$port.log" || e2e_fail "$label: the UDP echo server did not start"
  timeout 60 ip netns exec "$WAN" "$PY" "$E2E_DIR/peers.py" udp-client "$addr" "$port" 20 >"$TMP/uclient.out" 2>&1 || rc=$?
  sed 's/^/  /' "$TMP/uclient.out"
  e2e_expect_eq "$label: 20 datagrams echoed back to the client in wan from $addr:$port" 0 "$rc"
  e2e_check "$label: the echo server saw them from 198.51.100.10" \
    test "$(grep -c '^198\.51\.100\.10:[0-9]* ' "$TMP/uecho-$port.log")" -ge 20
  e2e_stop "$pid"
}

echo "--- control: the kernel in \"host\" ---"
dns_clients kernel 198.51.100.1 ip netns exec "$HOST"
udp_server kernel 198.51.100.1 5301

e2e_require_preload
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24

echo "--- the same clients under dpm-run ---"
dns_clients dpm-run 10.77.1.2 ip netns exec "$HOST" "$DPMRUN" --api-socket "$API" --
e2e_check "the daemon holds no socket afterwards" e2e_wait_for 5 e2e_idle "$API"
e2e_expect_eq "the instance dropped no datagram it received (udp_rx_dropped)" 0 "$(e2e_json "$API" 's["drops"]["udp_rx_dropped"]')"

echo "--- a UDP echo server inside the stack, under dpm-run ---"
udp_server dpm-run 10.77.1.2 5300 "$DPMRUN" --api-socket "$API" --
e2e_check "the daemon holds no socket once the server is gone" e2e_wait_for 5 e2e_idle "$API"
e2e_finish
