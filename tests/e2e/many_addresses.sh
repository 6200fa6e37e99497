#!/usr/bin/env bash
# e2e.many_addresses (root): 10,000 sockets of one instance, each with an address of its own,
# all open at once, each completing a TCP exchange with a real server (docs/design.md §7).
#
#   HOST: dpmd 10.77.1.2 on TUN ma0, static pool 10.77.64.1-10.77.103.16 (10,000 addresses,
#         routed to the TUN) ── forwards ── WAN: nginx 198.51.100.10:80
#
# bench/address_sockets holds 10,000 DPM_TUPLE_STATIC sockets, connects each (16 threads)
# and fetches /hello over it. Asserts: every exchange completed; the 10,000 addresses
# (getsockname) are all different; nginx logged 10,000 requests from 10,000 different source
# addresses, all inside the pool; dpmd's status shows the pool fully in use; after the
# program closes everything, every address comes back to the pool.
source "$(dirname "$0")/lib.sh"
e2e_require_root many_addresses
e2e_require_cmd nginx
e2e_init many_addresses
e2e_topology

N=${MANY_ADDRESSES:-10000}
HOLDER=$BUILD/bench/address_sockets
[ -x "$HOLDER" ] || e2e_fail "no $HOLDER (build first)"
# dpmd, nginx and the program each hold about N descriptors.
ulimit -Hn $((N * 2 + 4096)) 2>/dev/null || true
ulimit -Sn $((N * 2 + 4096)) 2>/dev/null || true

mkdir -p "$TMP/www"
echo "hello from wan" >"$TMP/www/hello"
NGINX_WORKER_CONNECTIONS=$((N + 512)) NGINX_LOG_FORMAT='$remote_addr "$request" $status' \
  e2e_nginx "$WAN" 198.51.100.10 80 "$TMP/www"
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun ma0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24 \
  --address-pool 10.77.64.1-10.77.103.16 --max-sockets $((N + 1024))
ip -n "$HOST" route add 10.77.64.0/18 dev ma0

echo "--- $N sockets, each with its own address, each one HTTP exchange ---"
e2e_bg "$HOST" "$HOLDER" --api-socket "$API" hold "$N" --tuple static --connect 198.51.100.10 80 --http /hello \
  --threads 16 >"$TMP/holder.out" 2>"$TMP/holder.err"
HOLDER_PID=$LAST_PID
e2e_wait_for 240 grep -q "held=" "$TMP/holder.out" || true
cat "$TMP/holder.out" "$TMP/holder.err" | sed 's/^/  /'
e2e_check "all $N sockets connected and completed an exchange" grep -q "held=$N distinct=$N exchanged=$N " "$TMP/holder.out"

pool=$(e2e_json "$API" 's["addresses"]["in_use"], s["addresses"]["available"]')
echo "  status: in use, available = $pool"
e2e_expect_eq "dpmd: the whole pool is in use, nothing left" "($N, 0)" "$pool"
e2e_wait_for 10 sh -c "[ \$(grep -c 'GET /hello' '$TMP/nginx-access.log') -ge $N ]" || true
requests=$(grep -c '"GET /hello HTTP/1.1" 200' "$TMP/nginx-access.log" || true)
sources=$(awk '{print $1}' "$TMP/nginx-access.log" | sort -u | wc -l)
in_pool=$(awk '{print $1}' "$TMP/nginx-access.log" | sort -u |
  awk -F. '$1 == 10 && $2 == 77 && ($3 > 64 || ($3 == 64 && $4 >= 1)) && ($3 < 103 || ($3 == 103 && $4 <= 16))' | wc -l)
echo "  nginx: $requests requests from $sources source addresses ($in_pool inside the pool)"
e2e_expect_eq "nginx answered $N requests" "$N" "$requests"
e2e_expect_eq "from $N different source addresses, all from the pool" "$N $N" "$sources $in_pool"

echo "--- close: every address back in the pool ---"
kill -TERM "$HOLDER_PID"
e2e_wait_for 60 grep -q "closed=" "$TMP/holder.out" || true
# Each close waits for its TCP closing handshake before the address goes back.
for _ in $(seq 240); do
  [ "$(e2e_json "$API" 's["addresses"]["available"]')" = "$N" ] && break
  sleep 0.5
done
back=$(e2e_json "$API" 's["addresses"]["in_use"], s["addresses"]["available"], s["addresses"]["released"]')
echo "  status: in use, available, released = $back"
e2e_expect_eq "all addresses released and available again" "(0, $N, $N)" "$back"
e2e_finish
