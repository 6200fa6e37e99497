#!/usr/bin/env bash
# e2e.tap_link (root): dpmd on a TAP device (--link tap: Ethernet frames, lwIP's ARP;
# the link that DHCP leases need) with per-socket addresses from the static pool.
# dpmd 10.77.2.2/24 on TAP tp0 in "host", whose kernel side is 10.77.2.1/24; a real nginx in
# "wan" (routed through "host") logs each request's source address. Asserts: the kernel
# reaches dpmd by ARP (ping; `ip neigh` shows dpmd's default MAC 02:64:0a:4d:02:02); a socket
# with a pool address fetches from nginx, which sees the pool address; while the socket holds
# it the kernel resolves the pool address to dpmd's MAC (ip neigh, arping: patch 0002 answers
# ARP for it) and dpmd sent RFC 5227 announcements; after close, ARP for it goes unanswered;
# a common-address socket uses 10.77.2.2 through the gateway's MAC; --mac sets the MAC; bad
# --mac values are refused with a clear message.
source "$(dirname "$0")/lib.sh"
e2e_require_root tap_link
e2e_require_cmd nginx arping
e2e_init tap_link
e2e_topology

DEV=tp0
MAC=02:64:0a:4d:02:02  # the default: 02:64 followed by 10.77.2.2
mkdir -p "$TMP/www"
echo "hello over ethernet" >"$TMP/www/hello"
NGINX_LOG_FORMAT='$remote_addr:$remote_port "$request" $status' e2e_nginx "$WAN" 198.51.100.10 80 "$TMP/www"
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --link tap --tun "$DEV" --address 10.77.2.2/24 --gateway 10.77.2.1 \
  --host-address 10.77.2.1/24 --address-pool 10.77.2.100-10.77.2.101
log="$TMP/dpmd-$(basename "$API").log"
sed 's/^/  /' "$log"
e2e_check "dpmd says it runs on a TAP link with its MAC" grep -q "ready on tap:$DEV mac $MAC " "$log"
e2e_check "the kernel's side is a TAP (Ethernet) device" sh -c "ip -n '$HOST' -d link show '$DEV' | grep -q 'link/ether'"

echo "--- the kernel reaches dpmd's own address by ARP ---"
e2e_check "ping 10.77.2.2" ip netns exec "$HOST" ping -c2 -W2 10.77.2.2
neigh=$(ip -n "$HOST" neigh show 10.77.2.2 dev "$DEV")
echo "  neigh: $neigh"
e2e_check "ip neigh: 10.77.2.2 is at dpmd's MAC" grep -q "lladdr $MAC" <<<"$neigh"

# fetch NAME TUPLE : GET /hello from nginx in wan, holding the connection ~4 s after the reply.
fetch() {
  local name=$1 tuple=$2
  (printf 'GET /hello HTTP/1.1\r\nHost: wan\r\n\r\n'; sleep 4) |
    ip netns exec "$HOST" timeout 15 "$DPMCAT" --socket "$API" --tuple "$tuple" 198.51.100.10 80 \
      >"$TMP/$name.out" 2>"$TMP/$name.err" &
  FETCH=$!
}

echo "--- a socket with a pool address, through the TAP ---"
fetch a static
e2e_wait_for 5 grep -q "^dpm-cat: local" "$TMP/a.err" || true
a=$(local_of a)
echo "  socket a: $a"
e2e_check "socket a has a pool address" grep -Eq '^10\.77\.2\.10[01]$' <<<"$a"
e2e_wait_for 5 grep -q "hello over ethernet" "$TMP/a.out" || true
e2e_check "the HTTP reply arrived" grep -q "hello over ethernet" "$TMP/a.out"
e2e_wait_for 5 grep -q 'GET /hello' "$TMP/nginx-access.log" || true
sed 's/^/  nginx: /' "$TMP/nginx-access.log"
e2e_check "nginx saw the pool address as the source" grep -q "^$a:[0-9]* \"GET /hello" "$TMP/nginx-access.log"
neigh=$(ip -n "$HOST" neigh show "$a" dev "$DEV")
echo "  neigh: $neigh"
e2e_check "ip neigh: the pool address is at dpmd's MAC" grep -q "lladdr $MAC" <<<"$neigh"
out=$(ip netns exec "$HOST" arping -c1 -w3 -I "$DEV" "$a" 2>&1) && got=yes || got=no
echo "$out" | sed 's/^/  arping: /'
e2e_expect_eq "arping for the held address is answered" yes "$got"
e2e_check "... from dpmd's MAC" grep -qi "\[$MAC\]" <<<"$out"
announcements=$(e2e_json "$API" 's["ethernet"]["arp_announcements"]')
e2e_check "dpmd announced the address (RFC 5227): $announcements announcements" test "$announcements" -ge 1
e2e_check "dpmd status shows the link kind and MAC" \
  sh -c "'$DPMD' status --api-socket '$API' | grep -q 'link     tap:$DEV' && '$DPMD' status --api-socket '$API' | grep -q 'ethernet mac $MAC'"

echo "--- after close, the address is not answered any more ---"
wait "$FETCH" 2>/dev/null || true
e2e_wait_for 5 e2e_idle "$API" || true
out=$(ip netns exec "$HOST" arping -c2 -w3 -I "$DEV" "$a" 2>&1) && got=yes || got=no
echo "$out" | sed 's/^/  arping: /'
e2e_expect_eq "arping for the released address goes unanswered" no "$got"
e2e_check "and ping to it fails" sh -c "! ip netns exec '$HOST' ping -c1 -W1 '$a' >/dev/null"

echo "--- a common-address socket, off-link through the gateway ---"
fetch c common
wait "$FETCH" 2>/dev/null || true
e2e_expect_eq "the common socket uses the instance's address" 10.77.2.2 "$(local_of c)"
e2e_check "its reply arrived" grep -q "hello over ethernet" "$TMP/c.out"
drops=$(e2e_json "$API" 'sum(s["ethernet"]["drops"].values())')
echo "  frames dropped before lwIP: $drops ($(e2e_json "$API" 's["ethernet"]["drops"]'))"

echo "--- --mac ---"
e2e_stop "$DPMD_PID"
ip -n "$HOST" neigh flush dev "$DEV" 2>/dev/null || true
e2e_dpmd "$HOST" "$API" --link tap --tun "$DEV" --address 10.77.2.2/24 --gateway 10.77.2.1 \
  --host-address 10.77.2.1/24 --mac 02:AA:bb:cc:dd:ee
e2e_check "ping with a MAC of our choice" ip netns exec "$HOST" ping -c1 -W2 10.77.2.2
e2e_check "ip neigh shows that MAC" sh -c "ip -n '$HOST' neigh show 10.77.2.2 dev '$DEV' | grep -q 'lladdr 02:aa:bb:cc:dd:ee'"
e2e_stop "$DPMD_PID"
# Refused before any device is opened; run in the test's namespace all the same.
out=$(ip netns exec "$HOST" "$DPMD" client --link tap --tun "$DEV" --mac 01:00:5e:00:00:01 --api-socket "$TMP/bad.sock" 2>&1 || true)
e2e_check "a multicast --mac is refused: $out" grep -q "bad --mac" <<<"$out"
out=$(ip netns exec "$HOST" "$DPMD" client --tun "$DEV" --mac 02:00:00:00:00:01 --api-socket "$TMP/bad.sock" 2>&1 || true)
e2e_check "--mac on a TUN link is refused: $out" grep -q "needs an Ethernet link" <<<"$out"
e2e_finish
