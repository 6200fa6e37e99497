#!/usr/bin/env bash
# e2e.dhcp_leases (root): per-socket addresses leased from a real DHCP server (RFC 2131;
# docs/design.md §7). dpmd 10.77.3.2/24 on TAP dh0 in "host" with --dhcp; dnsmasq serves
# 10.77.3.100-10.77.3.150 on the kernel's side of the TAP (10.77.3.1), lease 2 min (dnsmasq's
# minimum), T1 10 s, T2 15 s; a real nginx in "wan" logs each request's source address.
# Asserts, in order:
#  - no server: dpm_socket(DPM_TUPLE_DYNAMIC) fails with ETIMEDOUT within --dhcp-timeout;
#    datagrams on port 68 that are not DHCP messages are dropped and counted;
#  - two sockets held at once lease two different addresses (one MAC, two client
#    identifiers), each what getsockname reported and what nginx saw;
#  - dnsmasq's lease file shows each lease, with the socket's client identifier, while the
#    socket is open, and not after it closed (DHCPRELEASE);
#  - a socket held open renews its lease at T1 (dnsmasq answers; status counts it);
#  - with the server gone the lease runs out and the socket is closed: the program sees the
#    connection end, dpmd counts an expiry and a socket closed by lease loss, and the address
#    is not answered any more;
#  - with --address-at bind the lease is obtained at connect instead, and used.
source "$(dirname "$0")/lib.sh"
e2e_require_root dhcp_leases
e2e_require_cmd nginx dnsmasq
e2e_init dhcp_leases
e2e_topology

DEV=dh0
mkdir -p "$TMP/www"
echo "hello from wan" >"$TMP/www/hello"
NGINX_LOG_FORMAT='$remote_addr:$remote_port "$request" $status' e2e_nginx "$WAN" 198.51.100.10 80 "$TMP/www"
API=$TMP/api.sock
TIMEOUT=5
e2e_dpmd "$HOST" "$API" --link tap --tun "$DEV" --address 10.77.3.2/24 --gateway 10.77.3.1 \
  --host-address 10.77.3.1/24 --dhcp --dhcp-timeout $TIMEOUT

# fetch NAME HOLD : GET /hello over a DPM_TUPLE_DYNAMIC socket, holding it HOLD s after.
fetch() {
  local name=$1 hold=$2
  (printf 'GET /hello HTTP/1.1\r\nHost: wan\r\n\r\n'; sleep "$hold") |
    ip netns exec "$HOST" timeout $((hold + 60)) "$DPMCAT" --socket "$API" --tuple dynamic 198.51.100.10 80 \
      >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PIDS[$name]=$!
}
declare -A PIDS
dhcp() { e2e_json "$API" "s['dhcp']['$1']"; }

echo "--- no DHCP server: ETIMEDOUT within --dhcp-timeout ($TIMEOUT s) ---"
start=$(date +%s.%N)
out=$(ip netns exec "$HOST" timeout 30 "$DPMCAT" --socket "$API" --tuple dynamic 198.51.100.10 80 </dev/null 2>&1 || true)
took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
echo "  $out (after $took s)"
e2e_check "dpm_socket fails with ETIMEDOUT" grep -q "dpm_socket: Connection timed out" <<<"$out"
e2e_check "within the documented time (--dhcp-timeout $TIMEOUT s, +1 s)" \
  awk -v t="$took" -v l="$TIMEOUT" 'BEGIN { exit !(t >= l - 0.5 && t <= l + 1) }'
e2e_expect_eq "status counts the attempt that timed out" 1 "$(dhcp timed_out)"

echo "--- port 68 datagrams that are not DHCP messages are dropped and counted ---"
ip netns exec "$HOST" "$PY" - "$DEV" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, sys.argv[1].encode())
s.bind(("0.0.0.0", 67))
reply = bytearray(300)                      # a BOOTREPLY cut before its options, and garbage
reply[0], reply[1], reply[2] = 2, 1, 6
s.sendto(bytes(reply[:200]), ("255.255.255.255", 68))
s.sendto(b"\x02not a dhcp message", ("255.255.255.255", 68))
PY
e2e_wait_for 5 sh -c "[ \$('$DPMD' status --api-socket '$API' --json | '$PY' -c 'import json,sys; print(json.load(sys.stdin)[\"dhcp\"][\"malformed\"])') -ge 2 ]" || true
e2e_expect_eq "2 malformed DHCP messages dropped and counted" 2 "$(dhcp malformed)"

echo "--- dnsmasq on the TAP's kernel side; dpmd again with the default --dhcp-timeout (16 s) ---"
# dnsmasq picks an address from a hash of the MAC, which all of dpmd's sockets share, and does
# not hold an offer: sockets asking at once are offered the same address, the first REQUEST
# wins and the others are NAKed and start over (RFC 2131 §3.1 step 5), so they need a few
# round trips — seconds, not the 5 s above.
e2e_stop "$DPMD_PID"
e2e_dpmd "$HOST" "$API" --link tap --tun "$DEV" --address 10.77.3.2/24 --gateway 10.77.3.1 \
  --host-address 10.77.3.1/24 --dhcp
LEASES=$TMP/dnsmasq.leases
e2e_bg "$HOST" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface="$DEV" --bind-interfaces \
  --dhcp-range=10.77.3.100,10.77.3.150,255.255.255.0,2m --dhcp-option=option:T1,10 --dhcp-option=option:T2,15 \
  --dhcp-leasefile="$LEASES" --dhcp-authoritative --log-dhcp --pid-file="$TMP/dnsmasq.pid" \
  >"$TMP/dnsmasq.log" 2>&1
DNSMASQ_PID=$LAST_PID
e2e_wait_for 10 sh -c "ip netns exec '$HOST' ss -Hlun | grep -q ':67 '" || e2e_fail "dnsmasq did not start"

echo "--- two sockets, two leases ---"
fetch a 6
fetch b 6
# e: a UDP socket listening on its leased address until the lease ends (renews at T1, then
# outlives the server, below).
ip netns exec "$HOST" timeout 240 "$DPMCAT" --socket "$API" --tuple dynamic -u -l 9000 </dev/null \
  >"$TMP/e.out" 2>"$TMP/e.err" &
PIDS[e]=$!
for n in a b e; do e2e_wait_for 20 grep -q "^dpm-cat: local" "$TMP/$n.err" || true; done
a=$(local_of a)
b=$(local_of b)
e=$(local_of e)
echo "  socket a: $a, socket b: $b, socket e: $e"
[ -n "$a" ] && [ -n "$b" ] && [ -n "$e" ] || cat "$TMP/a.err" "$TMP/b.err" "$TMP/e.err"
for n in a b e; do
  e2e_check "socket $n has a leased address" grep -Eq '^10\.77\.3\.(1[0-4][0-9]|150)$' <<<"$(local_of $n)"
done
e2e_check "and they all differ" test "$(printf '%s\n' "$a" "$b" "$e" | sort -u | wc -l)" = 3
e2e_wait_for 5 sh -c "[ \$(grep -c 'GET /hello' '$TMP/nginx-access.log') -ge 3 ]" || true
sed 's/^/  nginx: /' "$TMP/nginx-access.log"
e2e_check "nginx saw socket a's leased address" grep -q "^$a:[0-9]* \"GET /hello" "$TMP/nginx-access.log"
e2e_check "nginx saw socket b's leased address" grep -q "^$b:[0-9]* \"GET /hello" "$TMP/nginx-access.log"
sed 's/^/  lease file: /' "$LEASES"
e2e_check "the lease file shows a's lease while the socket is open" grep -q " $a " "$LEASES"
e2e_check "with a client identifier of dpm's (type 0, 'dpm/')" grep -q " $a .* 00:64:70:6d:2f:" "$LEASES"
e2e_check "and b's lease" grep -q " $b " "$LEASES"
e2e_check "while held, the kernel side reaches a's address (ARP + ping)" ip netns exec "$HOST" ping -c1 -W2 "$a"

echo "--- close: DHCPRELEASE ---"
wait "${PIDS[a]}" "${PIDS[b]}" 2>/dev/null || true
e2e_wait_for 10 sh -c "! grep -q ' $a ' '$LEASES' && ! grep -q ' $b ' '$LEASES'" || true
sed 's/^/  lease file: /' "$LEASES"
e2e_check "a's lease is gone from the lease file after close" sh -c "! grep -q ' $a ' '$LEASES'"
e2e_check "and b's" sh -c "! grep -q ' $b ' '$LEASES'"
e2e_check "dnsmasq logged the releases" grep -q "DHCPRELEASE.* $a " "$TMP/dnsmasq.log"
e2e_expect_eq "dpmd sent 2 DHCPRELEASEs" 2 "$(dhcp released)"

echo "--- renewal at T1 (10 s) ---"
e2e_wait_for 20 sh -c "[ \$('$DPMD' status --api-socket '$API' --json | '$PY' -c 'import json,sys; print(json.load(sys.stdin)[\"dhcp\"][\"renewed\"])') -ge 1 ]" || true
e2e_check "socket e's lease was renewed by dnsmasq" test "$(dhcp renewed)" -ge 1
e2e_check "dnsmasq acknowledged e's address twice or more (lease, renewal)" \
  test "$(grep -c "DHCPACK.* $e " "$TMP/dnsmasq.log")" -ge 2

echo "--- the server goes; the lease runs out; the socket is closed ---"
e2e_stop "$DNSMASQ_PID"
# Renewed at most 10 s ago with a 2-min lease: it ends within ~2 min; dpm-cat, listening,
# reads end-of-file then and finds the reason in SO_ERROR.
e2e_wait_for 150 sh -c "[ \$('$DPMD' status --api-socket '$API' --json | '$PY' -c 'import json,sys; print(json.load(sys.stdin)[\"dhcp\"][\"expired\"])') -ge 1 ]" || true
e2e_expect_eq "the lease expired without a renewal" 1 "$(dhcp expired)"
e2e_expect_eq "dpmd closed the socket that held it" 1 "$(e2e_json "$API" 's["addresses"]["lost"]')"
e2e_wait_for 10 sh -c "! kill -0 ${PIDS[e]} 2>/dev/null" || true
e2e_check "the program's socket ended" sh -c "! kill -0 ${PIDS[e]} 2>/dev/null"
sed 's/^/  e: /' "$TMP/e.err"
e2e_check "with a clear error: SO_ERROR ETIMEDOUT (the lease timed out)" grep -q "socket closed: Connection timed out" "$TMP/e.err"
e2e_check "the address is not answered any more" sh -c "! ip netns exec '$HOST' ping -c1 -W1 '$e' >/dev/null"

echo "--- the deferred embodiment (--address-at bind): the lease is obtained at connect ---"
e2e_stop "$DPMD_PID"
e2e_dpmd "$HOST" "$API" --link tap --tun "$DEV" --address 10.77.3.2/24 --gateway 10.77.3.1 \
  --host-address 10.77.3.1/24 --dhcp --address-at bind
e2e_bg "$HOST" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface="$DEV" --bind-interfaces \
  --dhcp-range=10.77.3.100,10.77.3.150,255.255.255.0,2m --dhcp-leasefile="$LEASES" --dhcp-authoritative \
  --log-dhcp --pid-file="$TMP/dnsmasq2.pid" >"$TMP/dnsmasq2.log" 2>&1
e2e_wait_for 10 sh -c "ip netns exec '$HOST' ss -Hlun | grep -q ':67 '" || e2e_fail "dnsmasq did not start again"
fetch d 1
e2e_wait_for 20 grep -q "^dpm-cat: local" "$TMP/d.err" || true
d=$(local_of d)
echo "  socket d: $d"
e2e_wait_for 5 grep -q "^$d:[0-9]* \"GET /hello" "$TMP/nginx-access.log" || true
e2e_check "socket d leased its address at connect and used it" grep -q "^$d:[0-9]* \"GET /hello" "$TMP/nginx-access.log"
e2e_check "dnsmasq leased it" grep -q "DHCPACK.* $d " "$TMP/dnsmasq2.log"
e2e_finish
